#define NBD_LIB_IMPL
#include "nbd_lib.h"

struct nbd_lib nbd_lib;

int nbd_lib_load(char *err, size_t errlen)
{
	static const char *const names[] = { NBD_LIB_FUNCS(DYNLIB_NAME) };
	return dynlib_load("nbd", "libnbd.so.0", "libnbd0", names, (void **)&nbd_lib, sizeof(names) / sizeof(names[0]),
			   err, errlen);
}
