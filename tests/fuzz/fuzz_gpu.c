/* libFuzzer harness: a hostile virtio-gpu control queue. The input is
 * guest memory holding a queue; every chain goes through gpu_serve_chain
 * as the device serves it, so backing entries point into that memory and
 * resources, transfers, scanouts and cursors come from the guest. The
 * memory cap must hold, and the scanout and cursor must read back. */
#include <stdint.h>
#include <stdlib.h>
#include "../../src/virtio/gpu_ctrl.h"
#include "../lib/fake_guest.h"

#define MEM 0x10000

static struct virtq_elem elem;
static uint8_t req[GPU_MAX_REQUEST];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmem mem;
	struct virtq vq;
	struct gpu_state g;
	if (fuzz_guest_with_queue(&mem, &vq, MEM, data, size) < 0)
		return 0;
	gpu_state_init(&g, &mem, 640, 480);
	g.mem_cap = 4 << 20; /* small, so the cap is reached */
	for (int i = 0; i < 256 && virtq_pop(&vq, &elem) > 0; i++) {
		uint32_t fail[2];
		uint32_t n = gpu_serve_chain(&g, &elem, req, fail);
		if (n > elem.in_len || g.mem_used > g.mem_cap)
			abort();
		virtq_push(&vq, elem.head, n);
		uint8_t *rgb;
		uint32_t w, h;
		if (gpu_scanout_rgb(&g, &rgb, &w, &h) == 0) {
			volatile uint8_t sink = rgb[(size_t)w * h * 3 - 1];
			(void)sink;
			free(rgb);
		}
		struct gpu_cursor_image c;
		if (gpu_cursor_rgba(&g, &c) == 0)
			free(c.rgba);
	}
	gpu_state_free(&g);
	return 0;
}
