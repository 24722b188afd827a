/* Test scaffolding shared by the unit tests and the fuzz harnesses: a fake
 * guest's memory, the driver's side of a split virtqueue in it, and a
 * queue laid out by fuzz input. */
#ifndef KVKIT_TESTS_FAKE_GUEST_H
#define KVKIT_TESTS_FAKE_GUEST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../../src/virtio/virtq.h"

struct fake_guest {
	uint8_t *ram;
	size_t size;
	struct gmem mem;
};

/* size bytes of zeroed guest RAM at guest-physical 0. 0 or -1. */
int fake_guest_init(struct fake_guest *g, size_t size);
void fake_guest_free(struct fake_guest *g);

/* The driver's side of a ring: qsize descriptors at base, the avail ring
 * right after them, the used ring at base + 0x800 (qsize <= 64). */
struct fake_ring {
	struct virtq vq;
	struct fake_guest *g;
	uint16_t avail; /* chains offered */
	uint16_t seen;  /* used entries read back */
	unsigned slots; /* descriptors set aside per chain: 1, or 2 for split chains */
};
/* Lay out and start the ring (virtq_start's result: 0 or -1). slots: 1
 * (chains of one descriptor) or 2 (chains may be split in two). */
int fake_ring_start(struct fake_ring *r, struct fake_guest *g, uint64_t base, uint16_t qsize, unsigned slots);
/* Offer one chain at gpa: one descriptor, or two split at split bytes
 * (0: one; only with 2 slots). A chain's head is (offers * slots) % qsize,
 * so up to qsize / slots chains may be outstanding. Returns the head. */
uint16_t fake_ring_offer(struct fake_ring *r, uint64_t gpa, uint32_t len, bool writable, uint32_t split);
/* The next used entry the device wrote, or false when there is none yet. */
bool fake_ring_next_used(struct fake_ring *r, struct vring_used_elem *out);
/* A descriptor of the ring, by index. */
struct vring_desc *fake_ring_desc(struct fake_ring *r, uint16_t i);

/* Fuzz harnesses: guest memory [0x1000, size) holding the input image
 * (from a buffer allocated once), and a queue whose size and ring
 * addresses come from 4 input bytes q[0..3]. Returns the RAM, or NULL. */
uint8_t *fuzz_guest_image(struct gmem *mem, size_t size, const uint8_t *img, size_t len);
int fuzz_queue_start(struct virtq *vq, const struct gmem *mem, const uint8_t q[4]);
/* Both for the common input shape: 4 bytes for the queue, then the image.
 * 0, or -1 when the input is too short or the queue does not start. */
int fuzz_guest_with_queue(struct gmem *mem, struct virtq *vq, size_t mem_size, const uint8_t *data, size_t size);

#endif
