/* QEMU's stream framing (its -netdev stream, passt, gvproxy -listen-qemu,
 * socket_vmnet): each Ethernet frame is preceded by its length as a 4-byte
 * big-endian integer. This is the receive side's parser, kept apart from
 * the socket so the unit tests and the fuzzer can feed it any bytes. */
#ifndef KVKIT_NET_STREAM_FRAMES_H
#define KVKIT_NET_STREAM_FRAMES_H
#include <stddef.h>
#include <stdint.h>

#define STREAM_LEN_BYTES 4
#define STREAM_MIN_FRAME 14 /* an Ethernet header; shorter frames are dropped */

struct stream_rx {
	size_t max_frame; /* a longer length means the stream is not this protocol */
	size_t cap;       /* buf's size: at least STREAM_LEN_BYTES + max_frame */
	size_t start;     /* first byte not yet consumed */
	size_t end;       /* one past the last byte read */
	uint64_t runts;   /* frames dropped for being shorter than an Ethernet header */
	uint8_t *buf;
};

/* Where to read next and how much fits (the unconsumed bytes move to the
 * front when the tail is too short for a whole frame). */
uint8_t *stream_rx_space(struct stream_rx *r, size_t *avail);
/* n bytes were read into the space. */
void stream_rx_fill(struct stream_rx *r, size_t n);
/* The next whole frame, left in place until stream_rx_consume():
 * 1 with *frame and *len, 0 when more bytes are needed, -1 when a length
 * is larger than max_frame (framing lost: the stream cannot go on). */
int stream_rx_peek(struct stream_rx *r, const uint8_t **frame, size_t *len);
/* Done with the frame stream_rx_peek() returned. */
void stream_rx_consume(struct stream_rx *r);

/* The 4-byte header for a frame of len bytes. */
void stream_frame_header(size_t len, uint8_t hdr[STREAM_LEN_BYTES]);

#endif
