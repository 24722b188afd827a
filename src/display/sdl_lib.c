#define SDL_LIB_IMPL
#include "sdl_lib.h"

struct sdl_lib sdl_lib;

int sdl_lib_load(char *err, size_t errlen)
{
	static const char *const names[] = { SDL_LIB_FUNCS(DYNLIB_NAME) };
	return dynlib_load("--gui", "libSDL2-2.0.so.0", "libsdl2-2.0-0", names, (void **)&sdl_lib, sizeof(names) / sizeof(names[0]),
			   err, errlen);
}
