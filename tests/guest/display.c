/* kvkit-display: what the display tests do inside the guest.
 *   kvkit-display info                   the framebuffer's size: "FB-INFO WxH stride S bpp B"
 *   kvkit-display fill X Y W H RRGGBB    paint a rectangle into /dev/fb0
 *   kvkit-display events NAME COUNT      print COUNT input events of the
 *                                        device called NAME: "INPUT-EV type code value"
 *   kvkit-display drmloop SECONDS        full-screen frames through a DRM dumb
 *                                        buffer for SECONDS (bench/gpu):
 *                                        "DRM-FPS fps frames seconds WxH"
 *   kvkit-display cursor X Y             a 64x64 cursor whose top-left 32x32
 *                                        is opaque magenta (the rest clear),
 *                                        shown at X,Y; prints "CURSOR-SET"
 *                                        and keeps it (closing would drop it)
 * Static, no libraries (the DRM structures come from the kernel's uapi
 * headers, which libdrm-dev carries): it runs in the busybox initramfs. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/fb.h>
#include <linux/input.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <drm.h>
#include <drm_mode.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int fb_open(struct fb_var_screeninfo *v, struct fb_fix_screeninfo *f)
{
	int fd = open("/dev/fb0", O_RDWR);
	if (fd < 0 || ioctl(fd, FBIOGET_VSCREENINFO, v) < 0 || ioctl(fd, FBIOGET_FSCREENINFO, f) < 0) {
		perror("/dev/fb0");
		exit(1);
	}
	return fd;
}

static int fill(int argc, char **argv)
{
	struct fb_var_screeninfo v;
	struct fb_fix_screeninfo f;
	if (argc < 7)
		return 2;
	int fd = fb_open(&v, &f);
	unsigned x = atoi(argv[2]), y = atoi(argv[3]), w = atoi(argv[4]), h = atoi(argv[5]);
	unsigned long rgb = strtoul(argv[6], NULL, 16);
	if (v.bits_per_pixel != 32 || x + w > v.xres || y + h > v.yres) {
		fprintf(stderr, "fill: %ux%u at %u,%u does not fit %ux%u at %u bpp\n", w, h, x, y, v.xres, v.yres,
			v.bits_per_pixel);
		return 1;
	}
	unsigned *row = malloc(w * 4);
	for (unsigned i = 0; i < w; i++)
		row[i] = (((rgb >> 16) & 0xff) << v.red.offset) | (((rgb >> 8) & 0xff) << v.green.offset) |
			 ((rgb & 0xff) << v.blue.offset);
	for (unsigned j = 0; j < h; j++)
		if (pwrite(fd, row, w * 4, (off_t)(y + j) * f.line_length + x * 4) != (ssize_t)(w * 4)) {
			perror("fill: write");
			return 1;
		}
	close(fd);
	return 0;
}

static int events(const char *name, int count)
{
	char path[300], got[256];
	DIR *d = opendir("/sys/class/input");
	struct dirent *e;
	int fd = -1;
	while (d && (e = readdir(d)) && fd < 0) {
		if (strncmp(e->d_name, "event", 5))
			continue;
		snprintf(path, sizeof(path), "/sys/class/input/%s/device/name", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(got, sizeof(got), f) && !strncmp(got, name, strlen(name)) && got[strlen(name)] == '\n') {
			snprintf(path, sizeof(path), "/dev/input/%s", e->d_name);
			fd = open(path, O_RDONLY);
		}
		fclose(f);
	}
	if (fd < 0) {
		fprintf(stderr, "events: no input device called %s\n", name);
		return 1;
	}
	printf("INPUT-READY %s\n", path);
	fflush(stdout);
	struct input_event ev;
	for (int n = 0; n < count && read(fd, &ev, sizeof(ev)) == sizeof(ev);) {
		if (ev.type == EV_SYN || ev.type == EV_MSC)
			continue;
		printf("INPUT-EV %u %u %d\n", ev.type, ev.code, ev.value);
		fflush(stdout);
		n++;
	}
	return 0;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* The first connected connector's preferred mode on the first CRTC, a dumb
 * buffer of that size, then frames: fill, mark the whole buffer dirty (the
 * driver sends the transfer and the flush and waits for them). */
