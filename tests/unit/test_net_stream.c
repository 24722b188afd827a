/* Unit tests for the unixstream network backend (src/net/stream.c) and its
 * framing parser (src/net/stream_frames.c): QEMU's length-prefixed frames
 * split at every byte, several in one read, oversized and empty lengths;
 * the backend over a real socketpair: frames both ways, a peer that reads
 * nothing (bounded buffering, backpressure), a peer that closes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "../../src/net/net.h"
#include "../../src/net/stream_frames.h"
#include "../../src/vmm/eventloop.h"
#include "../lib/stream_feed.h"

/* n frames of lengths lens[], each filled with its index, as a stream */
static size_t make_stream(uint8_t *out, const size_t *lens, int n)
{
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		stream_frame_header(lens[i], out + off);
		memset(out + off + STREAM_LEN_BYTES, 'a' + i, lens[i]);
		off += STREAM_LEN_BYTES + lens[i];
	}
	return off;
}

struct collected {
	size_t len[8];
	int n;
};

/* each frame is filled with one byte value (make_stream) */
static void collect(void *opaque, const uint8_t *f, size_t len)
{
	struct collected *c = opaque;
	for (size_t i = 0; i < len; i++)
		assert_int_equal(f[i], f[0]);
	assert_true(c->n < 8);
	c->len[c->n++] = len;
}

/* Feed the stream in pieces of `piece` bytes (0: all at once); the frame
 * lengths in got, their number (or -1: framing lost) in *status. */
static int parse_in_pieces(const uint8_t *in, size_t len, size_t piece, size_t *got, int max, int *status)
{
	static uint8_t buf[4 * 2048];
	struct stream_rx r = { .max_frame = 2000, .cap = sizeof(buf), .buf = buf };
	struct collected c = { .n = 0 };
	int n = stream_feed(&r, in, len, piece, collect, &c);
	*status = n < 0 ? -1 : 0;
	for (int i = 0; i < c.n && i < max; i++)
		got[i] = c.len[i];
	return c.n;
}

static void frames_split_at_every_byte_and_merged(void **s)
{
	(void)s;
	static const size_t lens[] = { 60, 1514, 14, 2000, 98 };
	uint8_t in[8192];
	size_t len = make_stream(in, lens, 5), got[8];
	int st;
	for (size_t piece = 0; piece <= 9; piece++) { /* 0: the whole stream in one read */
		int n = parse_in_pieces(in, len, piece, got, 8, &st);
		assert_int_equal(st, 0);
		assert_int_equal(n, 5);
		for (int i = 0; i < 5; i++)
			assert_int_equal(got[i], lens[i]);
	}
	/* a piece size that walks the boundary across every header byte */
	int n = parse_in_pieces(in, len, 1513, got, 8, &st);
	assert_int_equal(n, 5);
}

static void empty_and_runt_frames_are_skipped(void **s)
{
	(void)s;
	static const size_t lens[] = { 0, 60, 13, 0, 14 };
	uint8_t in[256];
	size_t len = make_stream(in, lens, 5), got[8];
	int st;
	int n = parse_in_pieces(in, len, 1, got, 8, &st);
	assert_int_equal(st, 0);
	assert_int_equal(n, 2);
	assert_int_equal(got[0], 60);
	assert_int_equal(got[1], 14);
}

static void oversized_length_loses_framing(void **s)
{
	(void)s;
	uint8_t in[64] = { 0 };
	size_t got[4];
	int st;
	stream_frame_header(2001, in); /* max_frame is 2000 */
	assert_int_equal(parse_in_pieces(in, 4, 0, got, 4, &st), 0);
	assert_int_equal(st, -1);
	in[0] = 0xff; /* 4 GiB */
	assert_int_equal(parse_in_pieces(in, 4, 0, got, 4, &st), 0);
	assert_int_equal(st, -1);
	/* a partial header or frame is not an error: more bytes are due */
	stream_frame_header(100, in);
	assert_int_equal(parse_in_pieces(in, 3, 0, got, 4, &st), 0);
	assert_int_equal(st, 0);
	assert_int_equal(parse_in_pieces(in, 50, 0, got, 4, &st), 0);
	assert_int_equal(st, 0);
}

