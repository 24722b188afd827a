/* QEMU's stream framing, receive side (stream_frames.h). */
#include <string.h>
#include "../util/bytes.h"
#include "stream_frames.h"

uint8_t *stream_rx_space(struct stream_rx *r, size_t *avail)
{
	if (r->start == r->end) {
		r->start = r->end = 0;
	} else if (r->cap - r->start < STREAM_LEN_BYTES + r->max_frame) {
		/* the frame in progress might not fit behind start: move it */
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	*avail = r->cap - r->end;
	return r->buf + r->end;
}

void stream_rx_fill(struct stream_rx *r, size_t n)
{
	r->end += n;
}

int stream_rx_peek(struct stream_rx *r, const uint8_t **frame, size_t *len)
{
	for (;;) {
		size_t have = r->end - r->start;
		if (have < STREAM_LEN_BYTES)
			return 0;
		uint32_t l = rd32be(r->buf + r->start);
		if (l > r->max_frame)
			return -1;
		if (have < STREAM_LEN_BYTES + (size_t)l)
			return 0;
		if (l < STREAM_MIN_FRAME) { /* zero-length or a runt: skip it, framing holds */
			r->start += STREAM_LEN_BYTES + l;
			r->runts++;
			continue;
		}
		*frame = r->buf + r->start + STREAM_LEN_BYTES;
		*len = l;
		return 1;
	}
}

void stream_rx_consume(struct stream_rx *r)
{
	r->start += STREAM_LEN_BYTES + rd32be(r->buf + r->start);
}

void stream_frame_header(size_t len, uint8_t hdr[STREAM_LEN_BYTES])
{
	wr32be(hdr, (uint32_t)len);
}
