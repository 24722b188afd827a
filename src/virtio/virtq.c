/* Split virtqueue engine; see virtq.h. The guest may rewrite the rings at any
 * moment, so each field is read once into a local before it is checked. */
#include "virtq.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "../util/log.h"

static inline uint16_t load16(const uint16_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

static int broken(struct virtq *vq, const char *why)
{
	if (!vq->broken)
		log_warn("virtqueue: guest error: %s; queue stopped", why);
	vq->broken = true;
	return -EINVAL;
}

static bool test_inflight(const struct virtq *vq, unsigned head)
{
	return (vq->inflight[head / 64] >> (head % 64)) & 1;
}

static void set_inflight(struct virtq *vq, unsigned head, bool on)
{
	if (on)
		vq->inflight[head / 64] |= 1ULL << (head % 64);
	else
		vq->inflight[head / 64] &= ~(1ULL << (head % 64));
}

int virtq_start(struct virtq *vq, const struct gmem *mem)
{
	uint64_t n = vq->size;

	vq->mem = mem;
	vq->broken = false;
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return broken(vq, "queue size not a power of two up to 1024");
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return broken(vq, "misaligned ring");
	vq->desc = gmem_ptr(mem, vq->desc_gpa, 16 * n);
	vq->avail = gmem_ptr(mem, vq->avail_gpa, 6 + 2 * n);
	vq->used = gmem_ptr(mem, vq->used_gpa, 6 + 8 * n);
	if (!vq->desc || !vq->avail || !vq->used)
		return broken(vq, "ring outside guest memory");
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used_valid = false;
	memset(vq->inflight, 0, sizeof(vq->inflight));
	vq->ready = true;
	return 0;
}

void virtq_reset(struct virtq *vq)
{
	memset(vq, 0, sizeof(*vq));
}

bool virtq_has_avail(struct virtq *vq)
{
	if (!vq->ready || vq->broken)
		return false;
	return load16(&vq->avail->idx) != vq->last_avail;
}

/* Append one descriptor's buffer to the element after checking it. */
static int add_buf(struct virtq *vq, struct virtq_elem *e, uint64_t addr, uint32_t len, uint16_t flags)
{
	void *p = gmem_ptr(vq->mem, addr, len);

	if (!p)
		return broken(vq, "descriptor buffer outside guest memory");
	if (e->n_out + e->n_in >= VIRTQ_MAX_SIZE)
		return broken(vq, "descriptor chain too long");
	if (flags & VRING_DESC_F_WRITE) {
		e->in_len += len;
		e->n_in++;
	} else {
		if (e->n_in)
			return broken(vq, "readable descriptor after a writable one");
		e->out_len += len;
		e->n_out++;
	}
	e->iov[e->n_out + e->n_in - 1] = (struct iovec){ .iov_base = p, .iov_len = len };
	return 0;
}

static int walk_indirect(struct virtq *vq, struct virtq_elem *e, uint64_t addr, uint32_t len)
{
	if (len == 0 || len % 16)
		return broken(vq, "indirect table length not a multiple of 16");
	uint32_t n = len / 16;
	if (n > VIRTQ_MAX_SIZE)
		return broken(vq, "indirect table too long");
	struct vring_desc *t = gmem_ptr(vq->mem, addr, len);
	if (!t)
		return broken(vq, "indirect table outside guest memory");
	uint32_t i = 0;
	for (uint32_t count = 0;; count++) {
		struct vring_desc d;
		if (count >= n)
			return broken(vq, "loop in indirect descriptor table");
		memcpy(&d, &t[i], sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT)
			return broken(vq, "nested indirect descriptor");
		if (add_buf(vq, e, d.addr, d.len, d.flags) < 0)
			return -EINVAL;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= n)
			return broken(vq, "indirect next index out of range");
		i = d.next;
	}
}