static int drmloop(double seconds)
{
	int fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	struct drm_mode_card_res res = { 0 };
	if (fd < 0 || ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0 || !res.count_crtcs || !res.count_connectors) {
		perror("drmloop: /dev/dri/card0");
		return 1;
	}
	uint32_t crtcs[8], conns[8];
	struct drm_mode_card_res res2 = { .crtc_id_ptr = (uintptr_t)crtcs, .connector_id_ptr = (uintptr_t)conns,
					  .count_crtcs = res.count_crtcs > 8 ? 8 : res.count_crtcs,
					  .count_connectors = res.count_connectors > 8 ? 8 : res.count_connectors };
	struct drm_mode_modeinfo modes[32];
	struct drm_mode_get_connector c = { .connector_id = 0 };
	if (ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res2) < 0)
		return perror("drmloop: resources"), 1;
	c.connector_id = conns[0];
	if (ioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &c) < 0 || !c.count_modes)
		return perror("drmloop: connector"), 1;
	c.count_modes = c.count_modes > 32 ? 32 : c.count_modes;
	c.modes_ptr = (uintptr_t)modes;
	c.count_props = c.count_encoders = 0;
	if (ioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &c) < 0)
		return perror("drmloop: modes"), 1;
	struct drm_mode_modeinfo *m = &modes[0];
	for (unsigned i = 0; i < c.count_modes; i++)
		if (modes[i].type & DRM_MODE_TYPE_PREFERRED) {
			m = &modes[i];
			break;
		}
	struct drm_mode_create_dumb cd = { .width = m->hdisplay, .height = m->vdisplay, .bpp = 32 };
	if (ioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd) < 0)
		return perror("drmloop: dumb buffer"), 1;
	struct drm_mode_fb_cmd fb = { .width = cd.width, .height = cd.height, .pitch = cd.pitch, .bpp = 32, .depth = 24,
				      .handle = cd.handle };
	struct drm_mode_map_dumb md = { .handle = cd.handle };
	if (ioctl(fd, DRM_IOCTL_MODE_ADDFB, &fb) < 0 || ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &md) < 0)
		return perror("drmloop: framebuffer"), 1;
	uint32_t *px = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, md.offset);
	struct drm_mode_crtc crtc = { .set_connectors_ptr = (uintptr_t)&conns[0], .count_connectors = 1,
				      .crtc_id = crtcs[0], .fb_id = fb.fb_id, .mode = *m, .mode_valid = 1 };
	if (px == MAP_FAILED || ioctl(fd, DRM_IOCTL_MODE_SETCRTC, &crtc) < 0)
		return perror("drmloop: set mode"), 1;
	struct drm_mode_fb_dirty_cmd dirty = { .fb_id = fb.fb_id };
	unsigned frames = 0;
	double t0 = now(), t;
	do {
		uint32_t colour = (frames * 0x010305u) & 0xffffff;
		for (size_t i = 0; i < cd.size / 4; i++)
			px[i] = colour;
		if (ioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &dirty) < 0)
			return perror("drmloop: dirty"), 1;
		frames++;
		t = now();
	} while (t - t0 < seconds);
	printf("DRM-FPS %.1f %u %.2f %ux%u\n", frames / (t - t0), frames, t - t0, cd.width, cd.height);
	return 0;
}

/* The legacy cursor ioctl on the first CRTC (fbcon drives its mode): the
 * driver sends the image and the place as UPDATE_CURSOR. */
static int cursor(int x, int y)
{
	int fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	uint32_t crtcs[8];
	struct drm_mode_card_res res = { .crtc_id_ptr = (uintptr_t)crtcs, .count_crtcs = 8 };
	if (fd < 0 || ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0 || !res.count_crtcs)
		return perror("cursor: /dev/dri/card0"), 1;
	struct drm_mode_create_dumb cd = { .width = 64, .height = 64, .bpp = 32 };
	if (ioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd) < 0)
		return perror("cursor: dumb buffer"), 1;
	struct drm_mode_map_dumb md = { .handle = cd.handle };
	uint32_t *px = ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &md) < 0 ? MAP_FAILED :
		       mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, md.offset);
	if (px == MAP_FAILED)
		return perror("cursor: map"), 1;
	for (unsigned r = 0; r < 64; r++)
		for (unsigned c = 0; c < 64; c++)
			px[r * cd.pitch / 4 + c] = r < 32 && c < 32 ? 0xffff00ff : 0; /* ARGB */
	struct drm_mode_cursor mc = { .flags = DRM_MODE_CURSOR_BO | DRM_MODE_CURSOR_MOVE, .crtc_id = crtcs[0],
				      .x = x, .y = y, .width = 64, .height = 64, .handle = cd.handle };
	if (ioctl(fd, DRM_IOCTL_MODE_CURSOR, &mc) < 0)
		return perror("cursor: set"), 1;
	printf("CURSOR-SET\n");
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "cursor"))
		return cursor(atoi(argv[2]), atoi(argv[3]));
	if (argc >= 3 && !strcmp(argv[1], "drmloop"))
		return drmloop(atof(argv[2]));
	if (argc >= 2 && !strcmp(argv[1], "info")) {
		struct fb_var_screeninfo v;
		struct fb_fix_screeninfo f;
		fb_open(&v, &f);
		printf("FB-INFO %ux%u stride %u bpp %u\n", v.xres, v.yres, f.line_length, v.bits_per_pixel);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "fill"))
		return fill(argc, argv);
	if (argc >= 4 && !strcmp(argv[1], "events"))
		return events(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: kvkit-display info | fill X Y W H RRGGBB | events NAME COUNT | drmloop SECONDS | cursor X Y\n");
	return 2;
}
