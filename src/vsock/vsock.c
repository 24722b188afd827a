/* virtio-vsock stream connections (virtio 1.2, 5.10) between the guest and
 * host unix sockets. See vsock.h for the model.
 *
 * Flow control: each side advertises buf_alloc and fwd_cnt in every packet.
 * Guest -> host bytes are written straight from guest memory to the host
 * socket; what the socket does not take is kept (at most CONN_BUF per
 * connection, the credit we grant) and fwd_cnt only counts bytes the host
 * socket took. Host -> guest bytes are read straight into the guest's
 * receive buffers, never more than the guest's credit allows. A host socket
 * is only watched for input while the guest has credit and buffers, so
 * nothing is buffered on that side at all. */
#define _GNU_SOURCE
#include "vsock.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "../util/log.h"
#include "../util/unixsock.h"

#define RXQ 0
#define TXQ 1
#define EVQ 2

#define VSOCK_TYPE_STREAM 1
enum {
	OP_INVALID = 0,
	OP_REQUEST = 1,
	OP_RESPONSE = 2,
	OP_RST = 3,
	OP_SHUTDOWN = 4,
	OP_RW = 5,
	OP_CREDIT_UPDATE = 6,
	OP_CREDIT_REQUEST = 7,
};
#define SHUT_F_RCV 1  /* the sender will receive no more */
#define SHUT_F_SEND 2 /* the sender will send no more */
#define EVENT_TRANSPORT_RESET 0

#define CONN_BUF (256 * 1024) /* the credit each connection grants the guest */
#define MAX_PKT (64 * 1024)   /* Linux never sends more in one packet */
#define MAX_CONNS 1024
#define ORPHAN_RST_MAX 64     /* resets for unknown connections waiting for buffers */
#define RX_BATCH 16           /* receive buffers filled by one read() */
#define PENDING_TIMEOUT_S 10  /* REQUEST without answer, mux header not sent */
#define HOST_PORT_BASE (1u << 30)
#define HASH_SIZE 256

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
#define HDR_LEN ((unsigned)sizeof(struct vsock_hdr))

enum entry_kind { E_LISTEN, E_CONNECT, E_SERVICE, E_MUX };

struct entry {
	struct vsock *v;
	enum entry_kind kind;
	uint32_t port;
	char *path;
	int lfd; /* connect/mux: our listening socket */
	struct ev_watch w;
	void (*accept)(void *opaque, int fd);
	void *opaque;
	bool warned;
	struct entry *next;
};

enum conn_state { C_MUX_HEADER, C_REQUEST_SENT, C_ESTABLISHED };

/* control packets a connection owes the guest */
#define CP_REQUEST 1
#define CP_RESPONSE 2
#define CP_CREDIT 4
#define CP_SHUTDOWN 8
#define CP_RST 16

struct conn {
	struct vsock *v;
	uint32_t local_port, peer_port; /* host side, guest side */
	int fd;
	struct ev_watch w;
	bool registered;
	enum conn_state state;
	bool mux;                       /* reply "OK <port>\n" when established */
	bool dead;                      /* closed; freed at the end of the round */
	bool host_eof;                  /* the host socket said EOF */
	bool host_wr_shut;              /* we shut down writing to the host socket */
	bool guest_shut_send, guest_shut_rcv;
	bool rx_wait;                   /* stopped reading: no receive buffers */
	bool hashed;
	unsigned pending;               /* CP_* */
	bool in_ctrl;
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt; /* host -> guest credit */
	uint32_t rx_cnt, fwd_cnt, last_fwd_sent;      /* guest -> host */
	uint8_t *pend;                  /* guest bytes the host socket did not take yet */
	size_t pend_off, pend_len, pend_cap;
	char mux_line[32];
	unsigned mux_len;
	time_t deadline;
	struct conn *hnext, *ctrl_next, *all_next, *all_prev, *wait_next;
};

struct vsock {
	struct eventloop *ev;
	pthread_mutex_t *lock;
	struct vsock_hooks hooks;
	struct vsock_queues q;
	struct entry *entries; /* a list: listener watches point into entries */
	struct entry mux;
	bool has_mux;
	struct conn *hash[HASH_SIZE];
	struct conn *all;
	struct conn *ctrl_head, *ctrl_tail;
	struct conn *rx_waiters;
	struct conn *graveyard;
	unsigned nconns;
	struct { uint32_t src, dst; } orphan[ORPHAN_RST_MAX];
	unsigned norphan;
	bool event_reset_pending;
	uint32_t next_port;
	int timer_fd;
	struct ev_watch timer_w;
	bool timer_armed;
	bool pushed_rx, pushed_tx, pushed_ev;
	uint64_t resets_sent, bad_packets;
	struct virtq_elem tx_elem, ev_elem;
	struct virtq_elem rx_elem[RX_BATCH];
	struct iovec rd_iov[RX_BATCH * 8];
};

