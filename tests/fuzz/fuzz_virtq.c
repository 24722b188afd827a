/* libFuzzer harness: a hostile guest's virtqueue. The input is the guest
 * memory image (rings and tables); the engine pops and pushes until the
 * queue is empty or broken. Build: make fuzz; run: build/fuzz/fuzz_virtq */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/virtio/virtq.h"
#include "../lib/fake_guest.h"

#define MEM 0x10000

static struct virtq_elem elem;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmem mem;
	struct virtq vq;
	/* rings inside the first 4 KiB of input, overlapping as a hostile guest may */
	if (fuzz_guest_with_queue(&mem, &vq, MEM, data, size) < 0)
		return 0;
	for (int i = 0; i < 2048; i++) {
		int r = virtq_pop(&vq, &elem);
		if (r <= 0)
			break;
		/* touch every byte the engine handed out: ASan checks the bounds */
		volatile uint8_t sink = 0;
		for (unsigned j = 0; j < elem.n_out + elem.n_in; j++)
			if (elem.iov[j].iov_len)
				sink ^= ((uint8_t *)elem.iov[j].iov_base)[elem.iov[j].iov_len - 1];
		(void)sink;
		virtq_push(&vq, elem.head, elem.in_len);
		virtq_should_notify(&vq);
	}
	return 0;
}