/* ---------------- the backend over a socketpair ---------------- */

struct fake_nic {
	size_t frames, bytes, room; /* room: frames it takes before -ENOSPC */
	int writable, down;
};

static int deliver(void *dev, const uint8_t *frame, size_t len)
{
	struct fake_nic *n = dev;
	(void)frame;
	if (!n->room)
		return -ENOSPC;
	n->room--;
	n->frames++;
	n->bytes += len;
	return 0;
}
static void writable(void *dev) { ((struct fake_nic *)dev)->writable++; }
static void link_down(void *dev) { ((struct fake_nic *)dev)->down++; }

/* Run the loop's ready handlers until none is ready within ms. */
static void pump(struct eventloop *ev, int ms)
{
	struct epoll_event got[4];
	int n;
	while ((n = epoll_wait(ev->epfd, got, 4, ms)) > 0)
		for (int i = 0; i < n; i++) {
			struct ev_watch *w = got[i].data.ptr;
			w->fn(w->opaque, got[i].events);
		}
}

/* The backend on one end of a socketpair, the test on the other. */
struct pair {
	struct eventloop ev;
	struct fake_nic nic;
	struct net_backend *b;
	int peer;
};

static void pair_open(struct pair *p)
{
	int sv[2];
	char err[256];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct kv_net cfg = { .fd = sv[0], .stream = true };
	assert_int_equal(ev_init(&p->ev), 0);
	assert_int_equal(net_stream_open(&cfg, &p->ev, &p->b, err, sizeof(err)), 0);
	p->nic = (struct fake_nic){ .room = 1000 };
	p->b->deliver = deliver;
	p->b->writable = writable;
	p->b->link_down = link_down;
	p->b->dev = &p->nic;
	p->peer = sv[1];
}

static void pair_close(struct pair *p)
{
	p->b->ops->close(p->b);
	if (p->peer >= 0)
		close(p->peer);
	close(p->ev.epfd);
}

static void backend_frames_both_ways_and_backpressure(void **s)
{
	(void)s;
	struct pair t;
	pair_open(&t);
	struct net_backend *b = t.b;
	/* t.peer -> guest: three frames in one write, then one split in two */
	static const size_t lens[] = { 60, 1514, 100, 900 };
	uint8_t in[4096];
	size_t len = make_stream(in, lens, 4);
	assert_int_equal(write(t.peer, in, len - 500), (ssize_t)(len - 500));
	pump(&t.ev, 50);
	assert_int_equal(t.nic.frames, 3);
	assert_int_equal(write(t.peer, in + len - 500, 500), 500);
	pump(&t.ev, 50);
	assert_int_equal(t.nic.frames, 4);
	assert_int_equal(t.nic.bytes, 60 + 1514 + 100 + 900);
	/* no guest buffers: the backend stops reading; buffers back: it goes on */
	t.nic.room = 0;
	assert_int_equal(write(t.peer, in, len), (ssize_t)len);
	pump(&t.ev, 50);
	assert_int_equal(t.nic.frames, 4);
	t.nic.room = 1000;
	b->ops->rx_resume(b);
	pump(&t.ev, 50);
	assert_int_equal(t.nic.frames, 8);
	/* guest -> t.peer: a frame arrives framed */
	uint8_t frame[1514];
	memset(frame, 7, sizeof(frame));
	struct iovec iov[2] = { { frame, 14 }, { frame + 14, 1500 } };
	assert_int_equal(b->ops->send(b, iov, 2), 0);
	uint8_t out[STREAM_LEN_BYTES + 1514];
	assert_int_equal(read(t.peer, out, sizeof(out)), (ssize_t)sizeof(out));
	assert_int_equal(out[2], 1514 >> 8);
	assert_int_equal(out[3], 1514 & 0xff);
	/* a t.peer that reads nothing: sends stop with -EAGAIN once the socket is
	 * full, with at most one frame held; draining it wakes the device */
	int sent = 0, rc = 0;
	while ((rc = b->ops->send(b, iov, 2)) == 0 && sent < 100000)
		sent++;
	assert_int_equal(rc, -EAGAIN);
	assert_true(sent > 10);
	fcntl(t.peer, F_SETFL, O_NONBLOCK);
	size_t cap = (size_t)(sent + 1) * sizeof(out), drained = 0;
	uint8_t *all = malloc(cap);
	for (int i = 0; i < 200 && t.nic.writable == 0; i++) {
		ssize_t r;
		while ((r = read(t.peer, all + drained, cap - drained)) > 0)
			drained += (size_t)r;
		pump(&t.ev, 10);
	}
	assert_true(t.nic.writable > 0);
	ssize_t r;
	while ((r = read(t.peer, all + drained, cap - drained)) > 0)
		drained += (size_t)r;
	/* every accepted frame arrived whole and framed, a partly written one too */
	assert_int_equal(drained, (size_t)sent * sizeof(out));
	for (int i = 0; i < sent; i++) {
		const uint8_t *f = all + (size_t)i * sizeof(out);
		assert_int_equal(f[0] | f[1], 0);
		assert_int_equal(f[2] << 8 | f[3], 1514);
		assert_int_equal(f[4], 7);
		assert_int_equal(f[sizeof(out) - 1], 7);
	}
	free(all);
	assert_int_equal(t.nic.down, 0);
	pair_close(&t);
}

