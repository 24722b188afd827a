/* virtio-gpu 2D command processing (virtio 1.2 5.7.6), apart from the
 * transport so the unit tests and the fuzzer drive it with raw requests.
 * Everything here trusts nothing the guest sends: resource sizes count
 * against a per-device memory cap, every rectangle is checked against its
 * resource, every backing entry must lie inside guest RAM, and a bad
 * request gets the virtio-gpu error response, never a crash. */
#ifndef KVKIT_VIRTIO_GPU_CTRL_H
#define KVKIT_VIRTIO_GPU_CTRL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/virtio_gpu.h>
#include "../vmm/guest_mem.h"
#include "virtq.h"

/* Host memory all resources of one device may take (docs/display.md). */
#define GPU_MEM_CAP_DEFAULT (256ull << 20)
#define GPU_MAX_RESOURCES 4096
/* A request's readable part is copied whole: a header and at most this
 * many backing entries (16384 pages = 64 MiB of 4 KiB pages per attach). */
#define GPU_MAX_BACKING_ENTRIES 16384
#define GPU_MAX_REQUEST (sizeof(struct virtio_gpu_resource_attach_backing) + \
			 GPU_MAX_BACKING_ENTRIES * sizeof(struct virtio_gpu_mem_entry))
/* The largest response: GET_EDID's. */
#define GPU_MAX_RESPONSE sizeof(struct virtio_gpu_resp_edid)

struct gpu_resource {
	uint32_t id, format, width, height;
	uint8_t *pixels; /* width * height * 4 bytes, the host's copy */
	struct iovec *backing; /* the guest's pages, checked at attach */
	unsigned nbacking;
	uint64_t backing_len;
	struct gpu_resource *next;
};

struct gpu_rect {
	uint32_t x, y, width, height;
};

struct gpu_state {
	uint32_t width, height; /* the mode offered: display info and EDID */
	uint64_t mem_cap, mem_used;
	const struct gmem *mem;
	struct gpu_resource *resources;
	unsigned nresources;
	struct {
		uint32_t resource_id; /* 0: disabled */
		struct gpu_rect r;
	} scanout;
	struct {
		uint32_t resource_id, hot_x, hot_y, x, y;
	} cursor;
	/* Counts each change of what the scanout shows (a new scanout, a flush
	 * of its resource): a display redraws when it moved. Written under the
	 * device's lock, read without it (__atomic). */
	uint64_t updates;
	/* Counts each change of the cursor (its image, place or resource), so
	 * a display that sends the cursor apart (VNC) skips it otherwise. */
	uint64_t cursor_updates;
};

void gpu_state_init(struct gpu_state *g, const struct gmem *mem, uint32_t width, uint32_t height);
void gpu_state_free(struct gpu_state *g);

/* One control- or cursor-queue request (its readable bytes) in, the
 * response out; returns the response's length (0: nothing fits in room,
 * which the command still ran: cursor commands come without one). */
size_t gpu_handle(struct gpu_state *g, const uint8_t *req, size_t len, uint8_t *resp, size_t room);

/* One popped chain of the control or cursor queue: its readable part is
 * copied into req (GPU_MAX_REQUEST bytes), handled, and the response
 * written into its writable part; returns the bytes written. Once per
 * failing command type, fail (when not NULL) names it and the error. */
uint32_t gpu_serve_chain(struct gpu_state *g, const struct virtq_elem *e, uint8_t *req, uint32_t fail[2]);

/* The scanout as packed 8-bit RGB, row by row (malloc'ed); -1 when no
 * scanout is set or memory is short. */
int gpu_scanout_rgb(const struct gpu_state *g, uint8_t **rgb, uint32_t *width, uint32_t *height);

/* The cursor as 8-bit RGBA (rgba malloc'ed) with its place on the
 * scanout and its hot spot; -1 when the guest shows none. */
struct gpu_cursor_image {
	uint8_t *rgba;
	uint32_t width, height, x, y, hot_x, hot_y;
};
int gpu_cursor_rgba(const struct gpu_state *g, struct gpu_cursor_image *c);

/* A 128-byte EDID (1.4) whose preferred mode is width x height. */
void gpu_edid(uint32_t width, uint32_t height, uint8_t out[128]);

#endif
