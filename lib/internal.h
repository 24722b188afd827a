/* libkvkit internals shared by its files (not installed). */
#ifndef KVKIT_LIB_INTERNAL_H
#define KVKIT_LIB_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Format one error line into err; returns -1 for "return kv_fail(...)". */
__attribute__((visibility("hidden"), format(printf, 3, 4)))
int kv_fail(char *err, size_t errlen, const char *fmt, ...);

/* A virtio-fs DAX window size (MiB): 0 (none) or a power of two from 2 to
 * 256, so the BAR fits kvkit's 32-bit PCI window beside the others. */
static inline bool kv_dax_mib_ok(uint64_t m)
{
	return m == 0 || (m >= 2 && m <= 256 && !(m & (m - 1)));
}
#define KV_DAX_MIB_HINT "expected its size in MiB, a power of two from 2 to 256"

#endif
