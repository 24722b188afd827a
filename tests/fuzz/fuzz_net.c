/* libFuzzer: what a hostile guest gives virtio-net. The input is a guest
 * memory image holding a receive ring and a transmit ring, then a frame
 * from the network: the frame is placed into the receive buffers (mergeable,
 * header written last), and every transmit chain is read as a frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/virtio/net_frames.h"

#define MEM 0x10000

static struct virtq_elem elem;
static struct iovec frame_iov[VIRTQ_MAX_SIZE];

static int start(struct virtq *vq, const struct gmem *mem, const uint8_t *p)
{
	virtq_reset(vq);
	vq->size = 1u << (p[0] % 9);
	vq->desc_gpa = 0x1000 + ((p[1] & 0x7f) << 4);
	vq->avail_gpa = 0x1000 + (p[2] << 2);
	vq->used_gpa = 0x1000 + ((p[3] & 0xfe) << 2);
	vq->event_idx = p[3] & 1;
	return virtq_start(vq, mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	struct gmem mem = { 0 };
	struct virtq rx, tx;
	if (!ram)
		ram = malloc(MEM);
	if (size < 10)
		return 0;
	/* the last bytes are the frame from the network, length from data[8..9] */
	size_t flen = (data[8] | data[9] << 8) % 9000;
	if (flen > size - 10)
		flen = size - 10;
	const uint8_t *frame = data + size - flen;
	memset(ram, 0, MEM);
	size_t img = size - 10 - flen;
	memcpy(ram + 0x1000, data + 10, img > MEM - 0x1000 ? MEM - 0x1000 : img);
	gmem_add(&mem, 0x1000, MEM - 0x1000, ram + 0x1000);
	if (start(&rx, &mem, data) == 0) {
		struct vring_used_elem used[NET_RX_MAX_BUFS];
		unsigned n;
		struct virtio_net_hdr_v1 h = { 0 };
		memcpy(&h, data, size < sizeof(h) ? size : sizeof(h)); /* a tap's header: any bytes */
		for (int i = 0; i < 8 && net_rx_place(&rx, &elem, data[4] & 1 ? &h : NULL, frame, flen, used, &n) == 0; i++)
			virtq_push_n(&rx, used, n);
	}
	if (start(&tx, &mem, data + 4) == 0) {
		for (int i = 0; i < 1024 && virtq_pop(&tx, &elem) > 0; i++) {
			int k = net_tx_frame(&elem, frame_iov, 65550, data[5] & 1);
			volatile uint8_t sink = 0;
			for (int j = 0; j < k; j++) /* read the whole frame: ASan checks */
				for (size_t b = 0; b < frame_iov[j].iov_len; b += 97)
					sink ^= ((uint8_t *)frame_iov[j].iov_base)[b];
			(void)sink;
			virtq_push(&tx, elem.head, 0);
		}
	}
	return 0;
}
