/* libFuzzer harness: virtio-input against a hostile guest. The first
 * bytes are config-space selections (select, subsel) the driver writes,
 * answered for both kinds of device; the rest is guest memory holding the
 * event queue, into which a burst of events is delivered. Answers must fit
 * the union, events must land whole in writable buffers, and the pending
 * ring must stay consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/virtio/input_model.h"
#include "../lib/fake_guest.h"

#define MEM 0x10000

static struct virtq_elem elem;
static struct input_pending pending;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	for (int i = 0; i < 4; i++) {
		struct virtio_input_config c;
		memset(&c, 0xa5, sizeof(c));
		c.select = data[2 * i], c.subsel = data[2 * i + 1];
		input_config_answer(i & 1 ? KV_INPUT_KEYBOARD : KV_INPUT_POINTING, i, &c);
		if (c.size > sizeof(c.u))
			abort();
	}
	data += 8, size -= 8;
	struct gmem mem;
	struct virtq vq;
	if (fuzz_guest_with_queue(&mem, &vq, MEM, data, size) < 0)
		return 0;
	memset(&pending, 0, sizeof(pending));
	struct virtio_input_event ev[64];
	for (unsigned i = 0; i < 64; i++)
		ev[i] = (struct virtio_input_event){ .type = 1, .code = (uint16_t)i, .value = i };
	unsigned burst = data[0] % 64 + 1, added = 0;
	for (int round = 0; round < 20; round++) {
		if (input_pending_add(&pending, ev, burst))
			added += burst;
		if (pending.count > INPUT_PENDING_MAX || pending.head >= INPUT_PENDING_MAX)
			abort();
		input_pending_deliver(&pending, &vq, &elem);
		if (pending.count > added)
			abort();
	}
	return 0;
}