/* ---------------- helpers ---------------- */

static bool can_run(struct vsock *v)
{
	return v->hooks.can_run(v->hooks.opaque);
}

static unsigned hkey(uint32_t local, uint32_t peer)
{
	return (local * 2654435761u ^ peer) % HASH_SIZE;
}

static struct conn *lookup(struct vsock *v, uint32_t local, uint32_t peer)
{
	for (struct conn *c = v->hash[hkey(local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

static void hash_insert(struct conn *c)
{
	struct conn **b = &c->v->hash[hkey(c->local_port, c->peer_port)];
	c->hnext = *b;
	*b = c;
	c->hashed = true;
}

static void hash_remove(struct conn *c)
{
	if (!c->hashed)
		return;
	for (struct conn **p = &c->v->hash[hkey(c->local_port, c->peer_port)]; *p; p = &(*p)->hnext)
		if (*p == c) {
			*p = c->hnext;
			break;
		}
	c->hashed = false;
}

/* bytes the guest can still take on this connection */
static uint32_t peer_credit(const struct conn *c)
{
	int64_t used = (uint32_t)(c->tx_cnt - c->peer_fwd_cnt);
	int64_t free = (int64_t)c->peer_buf_alloc - used;
	return free > 0 ? (uint32_t)free : 0;
}

static void queue_ctrl(struct conn *c, unsigned what)
{
	struct vsock *v = c->v;
	c->pending |= what;
	if (c->in_ctrl)
		return;
	c->in_ctrl = true;
	c->ctrl_next = NULL;
	if (v->ctrl_tail)
		v->ctrl_tail->ctrl_next = c;
	else
		v->ctrl_head = c;
	v->ctrl_tail = c;
}

static void orphan_rst(struct vsock *v, uint32_t src, uint32_t dst)
{
	if (v->norphan < ORPHAN_RST_MAX)
		v->orphan[v->norphan++] = (typeof(v->orphan[0])){ src, dst };
}

static void arm_timer(struct vsock *v)
{
	if (v->timer_armed || v->timer_fd < 0)
		return;
	struct itimerspec t = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	timerfd_settime(v->timer_fd, 0, &t, NULL);
	v->timer_armed = true;
}

static uint32_t alloc_port(struct vsock *v, uint32_t peer)
{
	for (;;) {
		uint32_t p = v->next_port++;
		if (p < HOST_PORT_BASE)
			p = v->next_port = HOST_PORT_BASE;
		if (!lookup(v, p, peer))
			return p;
	}
}

static void update_interest(struct conn *c);
static void on_conn_event(void *opaque, uint32_t events);

/* The connection is over. With rst the guest is told (once buffers allow);
 * the memory goes at the end of the event round. */
static void conn_close(struct conn *c, bool rst, const char *why)
{
	struct vsock *v = c->v;
	if (c->dead)
		return;
	log_debug("vsock: host port %u <-> guest port %u closed%s: %s", c->local_port, c->peer_port,
		  rst ? " with a reset" : "", why);
	c->dead = true;
	hash_remove(c);
	if (c->fd >= 0) {
		if (c->registered)
			ev_del(v->ev, &c->w);
		close(c->fd);
		c->fd = -1;
		c->registered = false;
	}
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		v->all = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	v->nconns--;
	if (c->rx_wait) {
		for (struct conn **p = &v->rx_waiters; *p; p = &(*p)->wait_next)
			if (*p == c) {
				*p = c->wait_next;
				break;
			}
		c->rx_wait = false;
	}
	/* a connection the guest never heard of needs no reset */
	c->pending = 0;
	if (rst && (c->state != C_MUX_HEADER))
		queue_ctrl(c, CP_RST);
	c->all_next = v->graveyard;
	c->all_prev = NULL;
	v->graveyard = c;
}

static struct conn *conn_new(struct vsock *v, int fd, enum conn_state st)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->v = v;
	c->fd = fd;
	c->state = st;
	c->w = (struct ev_watch){ .fd = fd, .fn = on_conn_event, .opaque = c };
	c->all_next = v->all;
	if (v->all)
		v->all->all_prev = c;
	v->all = c;
	v->nconns++;
	if (st != C_ESTABLISHED) {
		c->deadline = time(NULL) + PENDING_TIMEOUT_S;
		arm_timer(v);
	}
	return c;
}

/* ---------------- to the guest ---------------- */

/* Pop a receive chain with room for a header; false when the guest has none. */
static bool pop_rx(struct vsock *v, struct virtq_elem *e)
{
	for (;;) {
		if (virtq_pop(v->q.rx, e) <= 0)
			return false;
		if (e->in_len >= HDR_LEN)
			return true;
		v->bad_packets++; /* a buffer too small for any packet */
		virtq_push(v->q.rx, e->head, 0);
		v->pushed_rx = true;
	}
}

static void fill_hdr(struct vsock_hdr *h, struct conn *c, uint32_t src, uint32_t dst, uint16_t op, uint32_t flags,
		     uint32_t len)
{
	*h = (struct vsock_hdr){ .src_cid = VSOCK_HOST_CID, .dst_cid = VSOCK_GUEST_CID, .src_port = src, .dst_port = dst,
				 .len = len, .type = VSOCK_TYPE_STREAM, .op = op, .flags = flags };
	if (c) {
		h->buf_alloc = CONN_BUF;
		h->fwd_cnt = c->fwd_cnt;
		c->last_fwd_sent = c->fwd_cnt;
	}
}

static bool put_ctrl(struct vsock *v, struct conn *c, uint32_t src, uint32_t dst, uint16_t op, uint32_t flags)
{
	struct virtq_elem *e = &v->rx_elem[0];
	struct vsock_hdr h;
	if (!pop_rx(v, e))
		return false;
	fill_hdr(&h, c, src, dst, op, flags, 0);
	iov_from_buf(e->iov + e->n_out, e->n_in, 0, &h, HDR_LEN);
	virtq_push(v->q.rx, e->head, HDR_LEN);
	v->pushed_rx = true;
	if (op == OP_RST)
		v->resets_sent++;
	return true;
}

/* Send what connections owe the guest, oldest first. false: out of buffers. */
static bool flush_ctrl(struct vsock *v)
{
	while (v->norphan) {
		if (!put_ctrl(v, NULL, v->orphan[0].src, v->orphan[0].dst, OP_RST, 0))
			return false;
		memmove(v->orphan, v->orphan + 1, --v->norphan * sizeof(v->orphan[0]));
	}
	while (v->ctrl_head) {
		struct conn *c = v->ctrl_head;
		static const struct { unsigned bit; uint16_t op; } order[] = {
			{ CP_REQUEST, OP_REQUEST }, { CP_RESPONSE, OP_RESPONSE }, { CP_CREDIT, OP_CREDIT_UPDATE },
			{ CP_SHUTDOWN, OP_SHUTDOWN }, { CP_RST, OP_RST },
		};
		for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
			if (!(c->pending & order[i].bit))
				continue;
			if (!put_ctrl(v, c, c->local_port, c->peer_port, order[i].op,
				      order[i].op == OP_SHUTDOWN ? SHUT_F_SEND : 0))
				return false;
			c->pending &= ~order[i].bit;
		}
		v->ctrl_head = c->ctrl_next;
		if (!v->ctrl_head)
			v->ctrl_tail = NULL;
		c->in_ctrl = false;
	}
	return true;
}

/* The guest ran out of receive buffers: stop reading this host socket until
 * it gives more. */
static void wait_for_rx(struct conn *c)
{
	if (c->rx_wait)
		return;
	c->rx_wait = true;
	c->wait_next = c->v->rx_waiters;
	c->v->rx_waiters = c;
	update_interest(c);
}

/* Host socket -> guest: read straight into receive buffers. */
static void pump_to_guest(struct conn *c)
{
	struct vsock *v = c->v;
	if (!can_run(v) || !flush_ctrl(v)) {
		wait_for_rx(c);
		return;
	}
	for (int round = 0; round < 4 && !c->dead && !c->host_eof; round++) {
		uint32_t credit = peer_credit(c);
		if (!credit)
			break;
		unsigned nchains = 0, niov = 0;
		size_t cap[RX_BATCH], total = 0;
		while (nchains < RX_BATCH && total < credit && niov < RX_BATCH * 8 - 8) {
			struct virtq_elem *e = &v->rx_elem[nchains];
			if (virtq_pop(v->q.rx, e) <= 0)
				break;
			size_t room = e->in_len > HDR_LEN ? e->in_len - HDR_LEN : 0;
			if (room > MAX_PKT)
				room = MAX_PKT;
			if (room > credit - total)
				room = credit - total;
			int k = room ? iov_slice(e->iov + e->n_out, e->n_in, HDR_LEN, room, v->rd_iov + niov, 8) : -1;
			if (k < 0) { /* no room past the header, or in more than 8 pieces: not from Linux */
				if (nchains) {
					/* The chains before it may be given back below, and
					 * giving back winds the ring back in order: completing
					 * this one now would have it completed twice and one
					 * before it never. It goes back too, first in line. */
					virtq_unpop(v->q.rx);
					break;
				}
				v->bad_packets++;
				virtq_push(v->q.rx, e->head, 0);
				v->pushed_rx = true;
				continue;
			}
			cap[nchains++] = room;
			niov += k;
			total += room;
		}
		if (!nchains) {
			wait_for_rx(c);
			return;
		}
		ssize_t n = readv(c->fd, v->rd_iov, niov);
		if (n <= 0) {
			for (unsigned i = 0; i < nchains; i++)
				virtq_unpop(v->q.rx);
			if (n == 0) {
				c->host_eof = true;
				queue_ctrl(c, CP_SHUTDOWN);
			} else if (errno != EAGAIN && errno != EINTR) {
				conn_close(c, true, "reading the host socket failed");
			}
			break;
		}
		size_t left = n;
		unsigned used = 0;
		for (; used < nchains && left; used++) {
			struct virtq_elem *e = &v->rx_elem[used];
			uint32_t len = left < cap[used] ? left : cap[used];
			struct vsock_hdr h;
			fill_hdr(&h, c, c->local_port, c->peer_port, OP_RW, 0, len);
			iov_from_buf(e->iov + e->n_out, e->n_in, 0, &h, HDR_LEN);
			virtq_push(v->q.rx, e->head, HDR_LEN + len);
			left -= len;
		}
		for (unsigned i = used; i < nchains; i++)
			virtq_unpop(v->q.rx);
		v->pushed_rx = true;
		c->tx_cnt += n;
		if ((size_t)n < total)
			break; /* drained for now */
	}
	if (c->host_eof)
		flush_ctrl(v);
}

/* ---------------- from the guest ---------------- */

static void maybe_credit_update(struct conn *c)
{
	if (c->fwd_cnt - c->last_fwd_sent >= CONN_BUF / 4)
		queue_ctrl(c, CP_CREDIT);
}

/* Both directions finished, or the guest closed: reset tells it we are done. */
static void maybe_finish(struct conn *c)
{
	if (c->dead || c->pend_len)
		return;
	if (c->guest_shut_send && !c->host_wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->host_wr_shut = true;
	}
	if (c->guest_shut_send && (c->guest_shut_rcv || c->host_eof))
		conn_close(c, true, "both sides are done");
}

static void flush_pend(struct conn *c)
{
	while (c->pend_len) {
		ssize_t n = send(c->fd, c->pend + c->pend_off, c->pend_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_close(c, true, "writing the host socket failed");
			return;
		}
		c->pend_off += n;
		c->pend_len -= n;
		c->fwd_cnt += n;
	}
	c->pend_off = 0;
	maybe_credit_update(c);
	maybe_finish(c);
}

/* Guest payload -> host socket; what the socket does not take is kept. */
static void forward_to_host(struct conn *c, const struct iovec *iov, unsigned niov, uint32_t len)
{
	if (c->rx_cnt - c->fwd_cnt + (uint64_t)len > CONN_BUF) {
		conn_close(c, true, "the guest sent beyond its credit");
		return;
	}
	c->rx_cnt += len;
	size_t done = 0;
	if (!c->pend_len) {
		struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = niov };
		ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			conn_close(c, true, "writing the host socket failed");
			return;
		}
		done = n > 0 ? (size_t)n : 0;
		c->fwd_cnt += done;
	}
	if (done < len) {
		size_t rest = len - done;
		if (c->pend_off + c->pend_len + rest > c->pend_cap) {
			if (c->pend_off) {
				memmove(c->pend, c->pend + c->pend_off, c->pend_len);
				c->pend_off = 0;
			}
			size_t cap = c->pend_cap ? c->pend_cap : 16384;
			while (cap < c->pend_len + rest)
				cap *= 2;
			if (cap > c->pend_cap) {
				uint8_t *p = realloc(c->pend, cap);
				if (!p) {
					conn_close(c, true, "out of memory");
					return;
				}
				c->pend = p;
				c->pend_cap = cap;
			}
		}
		struct iovec tmp[VIRTQ_MAX_SIZE];
		int k = iov_slice(iov, niov, done, rest, tmp, VIRTQ_MAX_SIZE);
		uint8_t *dst = c->pend + c->pend_off + c->pend_len;
		for (int i = 0; i < k; i++) {
			memcpy(dst, tmp[i].iov_base, tmp[i].iov_len);
			dst += tmp[i].iov_len;
		}
		c->pend_len += rest;
	}
	maybe_credit_update(c);
}

