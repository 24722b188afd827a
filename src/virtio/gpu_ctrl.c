/* virtio-gpu 2D commands: see gpu_ctrl.h. */
#include "gpu_ctrl.h"
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include "../util/iov.h"

void gpu_state_init(struct gpu_state *g, const struct gmem *mem, uint32_t width, uint32_t height)
{
	memset(g, 0, sizeof(*g));
	g->mem = mem;
	g->width = width;
	g->height = height;
	g->mem_cap = GPU_MEM_CAP_DEFAULT;
}

static void free_resource(struct gpu_resource *r)
{
	free(r->pixels);
	free(r->backing);
	free(r);
}

void gpu_state_free(struct gpu_state *g)
{
	while (g->resources) {
		struct gpu_resource *r = g->resources;
		g->resources = r->next;
		free_resource(r);
	}
	g->nresources = 0;
	g->mem_used = 0;
}

static struct gpu_resource *find(const struct gpu_state *g, uint32_t id)
{
	for (struct gpu_resource *r = g->resources; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

/* Byte offsets of red, green and blue in a pixel of a 32-bit format the
 * Linux driver may pick (the fourth byte is alpha or unused); false for any
 * other format. */
static bool format_layout(uint32_t format, unsigned *ro, unsigned *go, unsigned *bo)
{
	switch (format) {
	case VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM:
	case VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM:
		*bo = 0, *go = 1, *ro = 2;
		return true;
	case VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM:
	case VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM:
		*ro = 1, *go = 2, *bo = 3;
		return true;
	case VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM:
	case VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM:
		*ro = 0, *go = 1, *bo = 2;
		return true;
	case VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM:
	case VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM:
		*bo = 1, *go = 2, *ro = 3;
		return true;
	}
	return false;
}

/* Is r inside a width x height resource? (64-bit sums: no wrap-around) */
static bool rect_inside(const struct virtio_gpu_rect *r, uint32_t width, uint32_t height)
{
	uint64_t x = le32toh(r->x), y = le32toh(r->y), w = le32toh(r->width), h = le32toh(r->height);
	return x + w <= width && y + h <= height;
}

static struct gpu_rect host_rect(const struct virtio_gpu_rect *r)
{
	return (struct gpu_rect){ le32toh(r->x), le32toh(r->y), le32toh(r->width), le32toh(r->height) };
}

static uint32_t create_2d(struct gpu_state *g, const struct virtio_gpu_resource_create_2d *c)
{
	uint32_t id = le32toh(c->resource_id), w = le32toh(c->width), h = le32toh(c->height);
	unsigned ro, go, bo;
	if (id == 0 || find(g, id))
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!format_layout(le32toh(c->format), &ro, &go, &bo) || w == 0 || h == 0)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	uint64_t bytes = (uint64_t)w * h * 4;
	if (bytes > g->mem_cap - g->mem_used || g->nresources >= GPU_MAX_RESOURCES)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	struct gpu_resource *r = calloc(1, sizeof(*r));
	if (!r || !(r->pixels = calloc(1, bytes))) {
		free(r);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	r->id = id, r->format = le32toh(c->format), r->width = w, r->height = h;
	r->next = g->resources;
	g->resources = r;
	g->nresources++;
	g->mem_used += bytes;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t unref(struct gpu_state *g, uint32_t id)
{
	for (struct gpu_resource **p = &g->resources; *p; p = &(*p)->next) {
		struct gpu_resource *r = *p;
		if (r->id != id)
			continue;
		*p = r->next;
		g->nresources--;
		g->mem_used -= (uint64_t)r->width * r->height * 4;
		if (g->scanout.resource_id == id)
			g->scanout.resource_id = 0;
		if (g->cursor.resource_id == id) {
			g->cursor.resource_id = 0;
			__atomic_add_fetch(&g->cursor_updates, 1, __ATOMIC_RELEASE);
		}
		free_resource(r);
		return VIRTIO_GPU_RESP_OK_NODATA;
	}
	return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
}

static uint32_t attach_backing(struct gpu_state *g, const uint8_t *req, size_t len)
{
	struct virtio_gpu_resource_attach_backing a;
	memcpy(&a, req, sizeof(a));
	struct gpu_resource *r = find(g, le32toh(a.resource_id));
	uint32_t n = le32toh(a.nr_entries);
	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (r->backing || n == 0 || n > GPU_MAX_BACKING_ENTRIES ||
	    (len - sizeof(a)) / sizeof(struct virtio_gpu_mem_entry) < n)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	struct iovec *iov = calloc(n, sizeof(*iov));
	if (!iov)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	uint64_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct virtio_gpu_mem_entry e;
		memcpy(&e, req + sizeof(a) + i * sizeof(e), sizeof(e));
		uint32_t elen = le32toh(e.length);
		void *p = elen ? gmem_ptr(g->mem, le64toh(e.addr), elen) : NULL;
		if (!p) { /* outside guest RAM (or empty): the guest's error */
			free(iov);
			return VIRTIO_GPU_RESP_ERR_UNSPEC;
		}
		iov[i] = (struct iovec){ p, elen };
		total += elen;
	}
	r->backing = iov;
	r->nbacking = n;
	r->backing_len = total;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t detach_backing(struct gpu_state *g, uint32_t id)
{
	struct gpu_resource *r = find(g, id);
	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!r->backing)
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	free(r->backing);
	r->backing = NULL;
	r->nbacking = 0;
	r->backing_len = 0;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

/* Guest pages → host copy, row by row: row h of the rectangle starts at
 * offset + h * stride in the backing (the offset names the rectangle's
 * first pixel, as Linux and QEMU have it). */
static uint32_t transfer_to_host(struct gpu_state *g, const struct virtio_gpu_transfer_to_host_2d *t)
{
	struct gpu_resource *r = find(g, le32toh(t->resource_id));
	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!r->backing || !rect_inside(&t->r, r->width, r->height))
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	struct gpu_rect rc = host_rect(&t->r);
	uint64_t stride = (uint64_t)r->width * 4, row = (uint64_t)rc.width * 4, off = le64toh(t->offset);
	if (rc.height == 0 || rc.width == 0)
		return VIRTIO_GPU_RESP_OK_NODATA;
	/* the last row's end must lie inside the backing */
	if (off > r->backing_len || (rc.height - 1) * stride + row > r->backing_len - off)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	for (uint32_t h = 0; h < rc.height; h++) {
		uint8_t *dst = r->pixels + (rc.y + h) * stride + (uint64_t)rc.x * 4;
		iov_to_buf(r->backing, r->nbacking, off + h * stride, dst, row);
	}
	if (g->cursor.resource_id == r->id)
		__atomic_add_fetch(&g->cursor_updates, 1, __ATOMIC_RELEASE);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t set_scanout(struct gpu_state *g, const struct virtio_gpu_set_scanout *s)
{
	uint32_t id = le32toh(s->resource_id);
	if (le32toh(s->scanout_id) != 0)
		return VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
	if (id == 0) { /* the guest turns the display off */
		g->scanout.resource_id = 0;
		__atomic_add_fetch(&g->updates, 1, __ATOMIC_RELEASE);
		return VIRTIO_GPU_RESP_OK_NODATA;
	}
	struct gpu_resource *r = find(g, id);
	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!rect_inside(&s->r, r->width, r->height) || le32toh(s->r.width) == 0 || le32toh(s->r.height) == 0)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	g->scanout.resource_id = id;
	g->scanout.r = host_rect(&s->r);
	__atomic_add_fetch(&g->updates, 1, __ATOMIC_RELEASE);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t flush(struct gpu_state *g, const struct virtio_gpu_resource_flush *f)
{
	struct gpu_resource *r = find(g, le32toh(f->resource_id));
	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!rect_inside(&f->r, r->width, r->height))
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	if (g->scanout.resource_id == r->id)
		__atomic_add_fetch(&g->updates, 1, __ATOMIC_RELEASE);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static size_t display_info(const struct gpu_state *g, uint8_t *resp)
{
	struct virtio_gpu_resp_display_info d;
	memset(&d, 0, sizeof(d));
	d.pmodes[0].r.width = htole32(g->width);
	d.pmodes[0].r.height = htole32(g->height);
	d.pmodes[0].enabled = htole32(1);
	memcpy(resp, &d, sizeof(d));
	return sizeof(d);
}

static size_t edid(const struct gpu_state *g, const struct virtio_gpu_cmd_get_edid *e, uint8_t *resp, uint32_t *type)
{
	struct virtio_gpu_resp_edid r;
	if (le32toh(e->scanout) != 0) {
		*type = VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
		return sizeof(struct virtio_gpu_ctrl_hdr);
	}
	memset(&r, 0, sizeof(r));
	r.size = htole32(128);
	gpu_edid(g->width, g->height, r.edid);
	memcpy(resp, &r, sizeof(r));
	*type = VIRTIO_GPU_RESP_OK_EDID;
	return sizeof(r);
}

static uint32_t cursor(struct gpu_state *g, const struct virtio_gpu_update_cursor *u, bool update)
{
	if (le32toh(u->pos.scanout_id) != 0)
		return VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
	if (update) {
		uint32_t id = le32toh(u->resource_id);
		if (id && !find(g, id))
			return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
		g->cursor.resource_id = id;
		g->cursor.hot_x = le32toh(u->hot_x);
		g->cursor.hot_y = le32toh(u->hot_y);
	}
	g->cursor.x = le32toh(u->pos.x);
	g->cursor.y = le32toh(u->pos.y);
	__atomic_add_fetch(&g->updates, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&g->cursor_updates, 1, __ATOMIC_RELEASE);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

/* The size each command needs (its struct), 0 for one kvkit does not do. */
static size_t request_size(uint32_t type)
{
	switch (type) {
	case VIRTIO_GPU_CMD_GET_DISPLAY_INFO: return sizeof(struct virtio_gpu_ctrl_hdr);
	case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D: return sizeof(struct virtio_gpu_resource_create_2d);
	case VIRTIO_GPU_CMD_RESOURCE_UNREF: return sizeof(struct virtio_gpu_resource_unref);
	case VIRTIO_GPU_CMD_SET_SCANOUT: return sizeof(struct virtio_gpu_set_scanout);
	case VIRTIO_GPU_CMD_RESOURCE_FLUSH: return sizeof(struct virtio_gpu_resource_flush);
	case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D: return sizeof(struct virtio_gpu_transfer_to_host_2d);
	case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING: return sizeof(struct virtio_gpu_resource_attach_backing);
	case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING: return sizeof(struct virtio_gpu_resource_detach_backing);
	case VIRTIO_GPU_CMD_GET_EDID: return sizeof(struct virtio_gpu_cmd_get_edid);
	case VIRTIO_GPU_CMD_UPDATE_CURSOR:
	case VIRTIO_GPU_CMD_MOVE_CURSOR: return sizeof(struct virtio_gpu_update_cursor);
	}
	return 0;
}

size_t gpu_handle(struct gpu_state *g, const uint8_t *req, size_t len, uint8_t *resp, size_t room)
{
	struct virtio_gpu_ctrl_hdr h;
	uint8_t out[GPU_MAX_RESPONSE];
	size_t n = sizeof(h);
	uint32_t type;
	if (len < sizeof(h)) {
		memset(&h, 0, sizeof(h));
		type = VIRTIO_GPU_RESP_ERR_UNSPEC;
		goto reply;
	}
	memcpy(&h, req, sizeof(h));
	uint32_t cmd = le32toh(h.type);
	size_t need = request_size(cmd);
	union {
		struct virtio_gpu_resource_create_2d create;
		struct virtio_gpu_resource_unref unref;
		struct virtio_gpu_set_scanout scanout;
		struct virtio_gpu_resource_flush flush;
		struct virtio_gpu_transfer_to_host_2d transfer;
		struct virtio_gpu_resource_detach_backing detach;
		struct virtio_gpu_cmd_get_edid edid;
		struct virtio_gpu_update_cursor cursor;
	} c;
	if (need == 0 || len < need) {
		type = VIRTIO_GPU_RESP_ERR_UNSPEC;
		goto reply;
	}
	if (need <= sizeof(c))
		memcpy(&c, req, need);
	switch (cmd) {
	case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:
		n = display_info(g, out);
		type = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
		break;
	case VIRTIO_GPU_CMD_GET_EDID: n = edid(g, &c.edid, out, &type); break;
	case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D: type = create_2d(g, &c.create); break;
	case VIRTIO_GPU_CMD_RESOURCE_UNREF: type = unref(g, le32toh(c.unref.resource_id)); break;
	case VIRTIO_GPU_CMD_SET_SCANOUT: type = set_scanout(g, &c.scanout); break;
	case VIRTIO_GPU_CMD_RESOURCE_FLUSH: type = flush(g, &c.flush); break;
	case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D: type = transfer_to_host(g, &c.transfer); break;
	case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING: type = attach_backing(g, req, len); break;
	case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING: type = detach_backing(g, le32toh(c.detach.resource_id)); break;
	case VIRTIO_GPU_CMD_UPDATE_CURSOR: type = cursor(g, &c.cursor, true); break;
	case VIRTIO_GPU_CMD_MOVE_CURSOR: type = cursor(g, &c.cursor, false); break;
	default: type = VIRTIO_GPU_RESP_ERR_UNSPEC; break;
	}
	if (type >= VIRTIO_GPU_RESP_ERR_UNSPEC)
		n = sizeof(h);
reply:
	/* a chain without room for a reply still runs: the cursor queue's
	 * commands come without one (Linux sends none) */
	if (room < sizeof(h))
		return 0;
	if (n > room)
		n = sizeof(h); /* no room for the data: the header alone says so */
	if (n == sizeof(h) && type < VIRTIO_GPU_RESP_ERR_UNSPEC && type != VIRTIO_GPU_RESP_OK_NODATA)
		type = VIRTIO_GPU_RESP_ERR_UNSPEC;
	struct virtio_gpu_ctrl_hdr rh = { .type = htole32(type) };
	if (le32toh(h.flags) & VIRTIO_GPU_FLAG_FENCE) { /* done: the fence signals with the reply */
		rh.flags = htole32(VIRTIO_GPU_FLAG_FENCE | (le32toh(h.flags) & VIRTIO_GPU_FLAG_INFO_RING_IDX));
		rh.fence_id = h.fence_id;
		rh.ctx_id = h.ctx_id;
		rh.ring_idx = h.ring_idx;
	}
	if (n > sizeof(h))
		memcpy(resp + sizeof(h), out + sizeof(h), n - sizeof(h));
	memcpy(resp, &rh, sizeof(rh));
	return n;
}

uint32_t gpu_serve_chain(struct gpu_state *g, const struct virtq_elem *e, uint8_t *req, uint32_t fail[2])
{
	uint8_t resp[GPU_MAX_RESPONSE];
	size_t len = e->out_len > GPU_MAX_REQUEST ? GPU_MAX_REQUEST : e->out_len;
	len = iov_to_buf(e->iov, e->n_out, 0, req, len);
	size_t n = gpu_handle(g, req, len, resp, e->in_len < sizeof(resp) ? e->in_len : sizeof(resp));
	if (fail && n >= sizeof(struct virtio_gpu_ctrl_hdr)) {
		struct virtio_gpu_ctrl_hdr h;
		memcpy(&h, resp, sizeof(h));
		fail[0] = 0;
		if (le32toh(h.type) >= VIRTIO_GPU_RESP_ERR_UNSPEC) {
			uint32_t cmd = 0;
			memcpy(&cmd, req, len >= 4 ? 4 : 0);
			fail[0] = le32toh(cmd), fail[1] = le32toh(h.type);
		}
	}
	return (uint32_t)iov_from_buf(e->iov + e->n_out, e->n_in, 0, resp, n);
}

int gpu_scanout_rgb(const struct gpu_state *g, uint8_t **rgb, uint32_t *width, uint32_t *height)
{
	const struct gpu_resource *r = g->scanout.resource_id ? find(g, g->scanout.resource_id) : NULL;
	unsigned ro, go, bo;
	if (!r || !format_layout(r->format, &ro, &go, &bo))
		return -1;
	const struct gpu_rect *s = &g->scanout.r;
	uint8_t *out = malloc((size_t)s->width * s->height * 3);
	if (!out)
		return -1;
	for (uint32_t y = 0; y < s->height; y++) {
		const uint8_t *src = r->pixels + ((size_t)(s->y + y) * r->width + s->x) * 4;
		uint8_t *dst = out + (size_t)y * s->width * 3;
		for (uint32_t x = 0; x < s->width; x++, src += 4, dst += 3)
			dst[0] = src[ro], dst[1] = src[go], dst[2] = src[bo];
	}
	*rgb = out;
	*width = s->width;
	*height = s->height;
	return 0;
}

int gpu_cursor_rgba(const struct gpu_state *g, struct gpu_cursor_image *c)
{
	const struct gpu_resource *r = g->cursor.resource_id ? find(g, g->cursor.resource_id) : NULL;
	unsigned ro, go, bo;
	/* a cursor is small (64x64 in Linux): a big resource is not one */
	if (!r || !format_layout(r->format, &ro, &go, &bo) || r->width > 256 || r->height > 256)
		return -1;
	/* Linux makes its cursors from dumb buffers, which are XRGB resources,
	 * and fills them with ARGB (the legacy cursor's format): the X byte is
	 * the alpha, as QEMU reads it too */
	unsigned ao = 6 - ro - go - bo;
	uint8_t *out = malloc((size_t)r->width * r->height * 4);
	if (!out)
		return -1;
	const uint8_t *src = r->pixels;
	for (size_t i = 0; i < (size_t)r->width * r->height; i++, src += 4) {
		out[4 * i] = src[ro], out[4 * i + 1] = src[go], out[4 * i + 2] = src[bo];
		out[4 * i + 3] = src[ao];
	}
	*c = (struct gpu_cursor_image){ out, r->width, r->height, g->cursor.x, g->cursor.y, g->cursor.hot_x, g->cursor.hot_y };
	return 0;
}

/* EDID 1.4 with one detailed timing: the preferred mode at 60 Hz (less
 * where the 655.35 MHz pixel clock field cannot carry it). A mode wider
 * or taller than 4095 has no detailed timing (the fields are 12-bit): the
 * Linux driver takes the display info's mode as preferred anyway. */
void gpu_edid(uint32_t w, uint32_t h, uint8_t e[128])
{
	static const uint8_t header[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0 };
	static const uint8_t chroma[10] = { 0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54 }; /* sRGB */
	memset(e, 0, 128);
	memcpy(e, header, 8);
	uint16_t mfg = ('K' - '@') << 10 | ('V' - '@') << 5 | ('K' - '@'); /* "KVK" */
	e[8] = mfg >> 8, e[9] = mfg & 0xff;
	e[10] = 1;               /* product code */
	e[17] = 2026 - 1990;     /* year of manufacture */
	e[18] = 1, e[19] = 4;    /* EDID 1.4 */
	e[20] = 0xa5;            /* digital, 8 bits per colour, DisplayPort */
	uint32_t wmm = (uint32_t)((uint64_t)w * 254 / 960), hmm = (uint32_t)((uint64_t)h * 254 / 960); /* 96 dpi */
	e[21] = wmm / 10 > 255 ? 255 : wmm / 10, e[22] = hmm / 10 > 255 ? 255 : hmm / 10;
	e[23] = 120;             /* gamma 2.2 */
	e[24] = 0x06;            /* sRGB; the first timing is the native mode */
	memcpy(e + 25, chroma, 10);
	for (int i = 38; i < 54; i++)
		e[i] = 1;            /* no standard timings */
	uint8_t *d = e + 54;
	if (w && h && w <= 4095 && h <= 4095) {
		uint32_t hb = 160, vb = 35, hso = 48, hsw = 32, vso = 3, vsw = 5;
		uint64_t total = (uint64_t)(w + hb) * (h + vb), hz = 60;
		while (hz > 1 && total * hz / 10000 > 65535)
			hz--;
		uint32_t clk = (uint32_t)(total * hz / 10000);
		d[0] = clk & 0xff, d[1] = clk >> 8;
		d[2] = w & 0xff, d[3] = hb & 0xff, d[4] = (w >> 8) << 4 | hb >> 8;
		d[5] = h & 0xff, d[6] = vb & 0xff, d[7] = (h >> 8) << 4 | vb >> 8;
		d[8] = hso & 0xff, d[9] = hsw & 0xff, d[10] = (vso & 0xf) << 4 | (vsw & 0xf);
		d[11] = (hso >> 8) << 6 | (hsw >> 8) << 4 | (vso >> 4) << 2 | vsw >> 4;
		uint32_t dw = wmm > 4095 ? 4095 : wmm, dh = hmm > 4095 ? 4095 : hmm;
		d[12] = dw & 0xff, d[13] = dh & 0xff, d[14] = (dw >> 8) << 4 | dh >> 8;
		d[17] = 0x1e;    /* digital separate sync, both polarities positive */
	} else {
		d[3] = 0x10;     /* dummy descriptor */
	}
	d = e + 72;
	d[3] = 0xfc;             /* display product name: ends in a newline, padded with spaces */
	memset(d + 5, ' ', 13);
	memcpy(d + 5, "kvkit\n", 6);
	e[90 + 3] = 0x10, e[108 + 3] = 0x10; /* dummy descriptors */
	uint8_t sum = 0;
	for (int i = 0; i < 127; i++)
		sum += e[i];
	e[127] = (uint8_t)(0x100 - sum);
}
