/* The unixstream backend (krunkit's type=unixstream): a unix stream socket
 * carrying QEMU's stream framing (stream_frames.h), as passt, gvproxy
 * -listen-qemu and socket_vmnet speak it. Connected by path= or inherited
 * as fd=.
 *
 * A stream has no message boundaries, so both directions keep framing
 * across partial reads and writes. Host memory stays bounded both ways:
 * receive reads into one buffer of a few frames and stops reading while the
 * guest has no buffers; transmit keeps at most one partly written frame and
 * stalls the guest's transmit queue until the socket drains it. A peer that
 * closes takes the link down (the guest sees carrier off) and the VM runs
 * on. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vmm/eventloop.h"
#include "net.h"
#include "stream_frames.h"

#define RX_BUF (256 * 1024) /* a few maximal frames, many small ones per read */
#define RX_BATCH 64

struct stream_backend {
	struct net_backend b;
	int fd;
	bool watching, rx_paused;
	atomic_bool down;     /* the peer is gone: frames to it are dropped */
	atomic_int tx_errno;  /* a send failed for good: the I/O thread takes the link down */
	struct eventloop *ev;
	struct ev_watch watch;
	struct stream_rx rx;
	/* Transmit runs on whichever thread kicks the queue (under the device's
	 * lock); the I/O thread finishes partly written frames: tx_lock orders
	 * the two (taken after the device's lock, never before it). */
	pthread_mutex_t tx_lock;
	bool want_out;
	size_t tx_off, tx_len; /* the unsent tail of a partly written frame */
	char what[160];        /* for log lines */
	uint8_t tx_pending[STREAM_LEN_BYTES + NET_MAX_FRAME];
	uint8_t rx_buf[RX_BUF];
};

/* I/O thread, or under tx_lock */
static void update_watch(struct stream_backend *s)
{
	if (s->watching)
		ev_mod(s->ev, &s->watch, (s->rx_paused ? 0 : EPOLLIN) | (s->want_out ? EPOLLOUT : 0));
}

/* The peer is gone: one line, carrier off, and from now on frames to it
 * are dropped. I/O thread only, holding no lock (the device's callback
 * takes the device's). */
static void link_down(struct stream_backend *s, const char *why)
{
	if (atomic_exchange(&s->down, true))
		return;
	log_warn("%s: %s; the link is down", s->what, why);
	if (s->watching) {
		ev_del(s->ev, &s->watch);
		s->watching = false;
	}
	if (s->b.link_down)
		s->b.link_down(s->b.dev);
}

/* Hand whole frames to the device; false when it has no room (the frame
 * stays in the buffer for rx_resume). */
static bool deliver_frames(struct stream_backend *s)
{
	const uint8_t *frame;
	size_t len;
	int r;
	while ((r = stream_rx_peek(&s->rx, &frame, &len)) == 1) {
		if (s->b.deliver(s->b.dev, frame, len) == -ENOSPC)
			return false;
		stream_rx_consume(&s->rx);
	}
	if (r < 0)
		link_down(s, "a frame length beyond any Ethernet frame: the stream is not QEMU's framing");
	return true;
}

static void receive(struct stream_backend *s)
{
	for (int i = 0; i < RX_BATCH && !s->down; i++) {
		if (!deliver_frames(s)) {
			s->rx_paused = true; /* the guest's rx kick resumes us */
			pthread_mutex_lock(&s->tx_lock);
			update_watch(s);
			pthread_mutex_unlock(&s->tx_lock);
			return;
		}
		if (s->down)
			return;
		size_t avail;
		uint8_t *p = stream_rx_space(&s->rx, &avail);
		ssize_t n = recv(s->fd, p, avail, 0);
		if (n == 0) {
			link_down(s, "the peer closed the connection");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			link_down(s, strerror(errno));
			return;
		}
		stream_rx_fill(&s->rx, (size_t)n);
	}
	deliver_frames(s);
}

/* Under tx_lock: write what is left of a partly written frame; true when
 * nothing is left. A failure is left to the I/O thread (tx_errno). */
