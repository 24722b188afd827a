/* libFuzzer: arbitrary bytes from a unixstream network peer (passt,
 * gvproxy -listen-qemu, anything on the socket) through the framing parser,
 * read in pieces whose size the input picks. Every frame handed on must
 * lie inside the buffer and be an Ethernet-sized frame, and the parser must
 * stop (not loop or overrun) on a length it cannot take. */
#include <stdint.h>
#include <stdlib.h>
#include "../lib/stream_feed.h"

#define MAX_FRAME 2048

static uint8_t buf[4 * (STREAM_LEN_BYTES + MAX_FRAME)];

static void check(void *opaque, const uint8_t *f, size_t len)
{
	(void)opaque;
	if (len < STREAM_MIN_FRAME || len > MAX_FRAME || f < buf || f + len > buf + sizeof(buf))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream_rx r = { .max_frame = MAX_FRAME, .cap = sizeof(buf), .buf = buf };
	if (size >= 1)
		stream_feed(&r, data + 1, size - 1, data[0] % 97 + 1, check, NULL);
	return 0;
}