static void mux_established(struct conn *c)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
	if (send(c->fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
		conn_close(c, true, "cannot answer the mux client");
}

/* Connect to a host unix socket for a guest connection, without waiting:
 * this runs on the I/O thread. A unix listener takes a connection at once
 * or, its backlog full, answers EAGAIN, which the guest gets as a reset
 * (a refused connection). Waiting there (50 ms a request, as before) let a
 * guest hold the I/O thread for seconds with a stream of requests. */
static int dial_host(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static struct entry *find_entry(struct vsock *v, uint32_t port, bool guest_to_host)
{
	for (struct entry *e = v->entries; e; e = e->next) {
		if (e->port == port && (e->kind == E_LISTEN || e->kind == E_SERVICE) == guest_to_host)
			return e;
	}
	return NULL;
}

/* A guest REQUEST for a connection we do not have. */
static void guest_connects(struct vsock *v, const struct vsock_hdr *h)
{
	struct entry *e = find_entry(v, h->dst_port, true);
	int fd = -1;
	if (v->nconns >= MAX_CONNS) {
		log_debug("vsock: too many connections, refusing guest port %u", h->src_port);
	} else if (e && e->kind == E_SERVICE) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0) {
			fd = sv[0];
			e->accept(e->opaque, sv[1]);
		}
	} else if (e && e->path) {
		fd = dial_host(e->path);
		if (fd < 0 && !e->warned) {
			log_warn("vsock: guest connection to port %u refused: cannot connect to %s: %s", e->port, e->path,
				 strerror(-fd));
			e->warned = true;
		}
	} else if (v->has_mux) {
		char path[256];
		snprintf(path, sizeof(path), "%s_%u", v->mux.path, h->dst_port);
		fd = dial_host(path);
	}
	struct conn *c = fd >= 0 ? conn_new(v, fd, C_ESTABLISHED) : NULL;
	if (!c) {
		if (fd >= 0)
			close(fd);
		orphan_rst(v, h->dst_port, h->src_port);
		return;
	}
	if (e)
		e->warned = false;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	hash_insert(c);
	queue_ctrl(c, CP_RESPONSE);
	update_interest(c);
}