int virtq_pop(struct virtq *vq, struct virtq_elem *e)
{
	if (!vq->ready)
		return 0;
	if (vq->broken)
		return -EINVAL;
	uint16_t avail_idx = load16(&vq->avail->idx);
	uint16_t pending = avail_idx - vq->last_avail;
	if (pending == 0 && vq->event_idx) {
		/* Queue looks empty: publish where we stopped, then look again.
		 * Without the full fence the avail_event store can pass the
		 * re-read (x86 reorders store->load), the driver reads a stale
		 * avail_event, skips its kick, and the queue stalls forever. */
		uint16_t *avail_event = (uint16_t *)&vq->used->ring[vq->size];
		__atomic_store_n(avail_event, vq->last_avail, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load16(&vq->avail->idx);
		pending = avail_idx - vq->last_avail;
	}
	if (pending == 0)
		return 0;
	if (pending > vq->size)
		return broken(vq, "avail index moved beyond the queue size");
	uint16_t head = load16(&vq->avail->ring[vq->last_avail % vq->size]);
	if (head >= vq->size)
		return broken(vq, "head descriptor index out of range");
	if (test_inflight(vq, head) && !vq->warned_double_push) {
		log_warn("virtqueue: chain %u offered again while in flight", head);
		vq->warned_double_push = true;
	}

	e->head = head;
	e->n_out = e->n_in = 0;
	e->out_len = e->in_len = 0;
	uint16_t i = head;
	for (unsigned count = 0;; count++) {
		struct vring_desc d;
		if (count >= vq->size)
			return broken(vq, "descriptor chain loops or exceeds the queue size");
		memcpy(&d, &vq->desc[i], sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (d.flags & VRING_DESC_F_NEXT)
				return broken(vq, "indirect descriptor with NEXT set");
			if (walk_indirect(vq, e, d.addr, d.len) < 0)
				return -EINVAL;
			break;
		}
		if (add_buf(vq, e, d.addr, d.len, d.flags) < 0)
			return -EINVAL;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= vq->size)
			return broken(vq, "next descriptor index out of range");
		i = d.next;
	}
	vq->last_avail++;
	set_inflight(vq, head, true);
	/* avail_event is not moved here: while the device keeps popping, the
	 * driver's additions need no kick (each is a VM exit). It is published
	 * when the queue looks empty, above, where the device would wait. */
	return 1;
}

int virtq_unpop(struct virtq *vq)
{
	if (vq->ready && !vq->broken) {
		/* Only the chain popped last can go back, and only while it is
		 * still in flight: winding back over a completed chain would
		 * have the device take it again (completed twice) and lose one. */
		uint16_t head = load16(&vq->avail->ring[(uint16_t)(vq->last_avail - 1) % vq->size]) % vq->size;
		if (!test_inflight(vq, head)) {
			if (!vq->warned_double_push)
				log_warn("virtqueue: chain %u given back after it was completed; kept", head);
			vq->warned_double_push = true;
			return -1;
		}
		set_inflight(vq, head, false);
	}
	vq->last_avail--;
	return 0;
}

/* Heads are tracked from pop to push; a mismatch is logged once per queue
 * (a diagnostic only: the completion still goes to the driver). */
static bool take_inflight(struct virtq *vq, uint32_t head)
{
	if (head < vq->size && test_inflight(vq, head)) {
		set_inflight(vq, head, false);
		return true;
	}
	if (!vq->warned_double_push)
		log_warn("virtqueue: chain %u completed while not in flight", head);
	vq->warned_double_push = true;
	return head < vq->size;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	if (!vq->ready || vq->broken || !take_inflight(vq, head))
		return;
	struct vring_used_elem *u = &vq->used->ring[vq->used_idx % vq->size];
	u->id = head;
	u->len = len;
	vq->used_idx++;
	__atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
}

void virtq_push_n(struct virtq *vq, const struct vring_used_elem *e, unsigned n)
{
	if (!vq->ready || vq->broken)
		return;
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!take_inflight(vq, e[i].id))
			continue;
		struct vring_used_elem *u = &vq->used->ring[(uint16_t)(vq->used_idx + k) % vq->size];
		u->id = e[i].id;
		u->len = e[i].len;
		k++;
	}
	vq->used_idx += k;
	__atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *vq)
{
	if (!vq->ready)
		return false;
	/* the used index must be visible before we read the driver's wishes */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(load16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	uint16_t old = vq->signalled_used, new = vq->used_idx;
	bool valid = vq->signalled_used_valid;
	vq->signalled_used = new;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	uint16_t used_event = load16(&vq->avail->ring[vq->size]);
	return (uint16_t)(new - used_event - 1) < (uint16_t)(new - old);
}

void virtq_describe(const struct virtq *vq, char *buf, size_t len)
{
	if (!vq->ready || !vq->avail || !vq->used) {
		snprintf(buf, len, "not ready");
		return;
	}
	snprintf(buf, len, "avail %u (flags %#x, used_event %u) last %u used %u (avail_event %u) signalled %u%s%s",
		 load16(&vq->avail->idx), load16(&vq->avail->flags), load16(&vq->avail->ring[vq->size]), vq->last_avail,
		 vq->used_idx, load16((const uint16_t *)&vq->used->ring[vq->size]), vq->signalled_used,
		 vq->event_idx ? " event-idx" : "", vq->broken ? " BROKEN" : "");
}

/* Copy between a flat buffer and an iovec array starting at byte off. */
