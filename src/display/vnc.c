/* The screen over VNC (virtio-gpu vnc=): libvncserver serves RFB on a
 * socket kvkit binds itself (TCP, loopback unless the user names another
 * address, or a unix socket), from one thread of kvkit's own: it accepts
 * clients, runs libvncserver's event processing, and copies the scanout
 * into the server's framebuffer when the GPU's update counter moved, and
 * the guest's cursor into RFB's cursor shape.
 * RFB has no real authentication: docs/display.md says so. libvncserver
 * is loaded when the server starts (vnc_lib.h). */
#define _GNU_SOURCE
#include "vnc.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/input-event-codes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <kvkit/config.h>
#include "../sandbox/sandbox.h"
#include "../util/log.h"
#include "../util/unixsock.h"
#include "../virtio/devices.h"
#include "../virtio/gpu_ctrl.h"
#include "../virtio/input_model.h"
#include "keymap.h"
#include "vnc_lib.h"

#define FRAME_US 20000 /* how long one round waits for client messages */

static struct {
	int listen_fd;
	char unix_path[108];
	rfbScreenInfoPtr screen;
	uint32_t width, height;
	struct vm *vm;
	pthread_t thread;
	bool running;
	int quit; /* __atomic */
	int buttons; /* the pointer's last button mask */
	struct gpu_cursor_image cursor; /* the one the clients have (rgba NULL: none) */
} v = { .listen_fd = -1 };

static void rfb_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	buf[strcspn(buf, "\n")] = 0;
	log_debug("vnc: %s", buf);
}


static void on_key(rfbBool down, rfbKeySym sym, rfbClientPtr cl)
{
	uint16_t code = keymap_keysym_to_linux(sym);
	if (!code)
		return;
	struct virtio_input_event ev[] = { INPUT_EV(EV_KEY, code, down ? 1 : 0), INPUT_EV(EV_SYN, SYN_REPORT, 0) };
	virtio_input_send(v.vm, KV_INPUT_KEYBOARD, ev, 2);
}

/* RFB's button mask: 1 left, 2 middle, 4 right, 8/16 wheel up/down. */
static void on_pointer(int mask, int x, int y, rfbClientPtr cl)
{
	static const struct {
		int bit;
		uint16_t code;
	} buttons[] = { { 1, BTN_LEFT }, { 2, BTN_MIDDLE }, { 4, BTN_RIGHT } };
	struct virtio_input_event ev[8] = { INPUT_EV(EV_ABS, ABS_X, input_abs_scale(x, v.width)),
					    INPUT_EV(EV_ABS, ABS_Y, input_abs_scale(y, v.height)) };
	unsigned n = 2;
	for (unsigned i = 0; i < 3; i++)
		if ((mask ^ v.buttons) & buttons[i].bit)
			ev[n++] = (struct virtio_input_event)INPUT_EV(EV_KEY, buttons[i].code, !!(mask & buttons[i].bit));
	if (mask & ~v.buttons & 8)
		ev[n++] = (struct virtio_input_event)INPUT_EV(EV_REL, REL_WHEEL, 1);
	if (mask & ~v.buttons & 16)
		ev[n++] = (struct virtio_input_event)INPUT_EV(EV_REL, REL_WHEEL, -1);
	ev[n++] = (struct virtio_input_event)INPUT_EV(EV_SYN, SYN_REPORT, 0);
	v.buttons = mask;
	/* where libvncserver draws the cursor for clients that take no shape */
	v.screen->cursorX = x, v.screen->cursorY = y;
	virtio_input_send(v.vm, KV_INPUT_POINTING, ev, n);
}

/* The scanout into the server's framebuffer (RGBX, libvncserver's own
 * 32-bit layout); a new size becomes a new framebuffer. */
static void refresh(void)
{
	uint8_t *rgb;
	uint32_t w, h;
	if (virtio_gpu_scanout_rgb(v.vm, &rgb, &w, &h) < 0)
		return;
	if (w != v.width || h != v.height) {
		char *fb = calloc((size_t)w * h, 4);
		if (!fb) {
			free(rgb);
			return;
		}
		char *old = v.screen->frameBuffer;
		rfbNewFramebuffer(v.screen, fb, (int)w, (int)h, 8, 3, 4);
		free(old);
		v.width = w, v.height = h;
	}
	uint8_t *fb = (uint8_t *)v.screen->frameBuffer;
	for (size_t i = 0; i < (size_t)w * h; i++)
		fb[4 * i] = rgb[3 * i], fb[4 * i + 1] = rgb[3 * i + 1], fb[4 * i + 2] = rgb[3 * i + 2];
	free(rgb);
	rfbMarkRectAsModified(v.screen, 0, 0, (int)w, (int)h);
}

static bool same_cursor(const struct gpu_cursor_image *a, const struct gpu_cursor_image *b)
{
	return a->width == b->width && a->height == b->height && a->hot_x == b->hot_x && a->hot_y == b->hot_y &&
	       !!a->rgba == !!b->rgba && (!a->rgba || !memcmp(a->rgba, b->rgba, (size_t)a->width * a->height * 4));
}

/* The guest's cursor as RFB's cursor shape: clients that take shapes draw
 * it at their own pointer, libvncserver draws it into the frames of the
 * others. Only set again when the image changes. Until the guest shows
 * one, clients get libvncserver's arrow; once it hid its own, none. */
