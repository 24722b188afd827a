/* libkvkit internals shared by its files (not installed). */
#ifndef KVKIT_LIB_INTERNAL_H
#define KVKIT_LIB_INTERNAL_H
#include <stddef.h>

/* Format one error line into err; returns -1 for "return kv_fail(...)". */
__attribute__((visibility("hidden"), format(printf, 3, 4)))
int kv_fail(char *err, size_t errlen, const char *fmt, ...);

#endif
