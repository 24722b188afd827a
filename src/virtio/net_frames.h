/* virtio-net frame handling that touches guest buffers: what a transmit
 * chain holds and how a received frame is spread over mergeable buffers.
 * Pure (no device, no backend), so the fuzzer drives exactly this code. */
#ifndef KVKIT_NET_FRAMES_H
#define KVKIT_NET_FRAMES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h> /* struct virtio_net_hdr_v1 */
#include "virtq.h"

#define NET_MIN_FRAME 14 /* an Ethernet header */
#define NET_RX_MAX_BUFS 64 /* buffers one received frame may spread over */

/* The frame in a popped transmit chain: its readable part after the
 * virtio-net header (with the header when keep_hdr: vnet_hdr backends), as
 * iovecs into guest memory. Returns the iovec count, or -1 when it is not a
 * frame we send (runt, oversized). */
int net_tx_frame(const struct virtq_elem *e, struct iovec *out, size_t max_frame, bool keep_hdr);

/* Copy a frame into receive buffers popped from vq (scratch is a work
 * element) behind a virtio-net header (hdr, or zeroes when NULL) whose
 * num_buffers is filled in; the used entries go to used[] and nused for
 * the caller to publish at once. -ENOSPC, with every buffer given back,
 * when the guest has too few. */
int net_rx_place(struct virtq *vq, struct virtq_elem *scratch, const struct virtio_net_hdr_v1 *hdr, const uint8_t *frame,
		 size_t len, struct vring_used_elem used[NET_RX_MAX_BUFS], unsigned *nused);

/* A control-queue command in a popped chain. The number of queue pairs
 * (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET) is the one command taken: when the
 * driver negotiated multiqueue (mq) and 1 <= pairs <= max_pairs. The ack
 * (VIRTIO_NET_OK or _ERR) goes into the last byte the driver gave room
 * for, *written is the used length. Returns the pairs to use, 0 when
 * refused. */
unsigned net_ctrl_command(const struct virtq_elem *e, unsigned max_pairs, bool mq, uint32_t *written);

#endif
