/* Backends with one Ethernet frame per read/write on a file descriptor:
 *   unixgram  gvproxy's vfkit protocol (spec 6.1): a named client socket
 *             next to the server's, connect, "VFKT", then raw frames
 *   fd=N      an inherited, connected SOCK_DGRAM socket, same framing
 *   tap       a Linux tap device (IFF_TAP|IFF_NO_PI), or one queue of a
 *             multiqueue tap (IFF_MULTI_QUEUE: one backend per queue pair)
 * Backpressure both ways: a full peer stalls the guest's transmit queue
 * until the fd is writable; a guest without receive buffers stops us
 * reading (the kernel queue holds the frames, bounded by its buffer). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vmm/eventloop.h"
#include <linux/virtio_net.h> /* struct virtio_net_hdr_v1 */
#include "net.h"

#define RX_BATCH 64

struct fd_backend {
	struct net_backend b;
	int fd;
	struct eventloop *ev;
	struct ev_watch watch;
	bool want_out, rx_paused, held;
	bool is_tap; /* read(), not recv(): a tap fd is no socket */
	size_t held_len;
	bool send_error_logged, recv_error_logged;
	char local_path[108]; /* unixgram: our bound name, removed at close */
	char what[160];       /* for log lines */
	uint8_t buf[NET_VNET_HDR_LEN + NET_MAX_FRAME + 1];
};

static void update_watch(struct fd_backend *f)
{
	ev_mod(f->ev, &f->watch, (f->rx_paused ? 0 : EPOLLIN) | (f->want_out ? EPOLLOUT : 0));
}

/* Hand the held frame to the device; false if it still has no room. */
static bool deliver_held(struct fd_backend *f)
{
	if (f->held && f->b.deliver(f->b.dev, f->buf, f->held_len) == -ENOSPC)
		return false;
	f->held = false;
	return true;
}

static void receive(struct fd_backend *f)
{
	for (int i = 0; i < RX_BATCH; i++) {
		if (!deliver_held(f)) {
			f->rx_paused = true; /* the guest's rx kick resumes us */
			update_watch(f);
			return;
		}
		/* MSG_TRUNC: an oversized datagram reports its real length */
		ssize_t n = f->is_tap ? read(f->fd, f->buf, sizeof(f->buf)) : recv(f->fd, f->buf, sizeof(f->buf), MSG_TRUNC);
		if (n < 0) {
			/* EBADFD: a multiqueue tap's queue just detached */
			if (errno == EAGAIN || errno == EINTR || (f->is_tap && errno == EBADFD))
				return;
			if (!f->recv_error_logged) {
				log_warn("%s: receive failed: %m; frames from it are dropped", f->what);
				f->recv_error_logged = true;
			}
			f->b.rx_dropped++;
			return;
		}
		size_t hdr = f->b.vnet_hdr ? NET_VNET_HDR_LEN : 0;
		if ((size_t)n < hdr + 14 || (size_t)n > hdr + NET_MAX_FRAME) {
			f->b.rx_dropped++; /* runt, or larger than any guest can take */
			continue;
		}
		f->held = true;
		f->held_len = (size_t)n;
	}
	deliver_held(f);
}

static void on_event(void *opaque, uint32_t events)
{
	struct fd_backend *f = opaque;
	if ((events & EPOLLOUT) && f->want_out) {
		f->want_out = false;
		update_watch(f);
		f->b.writable(f->b.dev);
	}
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !f->rx_paused)
		receive(f);
}

static int fd_send(struct net_backend *b, const struct iovec *iov, int n)
{
	struct fd_backend *f = (struct fd_backend *)b;
	for (;;) {
		ssize_t w = writev(f->fd, iov, n);
		if (w >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == ENOBUFS) {
			f->want_out = true;
			update_watch(f);
			return -EAGAIN;
		}
		/* the peer is gone (ECONNREFUSED, ...): drop, say so once, run on */
		if (!f->send_error_logged) {
			log_warn("%s: send failed: %m; frames to it are dropped", f->what);
			f->send_error_logged = true;
		}
		b->tx_dropped++;
		return 0;
	}
}

static void fd_rx_resume(struct net_backend *b)
{
	struct fd_backend *f = (struct fd_backend *)b;
	if (!f->rx_paused || !deliver_held(f))
		return;
	f->rx_paused = false;
	update_watch(f);
	receive(f);
}

static void fd_close(struct net_backend *b)
{
	struct fd_backend *f = (struct fd_backend *)b;
	if (f->fd >= 0) {
		ev_del(f->ev, &f->watch);
		close(f->fd);
	}
	if (*f->local_path)
		unlink(f->local_path);
	free(f);
}

