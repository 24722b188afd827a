/* See fake_guest.h. */
#include "fake_guest.h"
#include <stdlib.h>
#include <string.h>

int fake_guest_init(struct fake_guest *g, size_t size)
{
	memset(g, 0, sizeof(*g));
	g->ram = calloc(1, size);
	if (!g->ram)
		return -1;
	g->size = size;
	gmem_add(&g->mem, 0, size, g->ram);
	return 0;
}

void fake_guest_free(struct fake_guest *g)
{
	free(g->ram);
	memset(g, 0, sizeof(*g));
}

int fake_ring_start(struct fake_ring *r, struct fake_guest *g, uint64_t base, uint16_t qsize, unsigned slots)
{
	r->slots = slots == 2 ? 2 : 1;
	virtq_reset(&r->vq);
	r->g = g;
	r->vq.size = qsize;
	r->vq.desc_gpa = base;
	r->vq.avail_gpa = base + qsize * 16;
	r->vq.used_gpa = base + 0x800;
	r->avail = r->seen = 0;
	return virtq_start(&r->vq, &g->mem);
}

struct vring_desc *fake_ring_desc(struct fake_ring *r, uint16_t i)
{
	return (struct vring_desc *)(r->g->ram + r->vq.desc_gpa) + i;
}

uint16_t fake_ring_offer(struct fake_ring *r, uint64_t gpa, uint32_t len, bool writable, uint32_t split)
{
	uint16_t head = (uint16_t)((r->avail * r->slots) % r->vq.size);
	uint16_t flags = writable ? VRING_DESC_F_WRITE : 0;
	struct vring_desc *d = fake_ring_desc(r, head);
	if (split && split < len && r->slots == 2) {
		d[0] = (struct vring_desc){ gpa, split, flags | VRING_DESC_F_NEXT, (uint16_t)(head + 1) };
		d[1] = (struct vring_desc){ gpa + split, len - split, flags, 0 };
	} else {
		d[0] = (struct vring_desc){ gpa, len, flags, 0 };
	}
	uint16_t *avail = (uint16_t *)(r->g->ram + r->vq.avail_gpa);
	avail[2 + r->avail % r->vq.size] = head;
	r->avail++;
	__atomic_store_n(&avail[1], r->avail, __ATOMIC_RELEASE); /* the device may be reading */
	return head;
}

bool fake_ring_next_used(struct fake_ring *r, struct vring_used_elem *out)
{
	const uint8_t *used = r->g->ram + r->vq.used_gpa;
	uint16_t idx = __atomic_load_n((const uint16_t *)(used + 2), __ATOMIC_ACQUIRE);
	if (r->seen == idx)
		return false;
	memcpy(out, used + 4 + (size_t)(r->seen % r->vq.size) * sizeof(*out), sizeof(*out));
	r->seen++;
	return true;
}

uint8_t *fuzz_guest_image(struct gmem *mem, size_t size, const uint8_t *img, size_t len)
{
	static uint8_t *ram;
	static size_t ram_size;
	if (ram_size < size) {
		free(ram);
		ram = malloc(size);
		ram_size = ram ? size : 0;
	}
	if (!ram)
		return NULL;
	memset(ram, 0, size);
	memcpy(ram + 0x1000, img, len > size - 0x1000 ? size - 0x1000 : len);
	memset(mem, 0, sizeof(*mem));
	gmem_add(mem, 0x1000, size - 0x1000, ram + 0x1000);
	return ram;
}

int fuzz_queue_start(struct virtq *vq, const struct gmem *mem, const uint8_t q[4])
{
	virtq_reset(vq);
	vq->size = 1u << (q[0] % 9);
	vq->desc_gpa = 0x1000 + ((q[1] & 0x7f) << 4);
	vq->avail_gpa = 0x1000 + (q[2] << 2);
	vq->used_gpa = 0x1000 + ((q[3] & 0xfe) << 2);
	vq->event_idx = q[3] & 1;
	return virtq_start(vq, mem);
}

int fuzz_guest_with_queue(struct gmem *mem, struct virtq *vq, size_t mem_size, const uint8_t *data, size_t size)
{
	if (size < 4 || !fuzz_guest_image(mem, mem_size, data + 4, size - 4))
		return -1;
	return fuzz_queue_start(vq, mem, data);
}
