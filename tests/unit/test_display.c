/* virtio-gpu's command processing (gpu_ctrl.c), virtio-input's config
 * answers (input_model.c) and the key maps (keymap.c), driven with raw
 * requests against a fake guest RAM: what a driver does, and what a
 * hostile one does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <linux/input.h>
#include "../../src/display/keymap.h"
#include "../../src/virtio/gpu_ctrl.h"
#include "../../src/virtio/input_model.h"

#define RAM_GPA 0x100000ull
#define RAM_SIZE (1u << 20)
static uint8_t *ram;
static struct gmem mem;
static struct gpu_state g;

static int setup(void **s)
{
	ram = calloc(1, RAM_SIZE);
	memset(&mem, 0, sizeof(mem));
	gmem_add(&mem, RAM_GPA, RAM_SIZE, ram);
	gpu_state_init(&g, &mem, 800, 600);
	return 0;
}

static int teardown(void **s)
{
	gpu_state_free(&g);
	free(ram);
	return 0;
}

static uint32_t resp_type(const uint8_t *resp)
{
	struct virtio_gpu_ctrl_hdr h;
	memcpy(&h, resp, sizeof(h));
	return le32toh(h.type);
}

/* Send a request; returns the response type (the response in *resp). */
static uint32_t send(const void *req, size_t len, uint8_t *resp)
{
	size_t n = gpu_handle(&g, req, len, resp, GPU_MAX_RESPONSE);
	assert_true(n >= sizeof(struct virtio_gpu_ctrl_hdr));
	return resp_type(resp);
}

static uint32_t create(uint32_t id, uint32_t format, uint32_t w, uint32_t h)
{
	struct virtio_gpu_resource_create_2d c = { .hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D, .resource_id = id,
						   .format = format, .width = w, .height = h };
	uint8_t resp[GPU_MAX_RESPONSE];
	return send(&c, sizeof(c), resp);
}

static uint32_t attach(uint32_t id, const uint64_t *addr, const uint32_t *len, unsigned n, unsigned claimed)
{
	uint8_t req[sizeof(struct virtio_gpu_resource_attach_backing) + 8 * sizeof(struct virtio_gpu_mem_entry)];
	struct virtio_gpu_resource_attach_backing a = { .hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
							.resource_id = id, .nr_entries = claimed };
	memcpy(req, &a, sizeof(a));
	for (unsigned i = 0; i < n; i++) {
		struct virtio_gpu_mem_entry e = { .addr = addr[i], .length = len[i] };
		memcpy(req + sizeof(a) + i * sizeof(e), &e, sizeof(e));
	}
	uint8_t resp[GPU_MAX_RESPONSE];
	return send(req, sizeof(a) + n * sizeof(struct virtio_gpu_mem_entry), resp);
}

static uint32_t transfer(uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint64_t off)
{
	struct virtio_gpu_transfer_to_host_2d t = { .hdr.type = VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D, .r = { x, y, w, h },
						    .offset = off, .resource_id = id };
	uint8_t resp[GPU_MAX_RESPONSE];
	return send(&t, sizeof(t), resp);
}

static uint32_t scanout(uint32_t sid, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct virtio_gpu_set_scanout s = { .hdr.type = VIRTIO_GPU_CMD_SET_SCANOUT, .r = { x, y, w, h },
					    .scanout_id = sid, .resource_id = id };
	uint8_t resp[GPU_MAX_RESPONSE];
	return send(&s, sizeof(s), resp);
}

static uint32_t flush(uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct virtio_gpu_resource_flush f = { .hdr.type = VIRTIO_GPU_CMD_RESOURCE_FLUSH, .r = { x, y, w, h },
					       .resource_id = id };
	uint8_t resp[GPU_MAX_RESPONSE];
	return send(&f, sizeof(f), resp);
}

