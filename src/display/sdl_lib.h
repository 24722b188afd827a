/* SDL2 (the --gui window), loaded with dlopen() when a window opens: see
 * util/dynlib.h (linked, it would bring ALSA, PulseAudio, X11, Wayland
 * and their chains into every kvkit process). Callers use SDL's names;
 * the macros route them through the table (SDL_BlitSurface is SDL's own
 * macro for SDL_UpperBlit). */
#ifndef KVKIT_SDL_LIB_H
#define KVKIT_SDL_LIB_H
#include <SDL2/SDL.h>
#include <stddef.h>
#include "../util/dynlib.h"

#define SDL_LIB_FUNCS(X) \
	X(SDL_SetHint) \
	X(SDL_Init) \
	X(SDL_GetError) \
	X(SDL_CreateWindow) \
	X(SDL_GetWindowSurface) \
	X(SDL_UpdateWindowSurface) \
	X(SDL_Quit) \
	X(SDL_WaitEventTimeout) \
	X(SDL_PollEvent) \
	X(SDL_DestroyWindow) \
	X(SDL_SetWindowSize) \
	X(SDL_CreateRGBSurfaceWithFormatFrom) \
	X(SDL_FreeSurface) \
	X(SDL_SetSurfaceBlendMode) \
	X(SDL_UpperBlit)

struct sdl_lib {
	SDL_LIB_FUNCS(DYNLIB_MEMBER)
};
extern struct sdl_lib sdl_lib;

/* Load the library once; 0, or -1 with one line in err. */
int sdl_lib_load(char *err, size_t errlen);

#ifndef SDL_LIB_IMPL
#define SDL_SetHint (*sdl_lib.SDL_SetHint)
#define SDL_Init (*sdl_lib.SDL_Init)
#define SDL_GetError (*sdl_lib.SDL_GetError)
#define SDL_CreateWindow (*sdl_lib.SDL_CreateWindow)
#define SDL_GetWindowSurface (*sdl_lib.SDL_GetWindowSurface)
#define SDL_UpdateWindowSurface (*sdl_lib.SDL_UpdateWindowSurface)
#define SDL_Quit (*sdl_lib.SDL_Quit)
#define SDL_WaitEventTimeout (*sdl_lib.SDL_WaitEventTimeout)
#define SDL_PollEvent (*sdl_lib.SDL_PollEvent)
#define SDL_DestroyWindow (*sdl_lib.SDL_DestroyWindow)
#define SDL_SetWindowSize (*sdl_lib.SDL_SetWindowSize)
#define SDL_CreateRGBSurfaceWithFormatFrom (*sdl_lib.SDL_CreateRGBSurfaceWithFormatFrom)
#define SDL_FreeSurface (*sdl_lib.SDL_FreeSurface)
#define SDL_SetSurfaceBlendMode (*sdl_lib.SDL_SetSurfaceBlendMode)
#define SDL_UpperBlit (*sdl_lib.SDL_UpperBlit)
#endif

#endif
