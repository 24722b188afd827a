/* Optional libraries loaded with dlopen() when a feature first needs them,
 * so a VM that does not use them does not carry their pages (libnbd and
 * libmicrohttpd pull in gnutls, p11-kit, libxml2, ICU...: megabytes per
 * process). A library is described by a table of function pointers and the
 * matching names, generated from one X-macro list. */
#ifndef KVKIT_DYNLIB_H
#define KVKIT_DYNLIB_H
#include <stddef.h>

/* Fill slots[i] with names[i] from soname (once). 0, or -1 with
 * "<what>: cannot load <soname> (Debian package <pkg>): <reason>". */
int dynlib_load(const char *what, const char *soname, const char *pkg, const char *const *names, void **slots,
		size_t n, char *err, size_t errlen);

#define DYNLIB_MEMBER(f) __typeof__(f) *f;
#define DYNLIB_NAME(f) #f,

#endif