static void handle_packet(struct vsock *v, struct virtq_elem *e)
{
	struct vsock_hdr h;
	if (e->out_len < HDR_LEN || iov_to_buf(e->iov, e->n_out, 0, &h, HDR_LEN) != HDR_LEN) {
		v->bad_packets++;
		return;
	}
	if (h.src_cid != VSOCK_GUEST_CID || h.len > MAX_PKT || h.len > e->out_len - HDR_LEN) {
		v->bad_packets++;
		return;
	}
	if (h.type != VSOCK_TYPE_STREAM || h.dst_cid != VSOCK_HOST_CID) {
		if (h.op != OP_RST)
			orphan_rst(v, h.dst_port, h.src_port);
		return;
	}
	struct conn *c = lookup(v, h.dst_port, h.src_port);
	if (!c) {
		if (h.op == OP_REQUEST)
			guest_connects(v, &h);
		else if (h.op != OP_RST)
			orphan_rst(v, h.dst_port, h.src_port);
		return;
	}
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case OP_RESPONSE:
		if (c->state != C_REQUEST_SENT) {
			conn_close(c, true, "unexpected RESPONSE");
			return;
		}
		c->state = C_ESTABLISHED;
		if (c->mux)
			mux_established(c);
		break;
	case OP_RST:
		conn_close(c, false, "the guest reset it");
		return;
	case OP_SHUTDOWN:
		c->guest_shut_rcv |= !!(h.flags & SHUT_F_RCV);
		c->guest_shut_send |= !!(h.flags & SHUT_F_SEND);
		maybe_finish(c);
		break;
	case OP_RW: {
		if (c->state != C_ESTABLISHED || c->guest_shut_send) {
			conn_close(c, true, "data after shutdown");
			return;
		}
		struct iovec iov[VIRTQ_MAX_SIZE];
		int k = iov_slice(e->iov, e->n_out, HDR_LEN, h.len, iov, VIRTQ_MAX_SIZE);
		if (h.len && k > 0) /* the length was checked against the chain */
			forward_to_host(c, iov, k, h.len);
		break;
	}
	case OP_CREDIT_UPDATE:
		break;
	case OP_CREDIT_REQUEST:
		queue_ctrl(c, CP_CREDIT);
		break;
	default: /* REQUEST on an open connection, unknown ops */
		conn_close(c, true, "unexpected packet");
		return;
	}
	if (!c->dead)
		update_interest(c);
}

