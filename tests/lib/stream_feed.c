/* Test helper: see stream_feed.h. */
#include <stdlib.h>
#include <string.h>
#include "stream_feed.h"

int stream_feed(struct stream_rx *r, const uint8_t *in, size_t len, size_t piece,
		void (*frame)(void *opaque, const uint8_t *f, size_t flen), void *opaque)
{
	int n = 0;
	size_t off = 0;
	do {
		size_t avail;
		uint8_t *p = stream_rx_space(r, &avail);
		if (avail == 0)
			abort(); /* the buffer always has room for a frame in progress */
		size_t take = piece && piece < len - off ? piece : len - off;
		if (take > avail)
			take = avail;
		memcpy(p, in + off, take);
		stream_rx_fill(r, take);
		off += take;
		const uint8_t *f;
		size_t fl;
		int rc;
		while ((rc = stream_rx_peek(r, &f, &fl)) == 1) {
			frame(opaque, f, fl);
			stream_rx_consume(r);
			n++;
		}
		if (rc < 0)
			return -1;
	} while (off < len);
	return n;
}