static void backend_peer_close_is_link_down(void **s)
{
	(void)s;
	struct pair t;
	pair_open(&t);
	struct net_backend *b = t.b;
	static const size_t lens[] = { 60 };
	uint8_t in[64];
	size_t len = make_stream(in, lens, 1);
	assert_int_equal(write(t.peer, in, len), (ssize_t)len);
	close(t.peer);
	t.peer = -1;
	pump(&t.ev, 50);
	assert_int_equal(t.nic.frames, 1); /* what came before the end is delivered */
	assert_int_equal(t.nic.down, 1);
	/* frames to a gone t.peer are dropped, not an error */
	uint8_t frame[60] = { 0 };
	struct iovec iov = { frame, sizeof(frame) };
	assert_int_equal(b->ops->send(b, &iov, 1), 0);
	assert_int_equal(b->tx_dropped, 1);
	pair_close(&t);
}

static void backend_garbage_length_is_link_down(void **s)
{
	(void)s;
	struct pair t;
	pair_open(&t);
	assert_int_equal(write(t.peer, "GET / HTTP/1.1\r\n", 16), 16);
	pump(&t.ev, 50);
	assert_int_equal(t.nic.frames, 0);
	assert_int_equal(t.nic.down, 1);
	pair_close(&t);
}

static void inherited_fd_must_be_a_stream(void **s)
{
	(void)s;
	int sv[2];
	char err[256];
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	assert_int_equal(net_check_inherited(sv[0], SOCK_STREAM, err, sizeof(err)), -1);
	char want[128];
	snprintf(want, sizeof(want), "fd=%d is not a stream socket (type=unixstream)", sv[0]);
	assert_string_equal(err, want);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frames_split_at_every_byte_and_merged),
		cmocka_unit_test(empty_and_runt_frames_are_skipped),
		cmocka_unit_test(oversized_length_loses_framing),
		cmocka_unit_test(backend_frames_both_ways_and_backpressure),
		cmocka_unit_test(backend_peer_close_is_link_down),
		cmocka_unit_test(backend_garbage_length_is_link_down),
		cmocka_unit_test(inherited_fd_must_be_a_stream),
	};
	return cmocka_run_group_tests_name("unixstream network backend", tests, NULL, NULL);
}