/* ---------------- event loop side ---------------- */

static void finish(struct vsock *v)
{
	if (!can_run(v))
		return;
	flush_ctrl(v);
	if (v->pushed_rx) {
		v->pushed_rx = false;
		v->hooks.notify(v->hooks.opaque, RXQ);
	}
	if (v->pushed_tx) {
		v->pushed_tx = false;
		v->hooks.notify(v->hooks.opaque, TXQ);
	}
	if (v->pushed_ev) {
		v->pushed_ev = false;
		v->hooks.notify(v->hooks.opaque, EVQ);
	}
}

static void update_interest(struct conn *c)
{
	uint32_t want = 0;
	if (c->dead || c->fd < 0)
		return;
	if (c->state == C_MUX_HEADER) {
		want = EPOLLIN;
	} else if (c->state == C_ESTABLISHED) {
		if (!c->host_eof && !c->rx_wait && !c->guest_shut_rcv && peer_credit(c))
			want |= EPOLLIN;
		if (c->pend_len)
			want |= EPOLLOUT;
	}
	if (!want) {
		if (c->registered)
			ev_del(c->v->ev, &c->w);
		c->registered = false;
	} else if (!c->registered) {
		c->w.events = want;
		c->registered = ev_add(c->v->ev, &c->w) == 0;
	} else if (want != c->w.events) {
		ev_mod(c->v->ev, &c->w, want);
	}
}

