#define NBD_LIB_IMPL
#include "nbd_lib.h"
#include <dlfcn.h>
#include <stdio.h>

struct nbd_lib nbd_lib;

int nbd_lib_load(char *err, size_t errlen)
{
	static void *h;
	if (h)
		return 0;
	void *lib = dlopen("libnbd.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "nbd: cannot load libnbd (Debian package libnbd0): %s", dlerror());
		return -1;
	}
#define NBD_LIB_RESOLVE(f)                                                                       \
	if (!(nbd_lib.f = (__typeof__(f) *)dlsym(lib, #f))) {                                    \
		snprintf(err, errlen, "nbd: libnbd.so.0 lacks %s", #f);                          \
		dlclose(lib);                                                                    \
		return -1;                                                                       \
	}
	NBD_LIB_FUNCS(NBD_LIB_RESOLVE)
#undef NBD_LIB_RESOLVE
	h = lib;
	return 0;
}