/* Tell the tap which offloads the guest takes in received frames; the
 * kernel finishes checksums and segments for whatever it does not. */
static void tap_set_offload(struct net_backend *b, bool csum, bool tso4, bool tso6, bool ecn)
{
	struct fd_backend *f = (struct fd_backend *)b;
	unsigned flags = 0;
	if (csum) {
		flags |= TUN_F_CSUM;
		if (tso4)
			flags |= TUN_F_TSO4;
		if (tso6)
			flags |= TUN_F_TSO6;
		if ((tso4 || tso6) && ecn)
			flags |= TUN_F_TSO_ECN;
	}
	if (ioctl(f->fd, TUNSETOFFLOAD, flags) < 0)
		log_warn("%s: cannot set offloads %#x: %m", f->what, flags);
}

/* A detached queue reads nothing and polls as an error, so it leaves the
 * event loop too; what it held for the guest is dropped. */
static int tap_queue_enable(struct net_backend *b, bool on)
{
	struct fd_backend *f = (struct fd_backend *)b;
	struct ifreq ifr = { .ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE };
	if (ioctl(f->fd, TUNSETQUEUE, &ifr) < 0)
		return -errno;
	if (!on) {
		ev_del(f->ev, &f->watch);
		if (f->held)
			f->b.rx_dropped++;
		f->held = false;
		return 0;
	}
	f->rx_paused = f->want_out = false;
	f->watch.events = EPOLLIN;
	return ev_add(f->ev, &f->watch);
}

static const struct net_backend_ops fd_ops = {
	.name = "fd", .send = fd_send, .rx_resume = fd_rx_resume, .close = fd_close,
};
static const struct net_backend_ops tap_ops = {
	.name = "tap", .send = fd_send, .rx_resume = fd_rx_resume, .set_offload = tap_set_offload, .close = fd_close,
	.queue_enable = tap_queue_enable,
};


/* Our client name next to the server's: vfkit-<pid hex>-<rnd hex>.sock */
static int local_name(const char *server, uint16_t rnd, char *local, size_t len)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", server);
	return snprintf(local, len, "%s/vfkit-%x-%x.sock", dirname(dir), (unsigned)getpid(), rnd);
}

int net_fd_check(const struct kv_net *cfg, char *err, size_t errlen)
{
	if (cfg->fd >= 0)
		return net_check_inherited(cfg->fd, cfg->stream ? SOCK_STREAM : SOCK_DGRAM, err, errlen);
	if (!cfg->unix_path)
		return 0;
	if (cfg->stream)
		return net_stream_check_path(cfg->unix_path, err, errlen);
	size_t sl = strlen(cfg->unix_path);
	char local[4200];
	int ll = local_name(cfg->unix_path, 0xffff, local, sizeof(local));
	if (sl > 107) {
		snprintf(err, errlen, "unixgram path '%s' is too long: %zu >= 108 bytes", cfg->unix_path, sl);
		return -1;
	}
	if (ll >= 108) {
		snprintf(err, errlen, "unixgram path '%s' is too long: %d >= 108 bytes", local, ll);
		return -1;
	}
	return 0;
}

static int open_unixgram(struct fd_backend *f, const struct kv_net *cfg, char *err, size_t errlen)
{
	const char *server = cfg->unix_path;
	if (net_fd_check(cfg, err, errlen) < 0)
		return -1;
	uint16_t rnd;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint16_t)getpid();
	char local[4200];
	int ll = local_name(server, rnd, local, sizeof(local));
	/* reserve the name, then bind it: a stale file of ours is never reused */
	int rfd = open(local, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (rfd < 0) {
		snprintf(err, errlen, "cannot create unixgram client socket %s: %s", local, strerror(errno));
		return -1;
	}
	close(rfd);
	unlink(local);
	f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un la = { .sun_family = AF_UNIX }, ra = { .sun_family = AF_UNIX };
	memcpy(la.sun_path, local, ll + 1);
	memcpy(ra.sun_path, server, strlen(server) + 1);
	if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&la, sizeof(la)) < 0) {
		snprintf(err, errlen, "cannot bind unixgram client socket %s: %s", local, strerror(errno));
		return -1;
	}
	memcpy(f->local_path, local, ll + 1);
	if (connect(f->fd, (struct sockaddr *)&ra, sizeof(ra)) < 0) {
		snprintf(err, errlen, "cannot connect to unixgram socket %s: %s", server, strerror(errno));
		return -1;
	}
	net_set_socket_buffers(f->fd);
	log_info("Using unix socket %s", server);
	log_info("local: %s remote: %s", local, server);
	if (cfg->vfkit_magic) {
		if (send(f->fd, "VFKT", 4, 0) != 4) {
			snprintf(err, errlen, "cannot send the VFKT hello to %s: %s", server, strerror(errno));
			return -1;
		}
		log_debug("sent vfkit magic packet (VFKT)");
	}
	snprintf(f->what, sizeof(f->what), "virtio-net unixgram %s", server);
	return 0;
}


