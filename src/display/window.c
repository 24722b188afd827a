/* The --gui window: see window.h. SDL2 (Debian's libsdl2, loaded when a
 * window opens: sdl_lib.h) speaks X11 and Wayland; every SDL call happens
 * on this file's thread. The window is
 * drawn through SDL's window surface (software blits): a 2D scanout
 * needs no GPU on the host. */
#define _GNU_SOURCE
#include "window.h"
#include <errno.h>
#include <linux/input-event-codes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../sandbox/sandbox.h"
#include "../util/log.h"
#include "../virtio/devices.h"
#include "../virtio/gpu_ctrl.h"
#include "../virtio/input_model.h"
#include "keymap.h"
#include "sdl_lib.h"

#define NO_DISPLAY "--gui: no display available (WAYLAND_DISPLAY/DISPLAY unset or unreachable)"
#define FRAME_MS 16 /* how often the window looks for a new frame */

static struct {
	pthread_t thread;
	bool running;
	sem_t ready;
	int open_rc;
	char open_err[256];
	uint32_t width, height;
	struct vm *vm; /* __atomic: set by window_attach */
	void (*stop)(struct vm *vm);
	int quit; /* __atomic: window_close asks the thread to end */
	SDL_Window *win;
	uint32_t shown_w, shown_h; /* the scanout size last shown */
	bool stop_asked;
} w;

static void send(struct vm *vm, enum kv_input_kind kind, const struct virtio_input_event *ev, unsigned n)
{
	virtio_input_send(vm, kind, ev, n); /* no such device or a full queue: dropped */
}


static void key_event(struct vm *vm, const SDL_KeyboardEvent *k)
{
	if (k->repeat)
		return; /* the guest repeats keys itself (EV_REP) */
	uint16_t code = keymap_usb_to_linux(k->keysym.scancode);
	if (!code)
		return;
	struct virtio_input_event ev[] = { INPUT_EV(EV_KEY, code, k->state == SDL_PRESSED), INPUT_EV(EV_SYN, SYN_REPORT, 0) };
	send(vm, KV_INPUT_KEYBOARD, ev, 2);
}

static void pointer_move(struct vm *vm, int x, int y)
{
	struct virtio_input_event ev[] = { INPUT_EV(EV_ABS, ABS_X, input_abs_scale(x, w.shown_w)),
					   INPUT_EV(EV_ABS, ABS_Y, input_abs_scale(y, w.shown_h)),
					   INPUT_EV(EV_SYN, SYN_REPORT, 0) };
	send(vm, KV_INPUT_POINTING, ev, 3);
}

static void pointer_button(struct vm *vm, const SDL_MouseButtonEvent *b)
{
	uint16_t code = b->button == SDL_BUTTON_LEFT ? BTN_LEFT : b->button == SDL_BUTTON_RIGHT ? BTN_RIGHT
						  : b->button == SDL_BUTTON_MIDDLE ? BTN_MIDDLE : 0;
	if (!code)
		return;
	struct virtio_input_event ev[] = { INPUT_EV(EV_ABS, ABS_X, input_abs_scale(b->x, w.shown_w)),
					   INPUT_EV(EV_ABS, ABS_Y, input_abs_scale(b->y, w.shown_h)),
					   INPUT_EV(EV_KEY, code, b->state == SDL_PRESSED), INPUT_EV(EV_SYN, SYN_REPORT, 0) };
	send(vm, KV_INPUT_POINTING, ev, 4);
}

static void pointer_wheel(struct vm *vm, const SDL_MouseWheelEvent *m)
{
	if (!m->y)
		return;
	struct virtio_input_event ev[] = { INPUT_EV(EV_REL, REL_WHEEL, m->direction == SDL_MOUSEWHEEL_FLIPPED ? -m->y : m->y),
					   INPUT_EV(EV_SYN, SYN_REPORT, 0) };
	send(vm, KV_INPUT_POINTING, ev, 2);
}

/* The scanout, then the cursor over it. */
static void redraw(struct vm *vm)
{
	uint8_t *rgb;
	uint32_t sw, sh;
	if (virtio_gpu_scanout_rgb(vm, &rgb, &sw, &sh) < 0)
		return;
	if (sw != w.shown_w || sh != w.shown_h) { /* the guest changed its mode */
		SDL_SetWindowSize(w.win, (int)sw, (int)sh);
		w.shown_w = sw, w.shown_h = sh;
	}
	SDL_Surface *dst = SDL_GetWindowSurface(w.win);
	SDL_Surface *src = SDL_CreateRGBSurfaceWithFormatFrom(rgb, (int)sw, (int)sh, 24, (int)sw * 3, SDL_PIXELFORMAT_RGB24);
	if (dst && src) {
		SDL_BlitSurface(src, NULL, dst, NULL);
		struct gpu_cursor_image c;
		if (virtio_gpu_cursor(vm, &c) == 0) {
			SDL_Surface *cs = SDL_CreateRGBSurfaceWithFormatFrom(c.rgba, (int)c.width, (int)c.height, 32,
									   (int)c.width * 4, SDL_PIXELFORMAT_RGBA32);
			if (cs) {
				SDL_SetSurfaceBlendMode(cs, SDL_BLENDMODE_BLEND);
				SDL_Rect at = { (int)c.x - (int)c.hot_x, (int)c.y - (int)c.hot_y, (int)c.width, (int)c.height };
				SDL_BlitSurface(cs, NULL, dst, &at);
				SDL_FreeSurface(cs);
			}
			free(c.rgba);
		}
		SDL_UpdateWindowSurface(w.win);
	}
	SDL_FreeSurface(src);
	free(rgb);
}