static void display_info_and_edid(void **s)
{
	uint8_t resp[GPU_MAX_RESPONSE];
	struct virtio_gpu_ctrl_hdr h = { .type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO };
	assert_int_equal(send(&h, sizeof(h), resp), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	struct virtio_gpu_resp_display_info d;
	memcpy(&d, resp, sizeof(d));
	assert_int_equal(d.pmodes[0].r.width, 800);
	assert_int_equal(d.pmodes[0].r.height, 600);
	assert_int_equal(d.pmodes[0].enabled, 1);
	assert_int_equal(d.pmodes[1].enabled, 0);

	struct virtio_gpu_cmd_get_edid e = { .hdr.type = VIRTIO_GPU_CMD_GET_EDID, .scanout = 0 };
	assert_int_equal(send(&e, sizeof(e), resp), VIRTIO_GPU_RESP_OK_EDID);
	struct virtio_gpu_resp_edid r;
	memcpy(&r, resp, sizeof(r));
	assert_int_equal(r.size, 128);
	static const uint8_t header[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0 };
	assert_memory_equal(r.edid, header, 8);
	uint8_t sum = 0;
	for (int i = 0; i < 128; i++)
		sum += r.edid[i];
	assert_int_equal(sum, 0);
	const uint8_t *dtd = r.edid + 54; /* the preferred mode */
	assert_int_equal(dtd[2] | (dtd[4] >> 4) << 8, 800);
	assert_int_equal(dtd[5] | (dtd[7] >> 4) << 8, 600);
	assert_true(dtd[0] | dtd[1] << 8); /* a pixel clock */
	e.scanout = 1;
	assert_int_equal(send(&e, sizeof(e), resp), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	/* a mode the 12-bit timing fields cannot hold: no detailed timing, still valid */
	uint8_t big[128];
	gpu_edid(8192, 4320, big);
	sum = 0;
	for (int i = 0; i < 128; i++)
		sum += big[i];
	assert_int_equal(sum, 0);
	assert_int_equal(big[54] | big[55], 0);
}

/* A 4x2 resource over two guest ranges; the whole of it, then a part. */
static void draw_and_read_back(void **s)
{
	assert_int_equal(create(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4, 2), VIRTIO_GPU_RESP_OK_NODATA);
	/* pixel i is B=i, G=0x10+i, R=0x20+i, split across two ranges */
	uint8_t *a = ram + 0x1000, *b = ram + 0x8000;
	for (int i = 0; i < 8; i++) {
		uint8_t *p = i < 5 ? a + 4 * i : b + 4 * (i - 5);
		p[0] = i, p[1] = 0x10 + i, p[2] = 0x20 + i, p[3] = 0;
	}
	uint64_t addr[2] = { RAM_GPA + 0x1000, RAM_GPA + 0x8000 };
	uint32_t len[2] = { 20, 12 };
	assert_int_equal(attach(1, addr, len, 2, 2), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(transfer(1, 0, 0, 4, 2, 0), VIRTIO_GPU_RESP_OK_NODATA);
	uint64_t before = g.updates, cursor_before = g.cursor_updates;
	assert_int_equal(scanout(0, 1, 0, 0, 4, 2), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(flush(1, 0, 0, 4, 2), VIRTIO_GPU_RESP_OK_NODATA);
	assert_true(g.updates >= before + 2);
	/* the screen changed, the cursor did not: VNC sends no new shape */
	assert_true(g.cursor_updates == cursor_before);
	uint8_t *rgb;
	uint32_t w, h;
	assert_int_equal(gpu_scanout_rgb(&g, &rgb, &w, &h), 0);
	assert_int_equal(w, 4);
	assert_int_equal(h, 2);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(rgb[3 * i], 0x20 + i);
		assert_int_equal(rgb[3 * i + 1], 0x10 + i);
		assert_int_equal(rgb[3 * i + 2], i);
	}
	free(rgb);
	/* change pixels 5 and 6 (row 1, x 1..2) in the guest; transfer only them */
	for (int i = 0; i < 8; i++) {
		uint8_t *p = i < 5 ? a + 4 * i : b + 4 * (i - 5);
		p[2] = 0xff;
	}
	assert_int_equal(transfer(1, 1, 1, 2, 1, 1 * 16 + 1 * 4), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(gpu_scanout_rgb(&g, &rgb, &w, &h), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(rgb[3 * i], i == 5 || i == 6 ? 0xff : 0x20 + i);
	free(rgb);
	/* a scanout of part of the resource */
	assert_int_equal(scanout(0, 1, 2, 1, 2, 1), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(gpu_scanout_rgb(&g, &rgb, &w, &h), 0);
	assert_int_equal(w * 10 + h, 21);
	assert_int_equal(rgb[0], 0xff); /* pixel 6 */
	assert_int_equal(rgb[3], 0x27); /* pixel 7, untouched */
	free(rgb);
	/* unref: memory back, scanout gone */
	struct virtio_gpu_resource_unref u = { .hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF, .resource_id = 1 };
	uint8_t resp[GPU_MAX_RESPONSE];
	assert_int_equal(send(&u, sizeof(u), resp), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(g.mem_used, 0);
	assert_int_equal(gpu_scanout_rgb(&g, &rgb, &w, &h), -1);
	assert_int_equal(send(&u, sizeof(u), resp), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

static void hostile_resources(void **s)
{
	/* 65535x65535x4 is 16 GiB: refused, nothing taken */
	assert_int_equal(create(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 65535, 65535), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	assert_int_equal(g.mem_used, 0);
	assert_int_equal(create(0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4, 4), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(create(1, 99, 4, 4), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(create(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, 4), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* the cap holds across resources */
	g.mem_cap = 1 << 20;
	assert_int_equal(create(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 512, 512), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(create(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(create(2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 1, 1), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	assert_int_equal(g.mem_used, 1 << 20);

	/* backing outside RAM, or ending past it, or more entries claimed than sent */
	uint64_t out[1] = { RAM_GPA + RAM_SIZE - 8 };
	uint32_t len[1] = { 16 };
	assert_int_equal(attach(1, out, len, 1, 1), VIRTIO_GPU_RESP_ERR_UNSPEC);
	out[0] = 0;
	assert_int_equal(attach(1, out, len, 1, 1), VIRTIO_GPU_RESP_ERR_UNSPEC);
	out[0] = RAM_GPA;
	assert_int_equal(attach(1, out, len, 1, 5), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(attach(7, out, len, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	/* no backing yet: no transfer */
	assert_int_equal(transfer(1, 0, 0, 1, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	len[0] = 4080; /* 16 bytes short of two full rows */
	assert_int_equal(attach(1, out, len, 1, 1), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(attach(1, out, len, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* twice */
	/* rectangles past the resource, wrapping, or reading past the backing */
	assert_int_equal(transfer(1, 500, 0, 13, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(1, 0xffffffff, 0, 2, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(1, 0, 0, 512, 3, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(1, 0, 0, 512, 2, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(1, 0, 0, 4, 1, 4090), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(1, 0, 0, 4, 1, UINT64_MAX - 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(1, 0, 0, 512, 1, 0), VIRTIO_GPU_RESP_OK_NODATA);
	/* scanouts and flushes of what is not there */
	assert_int_equal(flush(9, 0, 0, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(flush(1, 0, 0, 513, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(scanout(1, 1, 0, 0, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	assert_int_equal(scanout(0, 9, 0, 0, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(scanout(0, 1, 1, 0, 512, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(scanout(0, 1, 0, 0, 0, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(scanout(0, 0, 0, 0, 0, 0), VIRTIO_GPU_RESP_OK_NODATA); /* display off */
	/* detach twice */
	struct virtio_gpu_resource_detach_backing d = { .hdr.type = VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, .resource_id = 1 };
	uint8_t resp[GPU_MAX_RESPONSE];
	assert_int_equal(send(&d, sizeof(d), resp), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(send(&d, sizeof(d), resp), VIRTIO_GPU_RESP_ERR_UNSPEC);
}

static void malformed_requests_and_fences(void **s)
{
	uint8_t resp[GPU_MAX_RESPONSE];
	uint8_t junk[8] = { 1, 2, 3 };
	assert_int_equal(send(junk, sizeof(junk), resp), VIRTIO_GPU_RESP_ERR_UNSPEC); /* shorter than a header */
	struct virtio_gpu_ctrl_hdr h = { .type = 0x0207 /* a 3D command */ };
	assert_int_equal(send(&h, sizeof(h), resp), VIRTIO_GPU_RESP_ERR_UNSPEC);
	h.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D; /* header only: the body is missing */
	assert_int_equal(send(&h, sizeof(h), resp), VIRTIO_GPU_RESP_ERR_UNSPEC);
	/* a fenced command: the reply carries the fence */
	h = (struct virtio_gpu_ctrl_hdr){ .type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO, .flags = VIRTIO_GPU_FLAG_FENCE,
					  .fence_id = 0x1234567890ull };
	assert_int_equal(send(&h, sizeof(h), resp), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	struct virtio_gpu_ctrl_hdr r;
	memcpy(&r, resp, sizeof(r));
	assert_int_equal(r.flags & VIRTIO_GPU_FLAG_FENCE, VIRTIO_GPU_FLAG_FENCE);
	assert_int_equal(r.fence_id, 0x1234567890ull);
	/* a reply buffer too small for the data: the header alone, an error */
	assert_int_equal(gpu_handle(&g, (uint8_t *)&h, sizeof(h), resp, sizeof(h)), sizeof(h));
	assert_int_equal(resp_type(resp), VIRTIO_GPU_RESP_ERR_UNSPEC);
	assert_int_equal(gpu_handle(&g, (uint8_t *)&h, sizeof(h), resp, 4), 0);
}

static void cursor_image(void **s)
{
	struct gpu_cursor_image c;
	assert_int_equal(gpu_cursor_rgba(&g, &c), -1);
	assert_int_equal(create(5, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 2, 1), VIRTIO_GPU_RESP_OK_NODATA);
	uint8_t *p = ram + 0x2000;
	p[0] = 1, p[1] = 2, p[2] = 3, p[3] = 0x80;
	uint64_t addr[1] = { RAM_GPA + 0x2000 };
	uint32_t len[1] = { 8 };
	assert_int_equal(attach(5, addr, len, 1, 1), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(transfer(5, 0, 0, 2, 1, 0), VIRTIO_GPU_RESP_OK_NODATA);
	struct virtio_gpu_update_cursor u = { .hdr.type = VIRTIO_GPU_CMD_UPDATE_CURSOR, .pos = { 0, 10, 20, 0 },
					      .resource_id = 5, .hot_x = 1 };
	uint8_t resp[GPU_MAX_RESPONSE];
	uint64_t cursor_before = g.cursor_updates;
	assert_int_equal(send(&u, sizeof(u), resp), VIRTIO_GPU_RESP_OK_NODATA);
	assert_true(g.cursor_updates > cursor_before);
	cursor_before = g.cursor_updates;
	/* new pixels in the cursor's resource are a new cursor image */
	assert_int_equal(transfer(5, 0, 0, 2, 1, 0), VIRTIO_GPU_RESP_OK_NODATA);
	assert_true(g.cursor_updates > cursor_before);
	u.hdr.type = VIRTIO_GPU_CMD_MOVE_CURSOR;
	u.pos.x = 30;
	u.resource_id = 99; /* ignored by a move */
	assert_int_equal(send(&u, sizeof(u), resp), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(gpu_cursor_rgba(&g, &c), 0);
	assert_int_equal(c.width * 10 + c.height, 21);
	assert_int_equal(c.x * 100 + c.y, 3020);
	assert_int_equal(c.hot_x, 1);
	uint8_t want[4] = { 3, 2, 1, 0x80 };
	assert_memory_equal(c.rgba, want, 4);
	free(c.rgba);
	u.hdr.type = VIRTIO_GPU_CMD_UPDATE_CURSOR;
	u.resource_id = 99;
	assert_int_equal(send(&u, sizeof(u), resp), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	/* Linux's cursor queue: no room for a reply, the command runs all
	 * the same; its cursors are XRGB dumb buffers filled with ARGB: the
	 * X byte is the alpha */
	assert_int_equal(create(6, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 1, 1), VIRTIO_GPU_RESP_OK_NODATA);
	p = ram + 0x3000;
	p[0] = 4, p[1] = 5, p[2] = 6, p[3] = 0;
	addr[0] = RAM_GPA + 0x3000, len[0] = 4;
	assert_int_equal(attach(6, addr, len, 1, 1), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(transfer(6, 0, 0, 1, 1, 0), VIRTIO_GPU_RESP_OK_NODATA);
	u.resource_id = 6, u.pos.x = 7;
	assert_int_equal(gpu_handle(&g, (const uint8_t *)&u, sizeof(u), resp, 0), 0);
	assert_int_equal(gpu_cursor_rgba(&g, &c), 0);
	assert_int_equal(c.x, 7);
	uint8_t clear[4] = { 6, 5, 4, 0 };
	assert_memory_equal(c.rgba, clear, 4);
	free(c.rgba);
}

static struct virtio_input_config ask(enum kv_input_kind kind, uint8_t select, uint8_t subsel)
{
	struct virtio_input_config c;
	memset(&c, 0xee, sizeof(c)); /* whatever the driver left there */
	c.select = select, c.subsel = subsel;
	input_config_answer(kind, 0, &c);
	return c;
}

static bool has_bit(const struct virtio_input_config *c, unsigned bit)
{
	return bit / 8 < c->size && (c->u.bitmap[bit / 8] >> (bit % 8) & 1);
}

static void input_config_space(void **s)
{
	struct virtio_input_config c = ask(KV_INPUT_KEYBOARD, VIRTIO_INPUT_CFG_ID_NAME, 0);
	assert_int_equal(c.size, strlen("kvkit virtio keyboard"));
	assert_memory_equal(c.u.string, "kvkit virtio keyboard", c.size);
	c = ask(KV_INPUT_POINTING, VIRTIO_INPUT_CFG_ID_NAME, 0);
	assert_memory_equal(c.u.string, "kvkit virtio tablet", c.size);
	c = ask(KV_INPUT_KEYBOARD, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY);
	assert_true(has_bit(&c, KEY_A) && has_bit(&c, KEY_ESC) && has_bit(&c, KEY_MICMUTE) && !has_bit(&c, BTN_LEFT));
	assert_int_equal(ask(KV_INPUT_KEYBOARD, VIRTIO_INPUT_CFG_EV_BITS, EV_REP).size, 1);
	c = ask(KV_INPUT_KEYBOARD, VIRTIO_INPUT_CFG_EV_BITS, EV_LED);
	assert_true(has_bit(&c, LED_CAPSL));
	assert_int_equal(ask(KV_INPUT_KEYBOARD, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS).size, 0);
	c = ask(KV_INPUT_POINTING, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY);
	assert_true(has_bit(&c, BTN_LEFT) && has_bit(&c, BTN_RIGHT) && !has_bit(&c, KEY_A));
	c = ask(KV_INPUT_POINTING, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS);
	assert_true(has_bit(&c, ABS_X) && has_bit(&c, ABS_Y));
	c = ask(KV_INPUT_POINTING, VIRTIO_INPUT_CFG_ABS_INFO, ABS_Y);
	assert_int_equal(c.size, sizeof(struct virtio_input_absinfo));
	assert_int_equal(c.u.abs.min, 0);
	assert_int_equal(c.u.abs.max, INPUT_ABS_MAX);
	assert_int_equal(ask(KV_INPUT_POINTING, VIRTIO_INPUT_CFG_ABS_INFO, ABS_PRESSURE).size, 0);
	assert_int_equal(ask(KV_INPUT_KEYBOARD, VIRTIO_INPUT_CFG_ABS_INFO, ABS_X).size, 0);
	c = ask(KV_INPUT_POINTING, VIRTIO_INPUT_CFG_ID_DEVIDS, 0);
	assert_int_equal(c.size, sizeof(struct virtio_input_devids));
	assert_int_equal(c.u.ids.bustype, BUS_VIRTUAL);
	c = ask(KV_INPUT_KEYBOARD, 0x7f, 0); /* unknown: nothing, and the union cleared */
	assert_int_equal(c.size, 0);
	assert_int_equal(c.u.bitmap[0], 0);
	assert_int_equal(ask(KV_INPUT_KEYBOARD, VIRTIO_INPUT_CFG_UNSET, 0).size, 0);
	/* pointer positions on the tablet's range: ends, middle, clamped */
	assert_int_equal(input_abs_scale(0, 800), 0);
	assert_int_equal(input_abs_scale(799, 800), INPUT_ABS_MAX);
	assert_int_equal(input_abs_scale(400, 801), INPUT_ABS_MAX / 2);
	assert_int_equal(input_abs_scale(5000, 800), INPUT_ABS_MAX);
	assert_int_equal(input_abs_scale(-3, 800), 0);
	assert_int_equal(input_abs_scale(7, 1), 0);
}

static void key_maps(void **s)
{
	assert_int_equal(keymap_usb_to_linux(0x04), KEY_A);
	assert_int_equal(keymap_usb_to_linux(0x1d), KEY_Z);
	assert_int_equal(keymap_usb_to_linux(0x27), KEY_0);
	assert_int_equal(keymap_usb_to_linux(0x28), KEY_ENTER);
	assert_int_equal(keymap_usb_to_linux(0x45), KEY_F12);
	assert_int_equal(keymap_usb_to_linux(0x52), KEY_UP);
	assert_int_equal(keymap_usb_to_linux(0xe1), KEY_LEFTSHIFT);
	assert_int_equal(keymap_usb_to_linux(0xe7), KEY_RIGHTMETA);
	assert_int_equal(keymap_usb_to_linux(0x74), 0);
	assert_int_equal(keymap_usb_to_linux(100000), 0);
	assert_int_equal(keymap_keysym_to_linux('a'), KEY_A);
	assert_int_equal(keymap_keysym_to_linux('Q'), KEY_Q);
	assert_int_equal(keymap_keysym_to_linux('?'), KEY_SLASH);
	assert_int_equal(keymap_keysym_to_linux('7'), KEY_7);
	assert_int_equal(keymap_keysym_to_linux(0xff0d), KEY_ENTER);
	assert_int_equal(keymap_keysym_to_linux(0xffbe), KEY_F1);
	assert_int_equal(keymap_keysym_to_linux(0xffc7), KEY_F10);
	assert_int_equal(keymap_keysym_to_linux(0xffc9), KEY_F12);
	assert_int_equal(keymap_keysym_to_linux(0x20ac /* euro */), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(display_info_and_edid, setup, teardown),
		cmocka_unit_test_setup_teardown(draw_and_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_resources, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_requests_and_fences, setup, teardown),
		cmocka_unit_test_setup_teardown(cursor_image, setup, teardown),
		cmocka_unit_test(input_config_space),
		cmocka_unit_test(key_maps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
