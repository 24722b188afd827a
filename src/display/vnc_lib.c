#define VNC_LIB_IMPL
#include "vnc_lib.h"

struct vnc_lib vnc_lib;

int vnc_lib_load(char *err, size_t errlen)
{
	static const char *const names[] = { VNC_LIB_FUNCS(DYNLIB_NAME) };
	return dynlib_load("vnc", "libvncserver.so.1", "libvncserver1", names, (void **)&vnc_lib, sizeof(names) / sizeof(names[0]),
			   err, errlen);
}