static bool flush_pending(struct stream_backend *s)
{
	while (s->tx_off < s->tx_len) {
		ssize_t w = send(s->fd, s->tx_pending + s->tx_off, s->tx_len - s->tx_off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return false;
		if (w < 0) {
			atomic_store(&s->tx_errno, errno);
			break; /* the tail is dropped with the link */
		}
		s->tx_off += (size_t)w;
	}
	s->tx_off = s->tx_len = 0;
	return true;
}

static void on_event(void *opaque, uint32_t events)
{
	struct stream_backend *s = opaque;
	bool wake = false;
	pthread_mutex_lock(&s->tx_lock);
	if ((events & EPOLLOUT) && s->want_out && flush_pending(s)) {
		s->want_out = false;
		update_watch(s);
		wake = true;
	}
	pthread_mutex_unlock(&s->tx_lock);
	int e = atomic_load(&s->tx_errno);
	if (e)
		link_down(s, strerror(e));
	if (wake)
		s->b.writable(s->b.dev); /* the device retries the frame it holds */
	if (s->down || !(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	if (!s->rx_paused) {
		receive(s);
	} else if (events & (EPOLLERR | EPOLLHUP)) {
		/* no guest buffers, and a hang-up epoll would report forever:
		 * stop watching; rx_resume reads what is left, then the end */
		ev_del(s->ev, &s->watch);
		s->watching = false;
	}
}

/* Under the device's lock. */
static int stream_send(struct net_backend *b, const struct iovec *iov, int n)
{
	struct stream_backend *s = (struct stream_backend *)b;
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (s->down || atomic_load(&s->tx_errno) || n > NET_MAX_IOV || len > NET_MAX_FRAME) {
		b->tx_dropped++;
		return 0;
	}
	int rc = 0;
	pthread_mutex_lock(&s->tx_lock);
	if (s->tx_len && !flush_pending(s)) { /* the last frame is still going out */
		rc = -EAGAIN;
		goto out;
	}
	uint8_t hdr[STREAM_LEN_BYTES];
	stream_frame_header(len, hdr);
	struct iovec v[1 + NET_MAX_IOV];
	v[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
	memcpy(v + 1, iov, n * sizeof(*iov));
	struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)n + 1 };
	ssize_t w;
	do
		w = sendmsg(s->fd, &m, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno != EAGAIN) {
		atomic_store(&s->tx_errno, errno); /* the I/O thread sees the hang-up and takes the link down */
		b->tx_dropped++;
		goto out;
	}
	if (w == (ssize_t)(len + sizeof(hdr)))
		goto out;
	if (w > 0) {
		/* part of it went: keep the rest, so the stream stays framed */
		size_t off = 0;
		for (int i = 0; i <= n; i++) {
			memcpy(s->tx_pending + off, v[i].iov_base, v[i].iov_len);
			off += v[i].iov_len;
		}
		s->tx_off = (size_t)w;
		s->tx_len = off;
	} else {
		rc = -EAGAIN; /* nothing went: the device keeps the frame and waits */
	}
	s->want_out = true;
	update_watch(s);
out:
	pthread_mutex_unlock(&s->tx_lock);
	return rc;
}

static void stream_rx_resume(struct net_backend *b)
{
	struct stream_backend *s = (struct stream_backend *)b;
	if (!s->rx_paused || s->down || !deliver_frames(s))
		return;
	s->rx_paused = false;
	if (!s->watching && !s->down) { /* stopped at a hang-up: read to its end */
		receive(s);
		if (!s->down && ev_add(s->ev, &s->watch) == 0)
			s->watching = true;
		return;
	}
	pthread_mutex_lock(&s->tx_lock);
	update_watch(s);
	pthread_mutex_unlock(&s->tx_lock);
	receive(s);
}

static void stream_close(struct net_backend *b)
{
	struct stream_backend *s = (struct stream_backend *)b;
	if (s->watching)
		ev_del(s->ev, &s->watch);
	if (s->fd >= 0)
		close(s->fd);
	pthread_mutex_destroy(&s->tx_lock);
	free(s);
}

static const struct net_backend_ops stream_ops = {
	.name = "unixstream", .send = stream_send, .rx_resume = stream_rx_resume, .close = stream_close,
};

int net_stream_check_path(const char *path, char *err, size_t errlen)
{
	if (strlen(path) > sizeof(((struct sockaddr_un *)0)->sun_path) - 1) {
		snprintf(err, errlen, "unixstream path '%s' is too long: %zu >= 108 bytes", path, strlen(path));
		return -1;
	}
	return 0;
}

static int connect_path(const char *path, char *err, size_t errlen)
{
	if (net_stream_check_path(path, err, errlen) < 0)
		return -1;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memcpy(a.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		snprintf(err, errlen, "cannot connect to unixstream socket %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int net_stream_open(const struct kv_net *cfg, struct eventloop *ev, struct net_backend **out, char *err, size_t errlen)
{
	struct stream_backend *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "virtio-net: out of memory");
		return -1;
	}
	s->b.ops = &stream_ops;
	s->ev = ev;
	pthread_mutex_init(&s->tx_lock, NULL);
	s->rx = (struct stream_rx){ .max_frame = NET_MAX_FRAME, .cap = sizeof(s->rx_buf), .buf = s->rx_buf };
	if (cfg->fd >= 0) {
		if (net_check_inherited(cfg->fd, SOCK_STREAM, err, errlen) < 0) {
			free(s);
			return -1;
		}
		s->fd = cfg->fd;
		fcntl(s->fd, F_SETFD, FD_CLOEXEC);
		snprintf(s->what, sizeof(s->what), "virtio-net unixstream fd=%d", cfg->fd);
	} else {
		if ((s->fd = connect_path(cfg->unix_path, err, errlen)) < 0) {
			free(s);
			return -1;
		}
		snprintf(s->what, sizeof(s->what), "virtio-net unixstream %s", cfg->unix_path);
		log_info("Using unix stream socket %s", cfg->unix_path);
	}
	fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
	net_set_socket_buffers(s->fd);
	s->watch = (struct ev_watch){ .fd = s->fd, .events = EPOLLIN, .fn = on_event, .opaque = s };
	if (ev_add(ev, &s->watch) < 0) {
		snprintf(err, errlen, "%s: cannot watch it: %s", s->what, strerror(errno));
		if (cfg->fd < 0)
			close(s->fd);
		free(s);
		return -1;
	}
	s->watching = true;
	*out = &s->b;
	return 0;
}
