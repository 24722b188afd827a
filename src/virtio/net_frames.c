/* virtio-net frames in guest buffers; see net_frames.h. */
#include "net_frames.h"
#include <errno.h>
#include <string.h>
#include <linux/virtio_net.h> /* struct virtio_net_hdr_v1 */
#include "../util/bytes.h"
#include "../util/iov.h"

int net_tx_frame(const struct virtq_elem *e, struct iovec *out, size_t max_frame, bool keep_hdr)
{
	size_t hdr = sizeof(struct virtio_net_hdr_v1);
	if (e->out_len < hdr + NET_MIN_FRAME || e->out_len - hdr > max_frame)
		return -1;
	size_t skip = keep_hdr ? 0 : hdr;
	int k = 0;
	for (unsigned i = 0; i < e->n_out; i++) {
		struct iovec v = e->iov[i];
		if (skip >= v.iov_len) {
			skip -= v.iov_len;
			continue;
		}
		v.iov_base = (char *)v.iov_base + skip;
		v.iov_len -= skip;
		skip = 0;
		out[k++] = v;
	}
	return k;
}

int net_rx_place(struct virtq *vq, struct virtq_elem *e, const struct virtio_net_hdr_v1 *hdr_in, const uint8_t *frame,
		 size_t len, struct vring_used_elem used[NET_RX_MAX_BUFS], unsigned *nused)
{
	struct iovec first_iov[4];
	unsigned first_n = 0, nb = 0;
	size_t off = 0;
	const size_t hdr_len = sizeof(struct virtio_net_hdr_v1);

	while (off < len || nb == 0) {
		if (nb == NET_RX_MAX_BUFS || virtq_pop(vq, e) <= 0) {
			while (nb--)
				virtq_unpop(vq);
			*nused = 0;
			return -ENOSPC;
		}
		size_t hdr = nb == 0 ? hdr_len : 0;
		if (e->in_len < hdr + 1) {
			/* too small for even the header: hand it back empty */
			used[nb++] = (struct vring_used_elem){ .id = e->head, .len = 0 };
			continue;
		}
		size_t room = e->in_len - hdr, c = len - off < room ? len - off : room;
		iov_from_buf(e->iov + e->n_out, e->n_in, hdr, frame + off, c);
		if (nb == 0) {
			/* the header goes in last, once num_buffers is known */
			first_n = e->n_in < 4 ? e->n_in : 4;
			memcpy(first_iov, e->iov + e->n_out, first_n * sizeof(struct iovec));
		}
		off += c;
		used[nb++] = (struct vring_used_elem){ .id = e->head, .len = (uint32_t)(c + hdr) };
	}
	struct virtio_net_hdr_v1 h = { 0 };
	if (hdr_in)
		h = *hdr_in;
	h.num_buffers = (uint16_t)nb;
	iov_from_buf(first_iov, first_n, 0, &h, sizeof(h));
	*nused = nb;
	return 0;
}

unsigned net_ctrl_command(const struct virtq_elem *e, unsigned max_pairs, bool mq, uint32_t *written)
{
	struct virtio_net_ctrl_hdr h = { 0 };
	uint16_t pairs = 0;
	unsigned take = 0;
	size_t got = iov_to_buf(e->iov, e->n_out, 0, &h, sizeof(h));
	size_t data = iov_to_buf(e->iov, e->n_out, sizeof(h), &pairs, sizeof(pairs));
	pairs = le16toh(pairs);
	if (mq && got == sizeof(h) && data == sizeof(pairs) && h.class == VIRTIO_NET_CTRL_MQ &&
	    h.cmd == VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET && pairs >= VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN && pairs <= max_pairs)
		take = pairs;
	*written = 0;
	size_t room = 0;
	for (unsigned i = 0; i < e->n_in; i++)
		room += e->iov[e->n_out + i].iov_len;
	if (!room)
		return take;
	size_t at = room - 1;
	for (unsigned i = 0; i < e->n_in; i++) {
		const struct iovec *v = &e->iov[e->n_out + i];
		if (at < v->iov_len) {
			((uint8_t *)v->iov_base)[at] = take ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
			break;
		}
		at -= v->iov_len;
	}
	*written = room > UINT32_MAX ? UINT32_MAX : (uint32_t)room;
	return take;
}
