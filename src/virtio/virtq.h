/* Split virtqueue engine (virtio 1.x, 2.7): pop validated descriptor chains,
 * push used entries, decide whether to interrupt. Every address goes through
 * gmem_ptr(); chains are bounded by the queue size; a malformed ring marks the
 * queue broken and nothing more is read from it. */
#ifndef KVKIT_VIRTQ_H
#define KVKIT_VIRTQ_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "../util/iov.h"
#include "../vmm/guest_mem.h"

#define VIRTQ_MAX_SIZE 1024

/* the split ring's layout and flags (virtio 1.2 2.7) */
#include <linux/virtio_ring.h>

struct virtq {
	/* set by the driver through the transport */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;
	/* engine state */
	bool ready;
	bool broken;
	const struct gmem *mem;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail;
	uint16_t used_idx;
	uint16_t signalled_used;
	bool signalled_used_valid;
	/* heads popped and not yet pushed back (logged when a push or an
	 * offer does not match: a diagnostic) */
	uint64_t inflight[VIRTQ_MAX_SIZE / 64];
	bool warned_double_push;
};

/* One popped chain: device-readable buffers first (out), then writable (in). */
struct virtq_elem {
	uint16_t head;
	unsigned n_out, n_in;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

/* Validate the ring addresses and start the queue. 0 or -EINVAL. */
int virtq_start(struct virtq *vq, const struct gmem *mem);
void virtq_reset(struct virtq *vq);
/* 1 = chain popped into *e, 0 = nothing available, -EINVAL = queue broken. */
int virtq_pop(struct virtq *vq, struct virtq_elem *e);
/* Return a popped chain; len = bytes written into its writable part. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);
/* Return several chains at once: the driver sees all of them or none (a
 * frame spread over mergeable receive buffers). */
void virtq_push_n(struct virtq *vq, const struct vring_used_elem *e, unsigned n);
/* After pushing: does the driver want an interrupt now? */
bool virtq_should_notify(struct virtq *vq);

/* One line of ring state for debug logs: where driver and device stand. */
void virtq_describe(const struct virtq *vq, char *buf, size_t len);
/* Give the chain popped last back (e.g. no data to fill it with); chains
 * go back in the reverse order of popping. -1, and nothing changes, if
 * that chain was completed meanwhile (a caller bug: it would be taken
 * twice and another one lost). */
int virtq_unpop(struct virtq *vq);
bool virtq_has_avail(struct virtq *vq);


#endif