static void ask_stop(struct vm *vm)
{
	log_info("the window was closed: pressing the power button");
	if (vm && w.stop)
		w.stop(vm);
	w.stop_asked = true;
}

static void *window_main(void *arg)
{
	pthread_setname_np(pthread_self(), "gui");
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main thread's (signalfd) */
	/* SDL must not take SIGINT/SIGTERM: kvkit stops the VM on them */
	SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");
	SDL_SetHint(SDL_HINT_VIDEO_ALLOW_SCREENSAVER, "1");
	/* a display the user has, never SDL's fallbacks (the console's DRM
	 * device, an offscreen surface nobody sees) */
	const char *wl = getenv("WAYLAND_DISPLAY");
	SDL_SetHint(SDL_HINT_VIDEODRIVER, wl && *wl ? "wayland,x11" : "x11");
	if (SDL_Init(SDL_INIT_VIDEO) < 0) {
		snprintf(w.open_err, sizeof(w.open_err), "%s", NO_DISPLAY);
		log_debug("SDL: %s", SDL_GetError());
		w.open_rc = -1;
		sem_post(&w.ready);
		return NULL;
	}
	w.win = SDL_CreateWindow("kvkit", SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, (int)w.width, (int)w.height, 0);
	if (!w.win || !SDL_GetWindowSurface(w.win)) {
		snprintf(w.open_err, sizeof(w.open_err), "--gui: cannot open a window: %s", SDL_GetError());
		w.open_rc = -1;
		SDL_Quit();
		sem_post(&w.ready);
		return NULL;
	}
	SDL_UpdateWindowSurface(w.win); /* black until the guest draws */
	w.shown_w = w.width, w.shown_h = w.height;
	sem_post(&w.ready);

	uint64_t shown = 0;
	while (!__atomic_load_n(&w.quit, __ATOMIC_ACQUIRE)) {
		sandbox_thread(SANDBOX_DISPLAY);
		struct vm *vm = __atomic_load_n(&w.vm, __ATOMIC_ACQUIRE);
		bool expose = false;
		SDL_Event e;
		if (SDL_WaitEventTimeout(&e, FRAME_MS)) {
			do {
				switch (e.type) {
				case SDL_QUIT: ask_stop(vm); break;
				case SDL_WINDOWEVENT:
					if (e.window.event == SDL_WINDOWEVENT_CLOSE)
						ask_stop(vm);
					else if (e.window.event == SDL_WINDOWEVENT_EXPOSED || e.window.event == SDL_WINDOWEVENT_SIZE_CHANGED)
						expose = true;
					break;
				case SDL_KEYDOWN:
				case SDL_KEYUP:
					if (vm)
						key_event(vm, &e.key);
					break;
				case SDL_MOUSEMOTION:
					if (vm)
						pointer_move(vm, e.motion.x, e.motion.y);
					break;
				case SDL_MOUSEBUTTONDOWN:
				case SDL_MOUSEBUTTONUP:
					if (vm)
						pointer_button(vm, &e.button);
					break;
				case SDL_MOUSEWHEEL:
					if (vm)
						pointer_wheel(vm, &e.wheel);
					break;
				}
			} while (SDL_PollEvent(&e));
		}
		if (!vm)
			continue;
		uint64_t u = virtio_gpu_updates(vm, NULL);
		if (u != shown || expose) {
			shown = u;
			redraw(vm);
		}
	}
	SDL_DestroyWindow(w.win);
	SDL_Quit();
	return NULL;
}

int window_open(uint32_t width, uint32_t height, char *err, size_t errlen)
{
	const char *wl = getenv("WAYLAND_DISPLAY"), *x = getenv("DISPLAY");
	if ((!wl || !*wl) && (!x || !*x)) {
		snprintf(err, errlen, "%s", NO_DISPLAY);
		return -1;
	}
	if (sdl_lib_load(err, errlen) < 0)
		return -1;
	w.width = width, w.height = height;
	sem_init(&w.ready, 0, 0);
	if (pthread_create(&w.thread, NULL, window_main, NULL) != 0) {
		snprintf(err, errlen, "--gui: cannot start the window's thread");
		return -1;
	}
	while (sem_wait(&w.ready) < 0 && errno == EINTR)
		;
	if (w.open_rc < 0) {
		pthread_join(w.thread, NULL);
		snprintf(err, errlen, "%s", w.open_err);
		return -1;
	}
	w.running = true;
	return 0;
}

void window_attach(struct vm *vm, void (*stop)(struct vm *vm))
{
	w.stop = stop;
	__atomic_store_n(&w.vm, vm, __ATOMIC_RELEASE);
}

void window_close(void)
{
	if (!w.running)
		return;
	__atomic_store_n(&w.quit, 1, __ATOMIC_RELEASE);
	pthread_join(w.thread, NULL);
	w.running = false;
}