/* The mux header, a byte at a time so nothing after the line is taken. */
static void read_mux_header(struct conn *c)
{
	struct vsock *v = c->v;
	for (;;) {
		char ch;
		ssize_t n = recv(c->fd, &ch, 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0 || c->mux_len >= sizeof(c->mux_line) - 1) {
			conn_close(c, false, "no mux request line");
			return;
		}
		if (ch != '\n') {
			c->mux_line[c->mux_len++] = ch;
			continue;
		}
		c->mux_line[c->mux_len] = 0;
		char *end;
		unsigned long port = 0;
		if (!strncmp(c->mux_line, "CONNECT ", 8))
			port = strtoul(c->mux_line + 8, &end, 10);
		if (!port || port > UINT32_MAX || *end) {
			log_debug("vsock mux: bad request line '%s'", c->mux_line);
			conn_close(c, false, "bad mux request line");
			return;
		}
		c->peer_port = (uint32_t)port;
		c->local_port = alloc_port(v, c->peer_port);
		c->state = C_REQUEST_SENT;
		c->mux = true;
		c->deadline = time(NULL) + PENDING_TIMEOUT_S;
		hash_insert(c);
		queue_ctrl(c, CP_REQUEST);
		update_interest(c);
		return;
	}
}

static void on_conn_event(void *opaque, uint32_t events)
{
	struct conn *c = opaque;
	struct vsock *v = c->v;
	pthread_mutex_lock(v->lock);
	if (c->dead)
		goto out;
	if (c->state == C_MUX_HEADER) {
		read_mux_header(c);
		goto out;
	}
	if (c->pend_len && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		flush_pend(c);
	if (!c->dead && (c->w.events & EPOLLIN) && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		pump_to_guest(c);
	update_interest(c);
out:
	finish(v);
	pthread_mutex_unlock(v->lock);
}

/* A host client on a connect-mode socket, or on the mux socket. */
static void on_listener(void *opaque, uint32_t events)
{
	struct entry *e = opaque;
	struct vsock *v = e->v;
	pthread_mutex_lock(v->lock);
	for (;;) {
		int fd = accept4(e->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		struct conn *c = v->nconns < MAX_CONNS ? conn_new(v, fd, e->kind == E_MUX ? C_MUX_HEADER : C_REQUEST_SENT)
						       : NULL;
		if (!c) {
			close(fd);
			continue;
		}
		if (e->kind == E_MUX) {
			update_interest(c);
			continue;
		}
		c->peer_port = e->port;
		c->local_port = alloc_port(v, e->port);
		hash_insert(c);
		queue_ctrl(c, CP_REQUEST);
	}
	finish(v);
	pthread_mutex_unlock(v->lock);
}

/* Once a second while connections wait: give up on those that waited long. */
static void on_timer(void *opaque, uint32_t events)
{
	struct vsock *v = opaque;
	uint64_t n;
	if (read(v->timer_fd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(v->lock);
	time_t now = time(NULL);
	bool waiting = false;
	for (struct conn *c = v->all, *next; c; c = next) {
		next = c->all_next;
		if (c->state == C_ESTABLISHED)
			continue;
		if (now >= c->deadline)
			conn_close(c, true, "no answer in time");
		else
			waiting = true;
	}
	if (!waiting) {
		struct itimerspec off = { 0 };
		timerfd_settime(v->timer_fd, 0, &off, NULL);
		v->timer_armed = false;
	}
	finish(v);
	pthread_mutex_unlock(v->lock);
}

static void reap(void *opaque)
{
	struct vsock *v = opaque;
	pthread_mutex_lock(v->lock);
	for (struct conn **p = &v->graveyard; *p;) {
		struct conn *c = *p;
		if (c->in_ctrl) {
			p = &c->all_next;
			continue;
		}
		*p = c->all_next;
		free(c->pend);
		free(c);
	}
	pthread_mutex_unlock(v->lock);
}

/* ---------------- public ---------------- */

void vsock_tx_kick(struct vsock *v)
{
	if (!can_run(v))
		return;
	/* stop taking packets while resets cannot even be queued */
	while (v->norphan < ORPHAN_RST_MAX && virtq_pop(v->q.tx, &v->tx_elem) > 0) {
		handle_packet(v, &v->tx_elem);
		virtq_push(v->q.tx, v->tx_elem.head, 0);
		v->pushed_tx = true;
	}
	finish(v);
}

void vsock_rx_kick(struct vsock *v)
{
	if (!can_run(v))
		return;
	if (flush_ctrl(v)) {
		struct conn *c = v->rx_waiters;
		v->rx_waiters = NULL;
		for (struct conn *next; c; c = next) {
			next = c->wait_next;
			c->rx_wait = false;
			update_interest(c);
		}
	}
	if (v->norphan < ORPHAN_RST_MAX)
		vsock_tx_kick(v); /* it may have stopped for lack of room */
	finish(v);
}

void vsock_event_kick(struct vsock *v)
{
	if (!v->event_reset_pending || !can_run(v))
		return;
	if (virtq_pop(v->q.event, &v->ev_elem) <= 0)
		return;
	uint32_t id = EVENT_TRANSPORT_RESET;
	size_t n = iov_from_buf(v->ev_elem.iov + v->ev_elem.n_out, v->ev_elem.n_in, 0, &id, sizeof(id));
	virtq_push(v->q.event, v->ev_elem.head, n);
	v->event_reset_pending = false;
	v->pushed_ev = true;
	finish(v);
}

static void drop_all(struct vsock *v, bool rst)
{
	while (v->all)
		conn_close(v->all, rst, "dropped");
	if (!rst) {
		for (struct conn *c = v->ctrl_head; c; c = c->ctrl_next)
			c->in_ctrl = false;
		v->ctrl_head = v->ctrl_tail = NULL;
		v->norphan = 0;
		v->rx_waiters = NULL;
	}
}

void vsock_reset(struct vsock *v)
{
	drop_all(v, false);
	v->event_reset_pending = false;
}

void vsock_transport_reset(struct vsock *v)
{
	/* the guest drops its connections on the event: no resets needed */
	drop_all(v, false);
	v->event_reset_pending = true;
	vsock_event_kick(v);
}

int vsock_dial_guest(struct vsock *v, uint32_t port)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	pthread_mutex_lock(v->lock);
	struct conn *c = v->nconns < MAX_CONNS ? conn_new(v, sv[0], C_REQUEST_SENT) : NULL;
	if (!c) {
		pthread_mutex_unlock(v->lock);
		close(sv[0]);
		close(sv[1]);
		return -EMFILE;
	}
	c->peer_port = port;
	c->local_port = alloc_port(v, port);
	hash_insert(c);
	queue_ctrl(c, CP_REQUEST);
	finish(v);
	pthread_mutex_unlock(v->lock);
	return sv[1];
}

struct vsock *vsock_new(struct eventloop *ev, pthread_mutex_t *lock, const struct vsock_hooks *hooks,
			const struct vsock_queues *q)
{
	struct vsock *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->ev = ev;
	v->lock = lock;
	v->hooks = *hooks;
	v->q = *q;
	v->next_port = HOST_PORT_BASE;
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (v->timer_fd >= 0) {
		v->timer_w = (struct ev_watch){ .fd = v->timer_fd, .events = EPOLLIN, .fn = on_timer, .opaque = v };
		ev_add(ev, &v->timer_w);
	}
	ev_add_round_end(ev, reap, v);
	return v;
}

static struct entry *add_entry(struct vsock *v, enum entry_kind kind, uint32_t port, const char *path, char *err,
			       size_t errlen)
{
	bool g2h = kind == E_LISTEN || kind == E_SERVICE;
	if (find_entry(v, port, g2h)) {
		snprintf(err, errlen, "virtio-vsock: port %u is given twice for %s connections", port,
			 g2h ? "guest-to-host" : "host-to-guest");
		return NULL;
	}
	if (path && strlen(path) > UNIX_PATH_MAX_LEN) {
		snprintf(err, errlen, "virtio-vsock: socket path length exceeds %d bytes: %s", UNIX_PATH_MAX_LEN, path);
		return NULL;
	}
	struct entry *e = calloc(1, sizeof(*e));
	if (!e || (path && !(e->path = strdup(path)))) {
		free(e);
		snprintf(err, errlen, "virtio-vsock: out of memory");
		return NULL;
	}
	e->v = v;
	e->kind = kind;
	e->port = port;
	e->lfd = -1;
	e->next = v->entries;
	v->entries = e;
	return e;
}

int vsock_add_listen(struct vsock *v, uint32_t port, const char *path, char *err, size_t errlen)
{
	return add_entry(v, E_LISTEN, port, path, err, errlen) ? 0 : -1;
}

static int start_listener(struct vsock *v, struct entry *e, char *err, size_t errlen)
{
	e->lfd = unix_listen(e->path, e->path, err, errlen);
	if (e->lfd < 0)
		return -1;
	e->w = (struct ev_watch){ .fd = e->lfd, .events = EPOLLIN, .fn = on_listener, .opaque = e };
	return ev_add(v->ev, &e->w);
}

int vsock_add_connect(struct vsock *v, uint32_t port, const char *path, char *err, size_t errlen)
{
	struct entry *e = add_entry(v, E_CONNECT, port, path, err, errlen);
	if (!e)
		return -1;
	if (start_listener(v, e, err, errlen) < 0) {
		v->entries = e->next; /* it was added first */
		free(e->path);
		free(e);
		return -1;
	}
	return 0;
}

int vsock_add_mux(struct vsock *v, const char *path, char *err, size_t errlen)
{
	if (v->has_mux) {
		snprintf(err, errlen, "virtio-vsock: only one mux socket per VM");
		return -1;
	}
	if (strlen(path) > UNIX_PATH_MAX_LEN - 11) { /* room for _PORT */
		snprintf(err, errlen, "virtio-vsock: mux socket path too long: %s", path);
		return -1;
	}
	v->mux = (struct entry){ .v = v, .kind = E_MUX, .lfd = -1, .path = strdup(path) };
	if (!v->mux.path || start_listener(v, &v->mux, err, errlen) < 0) {
		free(v->mux.path);
		v->mux.path = NULL;
		return -1;
	}
	v->has_mux = true;
	return 0;
}

int vsock_add_service(struct vsock *v, uint32_t port, void (*accept)(void *opaque, int fd), void *opaque, char *err,
		      size_t errlen)
{
	struct entry *e = add_entry(v, E_SERVICE, port, NULL, err, errlen);
	if (!e)
		return -1;
	e->accept = accept;
	e->opaque = opaque;
	return 0;
}

void vsock_get_stats(struct vsock *v, struct vsock_stats *s)
{
	pthread_mutex_lock(v->lock);
	s->conns = v->nconns;
	s->resets_sent = v->resets_sent;
	s->bad_packets = v->bad_packets;
	pthread_mutex_unlock(v->lock);
}

static void close_listener(struct vsock *v, struct entry *e)
{
	if (e->lfd >= 0) {
		ev_del(v->ev, &e->w);
		close(e->lfd);
		unlink(e->path); /* kvkit created it */
	}
	free(e->path);
}

static unsigned count_waiters(const struct vsock *v)
{
	unsigned n = 0;
	for (const struct conn *c = v->rx_waiters; c; c = c->wait_next)
		n++;
	return n;
}

/* Debug logs at exit: what every connection was waiting for. */
static void dump(struct vsock *v)
{
	char rx[160], tx[160];
	virtq_describe(v->q.rx, rx, sizeof(rx));
	virtq_describe(v->q.tx, tx, sizeof(tx));
	log_debug("vsock: %u connections, %u resets queued, %u waiting for receive buffers%s", v->nconns, v->norphan,
		  count_waiters(v), v->ctrl_head ? ", control packets queued" : "");
	log_debug("vsock: rx ring %s", rx);
	log_debug("vsock: tx ring %s", tx);
	for (struct conn *c = v->all; c; c = c->all_next)
		log_debug("vsock: host %u guest %u state %d events %#x%s%s pending %#x credit %u (alloc %u tx %u fwd %u) "
			  "buffered %zu rx %u fwd %u sent %u%s%s",
			  c->local_port, c->peer_port, c->state, c->registered ? c->w.events : 0, c->rx_wait ? " rx-wait" : "",
			  c->in_ctrl ? " ctrl" : "", c->pending, peer_credit(c), c->peer_buf_alloc, c->tx_cnt, c->peer_fwd_cnt,
			  c->pend_len, c->rx_cnt, c->fwd_cnt, c->last_fwd_sent, c->host_eof ? " host-eof" : "",
			  c->guest_shut_send ? " guest-shut" : "");
}

void vsock_free(struct vsock *v)
{
	if (!v)
		return;
	pthread_mutex_lock(v->lock);
	if (log_enabled(LOG_DEBUG))
		dump(v);
	drop_all(v, false);
	pthread_mutex_unlock(v->lock);
	reap(v);
	while (v->entries) {
		struct entry *e = v->entries;
		v->entries = e->next;
		close_listener(v, e);
		free(e);
	}
	if (v->has_mux)
		close_listener(v, &v->mux);
	if (v->timer_fd >= 0) {
		ev_del(v->ev, &v->timer_w);
		close(v->timer_fd);
	}
	/* the round-end hook stays registered: the loop is over by now */
	free(v);
}
