/* libFuzzer: what a hostile guest gives virtio-net. The input is a guest
 * memory image holding a receive ring and a transmit ring, then a frame
 * from the network: the frame is placed into the receive buffers (mergeable,
 * header written last), and every transmit chain is read as a frame and
 * as a control-queue command. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/virtio/net_frames.h"
#include "../lib/fake_guest.h"

#define MEM 0x10000

static struct virtq_elem elem;
static struct iovec frame_iov[VIRTQ_MAX_SIZE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmem mem;
	struct virtq rx, tx;
	if (size < 10)
		return 0;
	/* the last bytes are the frame from the network, length from data[8..9] */
	size_t flen = (data[8] | data[9] << 8) % 9000;
	if (flen > size - 10)
		flen = size - 10;
	const uint8_t *frame = data + size - flen;
	if (!fuzz_guest_image(&mem, MEM, data + 10, size - 10 - flen))
		return 0;
	if (fuzz_queue_start(&rx, &mem, data) == 0) {
		struct vring_used_elem used[NET_RX_MAX_BUFS];
		unsigned n;
		struct virtio_net_hdr_v1 h = { 0 };
		memcpy(&h, data, size < sizeof(h) ? size : sizeof(h)); /* a tap's header: any bytes */
		for (int i = 0; i < 8 && net_rx_place(&rx, &elem, data[4] & 1 ? &h : NULL, frame, flen, used, &n) == 0; i++)
			virtq_push_n(&rx, used, n);
	}
	if (fuzz_queue_start(&tx, &mem, data + 4) == 0) {
		for (int i = 0; i < 1024 && virtq_pop(&tx, &elem) > 0; i++) {
			int k = net_tx_frame(&elem, frame_iov, 65550, data[5] & 1);
			volatile uint8_t sink = 0;
			for (int j = 0; j < k; j++) /* read the whole frame: ASan checks */
				for (size_t b = 0; b < frame_iov[j].iov_len; b += 97)
					sink ^= ((uint8_t *)frame_iov[j].iov_base)[b];
			(void)sink;
			uint32_t written;
			unsigned pairs = net_ctrl_command(&elem, 8, data[6] & 1, &written);
			if (pairs > 8 || written > elem.in_len)
				__builtin_trap();
			virtq_push(&tx, elem.head, 0);
		}
	}
	return 0;
}
