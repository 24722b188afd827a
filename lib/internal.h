/* libkvkit internals shared by its files (not installed). */
#ifndef KVKIT_LIB_INTERNAL_H
#define KVKIT_LIB_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Format one error line into err; returns -1 for "return kv_fail(...)". */
__attribute__((visibility("hidden"), format(printf, 3, 4)))
int kv_fail(char *err, size_t errlen, const char *fmt, ...);

/* A virtio-fs DAX window size (MiB): 0 (none) or a power of two from 2 to
 * 16384. The BAR goes above RAM; the ceiling bounds what the guest spends
 * on page structures for it (1/64 of the window: 256 MiB at 16 GiB). */
static inline bool kv_dax_mib_ok(uint64_t m)
{
	return m == 0 || (m >= 2 && m <= 16384 && !(m & (m - 1)));
}
/* --sandbox / "sandbox": "on" or "off"; -1 for anything else. */
static inline int kv_parse_sandbox(const char *v, bool *off)
{
	if (strcmp(v, "on") && strcmp(v, "off"))
		return -1;
	*off = !strcmp(v, "off");
	return 0;
}

#define KV_DAX_MIB_HINT "expected its size in MiB, a power of two from 2 to 16384"

#endif