static void update_cursor(void)
{
	struct gpu_cursor_image c = { 0 };
	if (virtio_gpu_cursor(v.vm, &c) < 0)
		c = (struct gpu_cursor_image){ 0 };
	if (same_cursor(&c, &v.cursor)) {
		free(c.rgba);
		return;
	}
	size_t n = (size_t)c.width * c.height, stride = (c.width + 7) / 8;
	if (!c.rgba || !n) { /* the guest hid its cursor: clients get none */
		rfbSetCursor(v.screen, NULL);
		free(c.rgba);
		free(v.cursor.rgba);
		v.cursor = (struct gpu_cursor_image){ 0 };
		return;
	}
	rfbCursorPtr cur = calloc(1, sizeof(*cur));
	if (cur) {
		cur->richSource = malloc(n * 4);
		cur->mask = calloc(stride * c.height, 1);
	}
	if (!cur || !cur->richSource || !cur->mask) {
		if (cur)
			free(cur->richSource), free(cur->mask);
		free(cur);
		free(c.rgba);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		/* the screen's pixel layout (red, green, blue, unused), and a
		 * mask bit (most significant first) where the pixel is opaque */
		memcpy(cur->richSource + 4 * i, c.rgba + 4 * i, 3);
		cur->richSource[4 * i + 3] = 0;
		if (c.rgba[4 * i + 3] >= 128)
			cur->mask[(i / c.width) * stride + (i % c.width) / 8] |= (unsigned char)(0x80 >> (i % c.width % 8));
	}
	cur->width = (unsigned short)c.width, cur->height = (unsigned short)c.height;
	/* the guest's hot spot, kept inside the image */
	cur->xhot = (unsigned short)(c.hot_x < c.width ? c.hot_x : c.width - 1);
	cur->yhot = (unsigned short)(c.hot_y < c.height ? c.hot_y : c.height - 1);
	cur->cleanup = cur->cleanupSource = cur->cleanupMask = cur->cleanupRichSource = TRUE;
	rfbSetCursor(v.screen, cur); /* frees the one before */
	free(v.cursor.rgba);
	v.cursor = c;
}

static void *vnc_main(void *arg)
{
	uint64_t shown = 0, cursor_shown = 0;
	pthread_setname_np(pthread_self(), "vnc");
	while (!__atomic_load_n(&v.quit, __ATOMIC_ACQUIRE)) {
		sandbox_thread(SANDBOX_DISPLAY);
		struct pollfd p = { .fd = v.listen_fd, .events = POLLIN };
		if (poll(&p, 1, 0) == 1) {
			int fd = accept4(v.listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0 && !rfbNewClient(v.screen, fd))
				close(fd);
			else if (fd >= 0)
				log_info("vnc: a client connected");
		}
		uint64_t cu = 0, u = virtio_gpu_updates(v.vm, &cu);
		if (u != shown) {
			shown = u;
			refresh();
		}
		if (cu != cursor_shown) {
			cursor_shown = cu;
			update_cursor();
		}
		rfbProcessEvents(v.screen, FRAME_US);
	}
	return NULL;
}

static int listen_tcp(const char *host, unsigned port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai;
	char ps[8];
	snprintf(ps, sizeof(ps), "%u", port);
	int rc = getaddrinfo(*host ? host : "127.0.0.1", ps, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "vnc: cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4) < 0) {
		snprintf(err, errlen, "vnc: cannot listen on %s:%u: %s", *host ? host : "127.0.0.1", port, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int vnc_open(const char *spec, uint32_t width, uint32_t height, char *err, size_t errlen)
{
	char host[256], path[108];
	unsigned port;
	if (kv_vnc_address(spec, host, sizeof(host), &port, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "invalid value for virtio-gpu vnc: %s", spec);
		return -1;
	}
	if (vnc_lib_load(err, errlen) < 0)
		return -1;
	if (*path) {
		v.listen_fd = unix_listen(path, "the VNC socket", err, errlen);
		if (v.listen_fd < 0)
			return -1;
		snprintf(v.unix_path, sizeof(v.unix_path), "%s", path);
	} else if ((v.listen_fd = listen_tcp(host, port, err, errlen)) < 0) {
		return -1;
	}
	rfbLog = rfbErr = rfb_log;
	int argc = 0;
	v.screen = rfbGetScreen(&argc, NULL, (int)width, (int)height, 8, 3, 4);
	if (!v.screen || !(v.screen->frameBuffer = calloc((size_t)width * height, 4))) {
		snprintf(err, errlen, "vnc: out of memory");
		vnc_close();
		return -1;
	}
	v.width = width, v.height = height;
	v.screen->desktopName = "kvkit";
	v.screen->port = v.screen->ipv6port = 0; /* kvkit listens itself */
	v.screen->autoPort = FALSE;
	v.screen->kbdAddEvent = on_key;
	v.screen->ptrAddEvent = on_pointer;
	v.screen->alwaysShared = TRUE;
	rfbInitServer(v.screen);
	log_info("vnc: serving the screen on %s", spec);
	return 0;
}

int vnc_attach(struct vm *vm, char *err, size_t errlen)
{
	v.vm = vm;
	if (pthread_create(&v.thread, NULL, vnc_main, NULL) != 0) {
		snprintf(err, errlen, "vnc: cannot start its thread");
		return -1;
	}
	v.running = true;
	return 0;
}

void vnc_close(void)
{
	if (v.running) {
		__atomic_store_n(&v.quit, 1, __ATOMIC_RELEASE);
		pthread_join(v.thread, NULL);
		v.running = false;
	}
	if (v.screen) {
		char *fb = v.screen->frameBuffer;
		rfbShutdownServer(v.screen, TRUE);
		rfbScreenCleanup(v.screen);
		free(fb);
		v.screen = NULL;
	}
	free(v.cursor.rgba);
	v.cursor = (struct gpu_cursor_image){ 0 };
	if (v.listen_fd >= 0)
		close(v.listen_fd);
	v.listen_fd = -1;
	if (*v.unix_path)
		unlink(v.unix_path);
	*v.unix_path = 0;
}
