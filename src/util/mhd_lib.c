#define MHD_LIB_IMPL
#include "mhd_lib.h"

struct mhd_lib mhd_lib;

int mhd_lib_load(char *err, size_t errlen)
{
	static const char *const names[] = { MHD_LIB_FUNCS(DYNLIB_NAME) };
	return dynlib_load("http server", "libmicrohttpd.so.12", "libmicrohttpd12", names, (void **)&mhd_lib,
			   sizeof(names) / sizeof(names[0]), err, errlen);
}
