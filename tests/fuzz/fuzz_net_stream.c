/* libFuzzer: arbitrary bytes from a unixstream network peer (passt,
 * gvproxy -listen-qemu, anything on the socket) through the framing parser,
 * read in pieces whose sizes the input picks. Every frame handed on must
 * lie inside the buffer, be an Ethernet-sized frame, and the parser must
 * stop (not loop or overrun) on a length it cannot take. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/net/stream_frames.h"

#define MAX_FRAME 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[4 * (STREAM_LEN_BYTES + MAX_FRAME)];
	struct stream_rx r = { .max_frame = MAX_FRAME, .cap = sizeof(buf), .buf = buf };
	if (size < 1)
		return 0;
	size_t piece = data[0] % 97 + 1, off = 1;
	while (off < size) {
		size_t avail, take = piece < size - off ? piece : size - off;
		uint8_t *p = stream_rx_space(&r, &avail);
		if (avail == 0)
			abort(); /* the buffer always has room for a frame in progress */
		if (take > avail)
			take = avail;
		memcpy(p, data + off, take);
		stream_rx_fill(&r, take);
		off += take;
		const uint8_t *f;
		size_t len;
		int rc;
		while ((rc = stream_rx_peek(&r, &f, &len)) == 1) {
			if (len < STREAM_MIN_FRAME || len > MAX_FRAME || f < buf || f + len > buf + sizeof(buf))
				abort();
			stream_rx_consume(&r);
		}
		if (rc < 0)
			return 0; /* framing lost: the backend takes the link down */
	}
	return 0;
}
