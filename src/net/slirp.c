/* nat: the built-in user-mode NAT (spec 6.6) through libslirp: DHCP
 * (guest 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3 forwarding to the
 * host's resolver), outbound TCP/UDP/ICMP, the host's loopback through the
 * gateway only with hostLoopback (off by default: a guest could otherwise
 * reach every localhost service, another VM's REST API included), and
 * kvkit's host port forwards (forward=tcp:127.0.0.1:2222:22). libslirp is
 * driven from the I/O thread through a poll hook; it needs no privileges. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../util/log.h"
#include "../vmm/eventloop.h"
#include "net.h"

struct slirp_timer {
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
	struct slirp_timer *next;
};

/* Frames for a guest with no receive buffer right now, in order, bounded:
 * dropping them instead would stall TCP on retransmit timeouts. */
#define BACKLOG_MAX_BYTES (4u << 20)
struct frame {
	struct frame *next;
	size_t len;
	uint8_t data[];
};

struct slirp_backend {
	struct net_backend b;
	struct frame *backlog, **backlog_tail;
	size_t backlog_bytes;
	Slirp *slirp;
	struct eventloop *ev;
	struct ev_poll_hook hook;
	struct slirp_timer *timers;
	struct pollfd *pfd; /* this round's slice, for the callbacks */
	int npfd, maxpfd;
	uint8_t frame[NET_MAX_FRAME];
};

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* ---- callbacks from libslirp ---- */

/* Hand queued frames to the guest while it has room. */
static void flush_backlog(struct slirp_backend *s)
{
	while (s->backlog && s->b.deliver(s->b.dev, s->backlog->data, s->backlog->len) != -ENOSPC) {
		struct frame *f = s->backlog;
		s->backlog = f->next;
		if (!s->backlog)
			s->backlog_tail = &s->backlog;
		s->backlog_bytes -= f->len;
		free(f);
	}
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_backend *s = opaque;
	if (!s->backlog && s->b.deliver(s->b.dev, buf, len) != -ENOSPC)
		return (ssize_t)len;
	struct frame *f = s->backlog_bytes + len <= BACKLOG_MAX_BYTES ? malloc(sizeof(*f) + len) : NULL;
	if (!f) {
		s->b.rx_dropped++; /* the guest is far behind: drop, TCP backs off */
		return (ssize_t)len;
	}
	f->next = NULL;
	f->len = len;
	memcpy(f->data, buf, len);
	*s->backlog_tail = f;
	s->backlog_tail = &f->next;
	s->backlog_bytes += len;
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_debug("nat: guest error: %s", msg);
}

static int64_t cb_clock_ns(void *opaque)
{
	(void)opaque;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct slirp_backend *s = opaque;
	struct slirp_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->id = id;
	t->cb_opaque = cb_opaque;
	t->expire_ms = -1;
	t->next = s->timers;
	s->timers = t;
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirp_backend *s = opaque;
	for (struct slirp_timer **p = &s->timers; *p; p = &(*p)->next)
		if (*p == timer) {
			*p = (*p)->next;
			free(timer);
			return;
		}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct slirp_timer *)timer)->expire_ms = expire_ms;
}

static void cb_poll_fd(int fd, void *opaque) { (void)fd; (void)opaque; }
static void cb_notify(void *opaque) { (void)opaque; }

static const SlirpCb callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_ns,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_poll_fd,
	.unregister_poll_fd = cb_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* ---- the poll hook ---- */

static int add_poll(int fd, int events, void *opaque)
{
	struct slirp_backend *s = opaque;
	if (s->npfd >= s->maxpfd)
		return -1; /* libslirp skips it this round */
	short ev = 0;
	if (events & SLIRP_POLL_IN) ev |= POLLIN;
	if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
	s->pfd[s->npfd] = (struct pollfd){ .fd = fd, .events = ev };
	return s->npfd++;
}

static int get_revents(int idx, void *opaque)
{
	struct slirp_backend *s = opaque;
	if (idx < 0 || idx >= s->npfd)
		return 0;
	short r = s->pfd[idx].revents;
	int out = 0;
	if (r & POLLIN) out |= SLIRP_POLL_IN;
	if (r & POLLOUT) out |= SLIRP_POLL_OUT;
	if (r & POLLPRI) out |= SLIRP_POLL_PRI;
	if (r & POLLERR) out |= SLIRP_POLL_ERR;
	if (r & POLLHUP) out |= SLIRP_POLL_HUP;
	return out;
}

static int hook_fill(void *opaque, struct pollfd *p, int max, int *timeout_ms)
{
	struct slirp_backend *s = opaque;
	uint32_t t = UINT32_MAX;
	s->pfd = p;
	s->npfd = 0;
	s->maxpfd = max;
	slirp_pollfds_fill(s->slirp, &t, add_poll, s);
	int64_t now = now_ms();
	for (struct slirp_timer *tm = s->timers; tm; tm = tm->next)
		if (tm->expire_ms >= 0) {
			int64_t left = tm->expire_ms > now ? tm->expire_ms - now : 0;
			if (left < t)
				t = (uint32_t)left;
		}
	if (t != UINT32_MAX && (*timeout_ms < 0 || (int64_t)t < *timeout_ms))
		*timeout_ms = (int)t;
	return s->npfd;
}

