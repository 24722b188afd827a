/* Network backends: where a virtio-net NIC's frames go. Each is one file:
 *   fdnet.c  one Ethernet frame per read/write on a file descriptor: a unix
 *            datagram socket (gvproxy's vfkit protocol, spec 6.1), an
 *            inherited connected datagram socket (fd=), or a tap device
 *   stream.c a unix stream socket with QEMU's length-prefixed framing
 *            (type=unixstream: passt, gvproxy -listen-qemu), by path or fd=
 *   slirp.c  the built-in user-mode NAT (libslirp), with host port forwards
 * The device hands frames to send(); a backend hands received frames to
 * the device's deliver callback. Everything runs on the I/O thread. */
#ifndef KVKIT_NET_H
#define KVKIT_NET_H
#include <kvkit/config.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct eventloop;
struct net_backend;

#define NET_MAX_FRAME 65550 /* largest frame either side may carry */
#define NET_VNET_HDR_LEN 12 /* struct virtio_net_hdr_v1, on vnet_hdr backends */
#define NET_MAX_IOV 1024    /* send() gets at most this many pieces (a virtqueue's size) */

struct net_backend_ops {
	const char *name;
	/* Send one frame (after its virtio header when vnet_hdr). 0 = sent (or dropped and
	 * counted), -EAGAIN = the peer is full: the device waits for
	 * writable(). */
	int (*send)(struct net_backend *b, const struct iovec *iov, int n);
	/* The device has receive buffers again after deliver() said -ENOSPC. */
	void (*rx_resume)(struct net_backend *b);
	/* vnet_hdr backends: which offloads the guest accepts in frames it
	 * receives (it negotiated GUEST_CSUM/TSO4/TSO6/ECN) */
	void (*set_offload)(struct net_backend *b, bool csum, bool tso4, bool tso6, bool ecn);
	/* a queue of a multiqueue tap: let the kernel put received frames on
	 * it and read them (on), or neither (off); the backend's own thread */
	int (*queue_enable)(struct net_backend *b, bool on);
	void (*close)(struct net_backend *b);
};

struct net_backend {
	const struct net_backend_ops *ops;
	/* set by the device: a received frame; 0 = taken, -ENOSPC = no guest
	 * buffer now (the backend holds it or drops it) */
	int (*deliver)(void *dev, const uint8_t *frame, size_t len);
	/* set by the device: the peer can take frames again */
	void (*writable)(void *dev);
	/* set by the device: the peer is gone for good (the guest sees the
	 * carrier go off) */
	void (*link_down)(void *dev);
	void *dev;
	uint64_t rx_dropped, tx_dropped;
	/* frames both ways start with a virtio_net_hdr_v1 (tap with
	 * IFF_VNET_HDR): checksum and segmentation offloads pass through */
	bool vnet_hdr;
};

/* Open the backend a kv_net describes (unixgram/unixstream/fd/tap/nat). The
 * configuration has been checked already; errors are one line in err. */
int net_backend_open(const struct kv_net *cfg, struct eventloop *ev, struct net_backend **out, char *err,
		     size_t errlen);
/* Checks before anything is created: socket path lengths, fd= type. */
int net_fd_check(const struct kv_net *cfg, char *err, size_t errlen);
/* Multiqueue tap: open up to want queues of tap ifname into fds (one, with
 * a log line, when the tap was made without multi_queue); returns how
 * many, or -1 with err. */
int net_tap_open_queues(const char *ifname, unsigned want, int *fds, char *err, size_t errlen);
/* A backend on one of those fds, served by ev's thread; it closes the fd
 * at close (on failure the fd stays the caller's). */
int net_tap_backend(int fd, const char *ifname, unsigned queue, struct eventloop *ev, struct net_backend **out,
		    char *err, size_t errlen);
int net_fd_open(const struct kv_net *cfg, struct eventloop *ev, struct net_backend **out, char *err, size_t errlen);
int net_stream_open(const struct kv_net *cfg, struct eventloop *ev, struct net_backend **out, char *err,
		    size_t errlen);
int net_stream_check_path(const char *path, char *err, size_t errlen);
/* An inherited fd= must be an open, connected socket of this type. */
int net_check_inherited(int fd, int type, char *err, size_t errlen);
/* Roomy kernel buffers on a backend's socket (a cap is fine). */
void net_set_socket_buffers(int fd);
int net_slirp_open(const struct kv_net *cfg, struct eventloop *ev, struct net_backend **out, char *err,
		   size_t errlen);

#endif
