/* libFuzzer harness: a hostile guest's virtqueue. The input is the guest
 * memory image (rings and tables); the engine pops and pushes until the
 * queue is empty or broken. Build: make fuzz; run: build/fuzz/fuzz_virtq */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/virtio/virtq.h"

#define MEM 0x10000

static struct virtq_elem elem;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	struct gmem mem = { 0 };
	struct virtq vq;

	if (!ram)
		ram = malloc(MEM);
	if (size < 4)
		return 0;
	memset(ram, 0, MEM);
	memcpy(ram + 0x1000, data + 4, size - 4 > MEM - 0x1000 ? MEM - 0x1000 : size - 4);
	gmem_add(&mem, 0x1000, MEM - 0x1000, ram + 0x1000);
	virtq_reset(&vq);
	/* rings inside the first 4 KiB of input, overlapping as a hostile guest may */
	vq.size = 1u << (data[0] % 9);
	vq.desc_gpa = 0x1000 + ((data[1] & 0x7f) << 4);
	vq.avail_gpa = 0x1000 + (data[2] << 2);
	vq.used_gpa = 0x1000 + ((data[3] & 0xfe) << 2);
	vq.event_idx = data[3] & 1;
	if (virtq_start(&vq, &mem) < 0)
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