static void hook_dispatch(void *opaque, struct pollfd *p, int n)
{
	struct slirp_backend *s = opaque;
	s->pfd = p;
	s->npfd = n;
	slirp_pollfds_poll(s->slirp, 0, get_revents, s);
	int64_t now = now_ms();
	for (struct slirp_timer *tm = s->timers, *next; tm; tm = next) {
		next = tm->next; /* the handler may free or re-arm timers */
		if (tm->expire_ms >= 0 && tm->expire_ms <= now) {
			tm->expire_ms = -1;
			slirp_handle_timer(s->slirp, tm->id, tm->cb_opaque);
			break; /* the list may have changed: the rest wait a round */
		}
	}
}

/* ---- backend ops ---- */

static int nat_send(struct net_backend *b, const struct iovec *iov, int n)
{
	struct slirp_backend *s = (struct slirp_backend *)b;
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > sizeof(s->frame) - len) {
			b->tx_dropped++;
			return 0;
		}
		memcpy(s->frame + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	slirp_input(s->slirp, s->frame, (int)len);
	return 0;
}

static void nat_rx_resume(struct net_backend *b)
{
	flush_backlog((struct slirp_backend *)b);
}

static void nat_close(struct net_backend *b)
{
	struct slirp_backend *s = (struct slirp_backend *)b;
	ev_del_poll_hook(s->ev, &s->hook);
	slirp_cleanup(s->slirp);
	while (s->timers)
		cb_timer_free(s->timers, s);
	while (s->backlog) {
		struct frame *f = s->backlog;
		s->backlog = f->next;
		free(f);
	}
	free(s);
}

static const struct net_backend_ops nat_ops = {
	.name = "nat", .send = nat_send, .rx_resume = nat_rx_resume, .close = nat_close,
};

/* "tcp:ADDR:HOSTPORT:GUESTPORT" (already validated); empty ADDR = 127.0.0.1 */
static int add_forward(struct slirp_backend *s, const char *spec, char *err, size_t errlen)
{
	char proto[8] = "", addr[64] = "";
	unsigned hp = 0, gp = 0;
	if (sscanf(spec, "%7[^:]:%63[^:]:%u:%u", proto, addr, &hp, &gp) != 4 &&
	    sscanf(spec, "%7[^:]::%u:%u", proto, &hp, &gp) != 3) {
		snprintf(err, errlen, "invalid forward '%s'", spec);
		return -1;
	}
	struct in_addr host, guest;
	inet_pton(AF_INET, *addr ? addr : "127.0.0.1", &host);
	inet_pton(AF_INET, "10.0.2.15", &guest);
	if (slirp_add_hostfwd(s->slirp, !strcmp(proto, "udp"), host, (int)hp, guest, (int)gp) < 0) {
		snprintf(err, errlen, "cannot forward %s: the host port is in use or the address is not local", spec);
		return -1;
	}
	log_info("nat: forwarding %s %s:%u to the guest's port %u", proto, *addr ? addr : "127.0.0.1", hp, gp);
	return 0;
}

int net_slirp_open(const struct kv_net *cfg, struct eventloop *ev, struct net_backend **out, char *err, size_t errlen)
{
	struct slirp_backend *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "virtio-net: out of memory");
		return -1;
	}
	SlirpConfig c = { .version = 4, .in_enabled = true, .vhostname = "kvkit" };
	inet_pton(AF_INET, "10.0.2.0", &c.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &c.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &c.vhost);
	inet_pton(AF_INET, "10.0.2.15", &c.vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &c.vnameserver);
	c.disable_host_loopback = !cfg->host_loopback;
	s->b.ops = &nat_ops;
	s->ev = ev;
	s->backlog_tail = &s->backlog;
	s->slirp = slirp_new(&c, &callbacks, s);
	if (!s->slirp) {
		snprintf(err, errlen, "virtio-net nat: cannot start the user-mode network stack");
		free(s);
		return -1;
	}
	if (cfg->host_loopback)
		log_info("nat: the guest reaches the host's loopback at 10.0.2.2 (hostLoopback)");
	for (size_t i = 0; i < cfg->nforwards; i++)
		if (add_forward(s, cfg->forwards[i], err, errlen) < 0) {
			nat_close(&s->b);
			return -1;
		}
	s->hook = (struct ev_poll_hook){ .fill = hook_fill, .dispatch = hook_dispatch, .opaque = s };
	if (ev_add_poll_hook(ev, &s->hook) < 0) {
		snprintf(err, errlen, "virtio-net nat: too many nat networks");
		slirp_cleanup(s->slirp);
		free(s);
		return -1;
	}
	*out = &s->b;
	return 0;
}