static int open_inherited(struct fd_backend *f, int fd, char *err, size_t errlen)
{
	if (net_check_inherited(fd, SOCK_DGRAM, err, errlen) < 0)
		return -1;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	f->fd = fd;
	snprintf(f->what, sizeof(f->what), "virtio-net fd=%d", fd);
	return 0;
}

/* One queue of tap ifname: a new fd; multi asks for IFF_MULTI_QUEUE (every
 * queue of a multiqueue tap is opened with it). */
static int tap_queue_fd(const char *ifname, bool multi)
{
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* IFF_VNET_HDR: every frame carries the virtio-net header, so the
	 * guest's checksum and TSO offloads reach the host stack untouched */
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0) };
	int hdr_sz = sizeof(struct virtio_net_hdr_v1);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr_sz) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int net_tap_open_queues(const char *ifname, unsigned want, int *fds, char *err, size_t errlen)
{
	int fd = tap_queue_fd(ifname, want > 1);
	if (fd == -EINVAL && want > 1) {
		/* a tap made without multi_queue takes one queue only */
		fd = tap_queue_fd(ifname, false);
		if (fd >= 0)
			log_info("virtio-net tap %s: one queue pair (the tap was made without multi_queue: "
				 "ip tuntap add dev %s mode tap multi_queue)",
				 ifname, ifname);
		want = 1;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot open tap device %s: %s", ifname,
			 fd == -ENOENT ? "/dev/net/tun: No such file or directory" : strerror(-fd));
		return -1;
	}
	unsigned n = 0;
	fds[n++] = fd;
	while (n < want) {
		if ((fd = tap_queue_fd(ifname, true)) < 0) {
			log_warn("virtio-net tap %s: cannot open queue %u: %s; %u queue pairs", ifname, n, strerror(-fd), n);
			break;
		}
		fds[n++] = fd;
	}
	return (int)n;
}

static void as_tap(struct fd_backend *f, int fd, const char *ifname, unsigned queue)
{
	f->fd = fd;
	f->b.vnet_hdr = true;
	f->b.ops = &tap_ops;
	if (queue)
		snprintf(f->what, sizeof(f->what), "virtio-net tap %s queue %u", ifname, queue);
	else
		snprintf(f->what, sizeof(f->what), "virtio-net tap %s", ifname);
	f->is_tap = true;
}

static int open_tap(struct fd_backend *f, const char *ifname, char *err, size_t errlen)
{
	int fd;
	if (net_tap_open_queues(ifname, 1, &fd, err, errlen) < 0)
		return -1;
	as_tap(f, fd, ifname, 0);
	return 0;
}

static int watch(struct fd_backend *f, struct eventloop *ev, char *err, size_t errlen)
{
	f->ev = ev;
	f->watch = (struct ev_watch){ .fd = f->fd, .events = EPOLLIN, .fn = on_event, .opaque = f };
	if (ev_add(ev, &f->watch) < 0) {
		snprintf(err, errlen, "%s: cannot watch it: %s", f->what, strerror(errno));
		return -1;
	}
	return 0;
}

int net_tap_backend(int fd, const char *ifname, unsigned queue, struct eventloop *ev, struct net_backend **out,
		    char *err, size_t errlen)
{
	struct fd_backend *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "virtio-net: out of memory");
		return -1;
	}
	as_tap(f, fd, ifname, queue);
	if (watch(f, ev, err, errlen) < 0) {
		free(f);
		return -1;
	}
	*out = &f->b;
	return 0;
}

int net_fd_open(const struct kv_net *cfg, struct eventloop *ev, struct net_backend **out, char *err, size_t errlen)
{
	struct fd_backend *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "virtio-net: out of memory");
		return -1;
	}
	f->fd = -1;
	f->b.ops = &fd_ops;
	int r = cfg->tap ? open_tap(f, cfg->tap, err, errlen)
		: cfg->fd >= 0 ? open_inherited(f, cfg->fd, err, errlen)
			       : open_unixgram(f, cfg, err, errlen);
	if (r == 0)
		r = watch(f, ev, err, errlen);
	if (r < 0) {
		if (cfg->fd >= 0 && f->fd == cfg->fd)
			f->fd = -1; /* an inherited fd stays open on error: not ours to close yet */
		if (f->fd >= 0)
			close(f->fd);
		if (*f->local_path)
			unlink(f->local_path);
		free(f);
		return -1;
	}
	*out = &f->b;
	return 0;
}
