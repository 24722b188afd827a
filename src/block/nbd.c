/* NBD backend: the disk lives on an NBD server, reached through libnbd's
 * asynchronous API on the I/O thread. Every request stays on our list until
 * the server has answered it; when the connection drops, unanswered
 * requests are sent again on the next connection (reads and writes are
 * idempotent), and only fail once they have waited longer than timeout=. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vmm/eventloop.h"
#include "backend.h"
#include "nbd_lib.h"

#define TICK_MS 100
#define BACKOFF_MAX_MS 2000
#define NBD_MAX_REQUEST (32u << 20) /* the largest request servers must accept */

enum cmd_state { CMD_UNSENT, CMD_SENT, CMD_DONE };

struct nbd_cmd {
	struct nbd_backend *nb;
	struct blk_io *io;
	void *bounce;      /* flat copy when the guest buffer is scattered */
	uint64_t t0_ms;    /* first submission */
	enum cmd_state state;
	struct nbd_cmd *next;
};

struct nbd_backend {
	struct blk_backend b;
	char *uri;
	uint64_t timeout_ms;
	struct eventloop *ev;
	struct nbd_handle *h;   /* NULL while disconnected */
	bool connected;         /* handshake done */
	struct ev_watch fd_watch, timer_watch;
	bool fd_watched;
	int timer_fd;
	uint64_t next_attempt_ms;
	unsigned backoff_ms;
	bool lost_logged;
	struct nbd_cmd *cmds;   /* outstanding, oldest first */
	struct nbd_cmd **tail;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool connection_error(int e)
{
	return e == ENOTCONN || e == ESHUTDOWN || e == ECONNRESET || e == EPIPE || e == ECONNABORTED;
}

static void iov_to_flat(const struct blk_io *io, void *buf)
{
	char *p = buf;
	for (unsigned i = 0; i < io->niov; i++) {
		memcpy(p, io->iov[i].iov_base, io->iov[i].iov_len);
		p += io->iov[i].iov_len;
	}
}

static void iov_from_flat(struct blk_io *io, const void *buf)
{
	const char *p = buf;
	for (unsigned i = 0; i < io->niov; i++) {
		memcpy(io->iov[i].iov_base, p, io->iov[i].iov_len);
		p += io->iov[i].iov_len;
	}
}

static int on_reply(void *opaque, int *error)
{
	struct nbd_cmd *c = opaque;
	if (c->state != CMD_SENT)
		return 1;
	if (*error && (connection_error(*error) || !c->nb->h || nbd_aio_is_dead(c->nb->h))) {
		c->state = CMD_UNSENT; /* the server never answered: send again */
		return 1;
	}
	struct blk_io *io = c->io;
	io->result = -*error;
	if (!*error && io->op == BLK_READ && c->bounce)
		iov_from_flat(io, c->bounce);
	c->state = CMD_DONE;
	return 1;
}

/* Hand one command to libnbd. False when the connection is unusable. */
static bool send_cmd(struct nbd_backend *nb, struct nbd_cmd *c)
{
	struct blk_io *io = c->io;
	nbd_completion_callback cb = { .callback = on_reply, .user_data = c };
	void *buf = io->niov == 1 ? io->iov[0].iov_base : c->bounce;
	int64_t r;
	c->state = CMD_SENT;
	switch (io->op) {
	case BLK_READ: r = nbd_aio_pread(nb->h, buf, io->len, io->offset, cb, 0); break;
	case BLK_WRITE: r = nbd_aio_pwrite(nb->h, buf, io->len, io->offset, cb, 0); break;
	case BLK_FLUSH: r = nbd_aio_flush(nb->h, cb, 0); break;
	case BLK_DISCARD: r = nbd_aio_trim(nb->h, io->len, io->offset, cb, 0); break;
	default: r = nbd_aio_zero(nb->h, io->len, io->offset, cb, io->unmap ? 0 : LIBNBD_CMD_FLAG_NO_HOLE); break;
	}
	if (r >= 0)
		return true;
	if (nbd_aio_is_dead(nb->h) || !nbd_aio_is_ready(nb->h)) {
		c->state = CMD_UNSENT;
		return false;
	}
	/* refused locally (e.g. too large): that request fails, the rest go on */
	io->result = -(nbd_get_errno() ? nbd_get_errno() : EIO);
	c->state = CMD_DONE;
	return true;
}

static void arm_timer(struct nbd_backend *nb, bool on)
{
	struct itimerspec its = { 0 };
	if (on) {
		its.it_value.tv_nsec = TICK_MS * 1000000L;
		its.it_interval.tv_nsec = TICK_MS * 1000000L;
	}
	timerfd_settime(nb->timer_fd, 0, &its, NULL);
}

static void drop_connection(struct nbd_backend *nb, const char *why)
{
	if (!nb->h)
		return;
	if (!nb->lost_logged)
		log_error("Disconnected from NBD server %s. Error %s", nb->uri, why ? why : "connection lost");
	nb->lost_logged = true;
	if (nb->fd_watched)
		ev_del(nb->ev, &nb->fd_watch);
	nb->fd_watched = false;
	struct nbd_handle *h = nb->h;
	nb->h = NULL;
	nb->connected = false;
	nbd_close(h);
	for (struct nbd_cmd *c = nb->cmds; c; c = c->next)
		if (c->state == CMD_SENT)
			c->state = CMD_UNSENT;
	nb->backoff_ms = nb->backoff_ms ? nb->backoff_ms : TICK_MS;
	nb->next_attempt_ms = now_ms() + nb->backoff_ms;
	arm_timer(nb, true);
}

static void fail_expired(struct nbd_backend *nb)
{
	uint64_t now = now_ms();
	for (struct nbd_cmd *c = nb->cmds; c; c = c->next) {
		if (c->state == CMD_UNSENT && now - c->t0_ms >= nb->timeout_ms) {
			c->io->result = -EIO;
			c->state = CMD_DONE;
		}
	}
}

static void update_watch(struct nbd_backend *nb)
{
	if (!nb->h)
		return;
	int fd = nbd_aio_get_fd(nb->h);
	if (fd < 0)
		return;
	unsigned dir = nbd_aio_get_direction(nb->h);
	uint32_t ev = (dir & LIBNBD_AIO_DIRECTION_READ ? EPOLLIN : 0) | (dir & LIBNBD_AIO_DIRECTION_WRITE ? EPOLLOUT : 0);
	if (!nb->fd_watched) {
		nb->fd_watch.fd = fd;
		nb->fd_watch.events = ev;
		if (ev_add(nb->ev, &nb->fd_watch) == 0)
			nb->fd_watched = true;
	} else if (nb->fd_watch.events != ev) {
		ev_mod(nb->ev, &nb->fd_watch, ev);
	}
}

/* Everything that can happen after libnbd ran: notice a dead or newly ready
 * connection, (re)send what waits, hand finished requests back. */
static void pump(struct nbd_backend *nb)
{
	if (nb->h && (nbd_aio_is_dead(nb->h) || nbd_aio_is_closed(nb->h)))
		drop_connection(nb, nbd_get_error());
	if (nb->h && !nb->connected && nbd_aio_is_ready(nb->h)) {
		nb->connected = true;
		nb->backoff_ms = 0;
		nb->lost_logged = false;
		arm_timer(nb, false);
		if ((uint64_t)nbd_get_size(nb->h) != nb->b.size)
			log_error("NBD server %s: the export size changed; keeping the old size", nb->uri);
		log_info("Successfully connected to NBD server %s.", nb->uri);
	}
	if (nb->connected) {
		for (struct nbd_cmd *c = nb->cmds; c; c = c->next)
			if (c->state == CMD_UNSENT && !send_cmd(nb, c))
				break;
		if (nbd_aio_is_dead(nb->h))
			drop_connection(nb, nbd_get_error());
	}
	unsigned delivered = 0;
	for (struct nbd_cmd **pp = &nb->cmds; *pp;) {
		struct nbd_cmd *c = *pp;
		if (c->state != CMD_DONE) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		struct blk_io *io = c->io;
		free(c->bounce);
		free(c);
		nb->b.inflight--;
		nb->b.complete(nb->b.opaque, io);
		delivered++;
	}
	nb->tail = &nb->cmds;
	while (*nb->tail)
		nb->tail = &(*nb->tail)->next;
	if (delivered && nb->b.batch_done)
		nb->b.batch_done(nb->b.opaque);
	update_watch(nb);
}

static int start_connect(struct nbd_backend *nb)
{
	struct nbd_handle *h = nbd_create();
	if (!h)
		return -1;
	nbd_set_handle_name(h, "kvkit");
	/* The URI is the user's own (command line or config file), so its
	 * tls-certificates=DIR and tls-psk-file=FILE may name local files:
	 * libnbd refuses them unless told, for URIs from untrusted sources. */
	nbd_set_uri_allow_local_file(h, true);
	if (nbd_aio_connect_uri(h, nb->uri) < 0) {
		nbd_close(h);
		return -1;
	}
	nb->h = h;
	nb->connected = false;
	return 0;
}

static void on_fd(void *opaque, uint32_t events)
{
	struct nbd_backend *nb = opaque;
	if (!nb->h)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		nbd_aio_notify_read(nb->h);
	if (nb->h && (events & EPOLLOUT))
		nbd_aio_notify_write(nb->h);
	pump(nb);
}

static void on_tick(void *opaque, uint32_t events)
{
	struct nbd_backend *nb = opaque;
	uint64_t v;
	(void)events;
	if (read(nb->timer_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	fail_expired(nb);
	if (!nb->h && now_ms() >= nb->next_attempt_ms) {
		if (start_connect(nb) < 0) {
			nb->backoff_ms = nb->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : nb->backoff_ms * 2;
			nb->next_attempt_ms = now_ms() + nb->backoff_ms;
		}
	}
	pump(nb);
	if (nb->connected)
		arm_timer(nb, false); /* ticks are only needed while disconnected */
}

static void nbd_submit(struct blk_backend *b, struct blk_io *io)
{
	struct nbd_backend *nb = (struct nbd_backend *)b;
	struct nbd_cmd *c = calloc(1, sizeof(*c));
	b->inflight++;
	io->result = 0;
	if (c && (io->op == BLK_READ || io->op == BLK_WRITE) && io->niov > 1) {
		c->bounce = io->len <= NBD_MAX_REQUEST ? malloc(io->len) : NULL;
		if (!c->bounce) {
			free(c);
			c = NULL;
		} else if (io->op == BLK_WRITE) {
			iov_to_flat(io, c->bounce);
		}
	}
	if (!c) {
		/* cannot even queue it: fail this one request, asynchronously */
		c = calloc(1, sizeof(*c));
		if (!c) {
			log_error("NBD: out of memory");
			abort(); /* nothing sane left to do: we cannot answer the guest */
		}
		io->result = -ENOMEM;
		c->state = CMD_DONE;
	}
	c->nb = nb;
	c->io = io;
	c->t0_ms = now_ms();
	c->next = NULL;
	*nb->tail = c;
	nb->tail = &c->next;
	if (c->state == CMD_UNSENT && nb->connected && !send_cmd(nb, c))
		drop_connection(nb, nbd_get_error());
}

static void nbd_kick(struct blk_backend *b)
{
	struct nbd_backend *nb = (struct nbd_backend *)b;
	/* completions are delivered from the event loop, never inside submit */
	bool done = false;
	for (struct nbd_cmd *c = nb->cmds; c && !done; c = c->next)
		done = c->state == CMD_DONE;
	if (done)
		arm_timer(nb, true);
	update_watch(nb);
}

static void nbd_drain(struct blk_backend *b)
{
	struct nbd_backend *nb = (struct nbd_backend *)b;
	while (nb->cmds) {
		struct pollfd p[2] = { { .fd = nb->timer_fd, .events = POLLIN }, { .fd = -1 } };
		arm_timer(nb, true);
		if (nb->h && nbd_aio_get_fd(nb->h) >= 0) {
			unsigned dir = nbd_aio_get_direction(nb->h);
			p[1].fd = nbd_aio_get_fd(nb->h);
			p[1].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
				      (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
		}
		if (poll(p, 2, TICK_MS * 2) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			on_fd(nb, (p[1].revents & POLLIN ? EPOLLIN : 0) | (p[1].revents & POLLOUT ? EPOLLOUT : 0) |
					  (p[1].revents & (POLLHUP | POLLERR) ? EPOLLHUP : 0));
		if (p[0].revents)
			on_tick(nb, EPOLLIN);
	}
	arm_timer(nb, false);
}

static void nbd_backend_close(struct blk_backend *b)
{
	struct nbd_backend *nb = (struct nbd_backend *)b;
	nbd_drain(b);
	if (nb->fd_watched)
		ev_del(nb->ev, &nb->fd_watch);
	ev_del(nb->ev, &nb->timer_watch);
	if (nb->h) {
		nbd_shutdown(nb->h, 0);
		nbd_close(nb->h);
	}
	close(nb->timer_fd);
	free(nb->uri);
	free(nb);
}

static const struct blk_backend_ops nbd_ops = {
	.name = "nbd",
	.submit = nbd_submit,
	.kick = nbd_kick,
	.drain = nbd_drain,
	.close = nbd_backend_close,
};

/* The first connection, before the VM starts: retried until timeout. */
static int connect_first(struct nbd_backend *nb, char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + nb->timeout_ms;
	unsigned backoff = TICK_MS;
	const char *last = "timed out";
	char msg[256];
	for (;;) {
		if (start_connect(nb) == 0) {
			while (nb->h && !nbd_aio_is_ready(nb->h) && !nbd_aio_is_dead(nb->h) && now_ms() < deadline) {
				struct pollfd p = { .fd = nbd_aio_get_fd(nb->h) };
				unsigned dir = nbd_aio_get_direction(nb->h);
				p.events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) | (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
				if (poll(&p, 1, TICK_MS) > 0) {
					if (p.revents & (POLLIN | POLLHUP | POLLERR))
						nbd_aio_notify_read(nb->h);
					if (p.revents & POLLOUT)
						nbd_aio_notify_write(nb->h);
				}
			}
			if (nb->h && nbd_aio_is_ready(nb->h)) {
				nb->connected = true;
				return 0;
			}
		}
		snprintf(msg, sizeof(msg), "%s", nbd_get_error() ? nbd_get_error() : last);
		last = msg;
		if (nb->h) {
			nbd_close(nb->h);
			nb->h = NULL;
		}
		if (now_ms() + backoff >= deadline)
			break;
		usleep(backoff * 1000);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	snprintf(err, errlen, "failed to connect to NBD server %s: %s", nb->uri, last);
	return -1;
}

int blk_nbd_open(const struct kv_nbd *k, struct eventloop *ev, struct blk_backend **out, char *err, size_t errlen)
{
	if (nbd_lib_load(err, errlen) < 0)
		return -1;
	struct nbd_backend *nb = calloc(1, sizeof(*nb));
	if (!nb || !(nb->uri = strdup(k->uri))) {
		free(nb);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	nb->b.ops = &nbd_ops;
	nb->ev = ev;
	nb->tail = &nb->cmds;
	nb->timeout_ms = k->timeout_ms > 0 ? (uint64_t)k->timeout_ms : 0;
	nb->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (nb->timer_fd < 0) {
		snprintf(err, errlen, "cannot create a timer: %s", strerror(errno));
		goto fail;
	}
	if (connect_first(nb, err, errlen) < 0)
		goto fail;
	int64_t size = nbd_get_size(nb->h);
	if (size < 0) {
		snprintf(err, errlen, "NBD server %s: cannot get the export size: %s", nb->uri, nbd_get_error());
		goto fail;
	}
	nb->b.size = (uint64_t)size;
	nb->b.readonly = k->readonly || nbd_is_read_only(nb->h) == 1;
	nb->b.can_discard = !nb->b.readonly && nbd_can_trim(nb->h) == 1 && nbd_can_zero(nb->h) == 1;
	nb->b.flush_is_noop = k->sync_none || nbd_can_flush(nb->h) != 1;
	nb->b.logical_block = 512;
	nb->b.physical_block = 4096;
	nb->fd_watch = (struct ev_watch){ .fn = on_fd, .opaque = nb };
	nb->timer_watch = (struct ev_watch){ .fd = nb->timer_fd, .events = EPOLLIN, .fn = on_tick, .opaque = nb };
	if (ev_add(ev, &nb->timer_watch) < 0) {
		snprintf(err, errlen, "cannot watch the NBD timer");
		goto fail;
	}
	log_info("Successfully connected to NBD server %s.", nb->uri);
	update_watch(nb);
	*out = &nb->b;
	return 0;
fail:
	if (nb->h)
		nbd_close(nb->h);
	if (nb->timer_fd > 0)
		close(nb->timer_fd);
	free(nb->uri);
	free(nb);
	return -1;
}
