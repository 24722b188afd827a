/* The host side of virtio-vsock: stream connections between the guest
 * (CID 3) and host unix sockets, kept entirely in kvkit's user space (there
 * is no vhost-vsock here, and vfkit's model is one unix socket per port).
 *
 * The engine speaks the virtio-vsock packet protocol over three virtqueues
 * handed to it by the virtio device (src/virtio/vsock.c). Every host-side
 * end is a non-blocking unix stream socket on the I/O thread's event loop:
 *   listen  guest connects to port N  -> kvkit connect()s to a unix socket
 *   connect host connects to a socket -> kvkit opens guest port N
 *   mux     host connects, writes "CONNECT <port>\n", reads "OK <hostport>\n"
 *           (Firecracker's protocol); guest connects to port N -> PATH_N
 *   service an in-process server (Ignition's HTTP) gets a socketpair end
 * All entry points except vsock_dial_guest() run on the I/O thread with the
 * device lock held; host socket events take that lock themselves. */
#ifndef KVKIT_VSOCK_H
#define KVKIT_VSOCK_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "../virtio/virtq.h"
#include "../vmm/eventloop.h"

#define VSOCK_GUEST_CID 3
#define VSOCK_HOST_CID 2

struct vsock;

struct vsock_hooks {
	/* the driver is ready, the queues enabled and the VM not paused */
	bool (*can_run)(void *opaque);
	/* used entries were pushed on queue q */
	void (*notify)(void *opaque, unsigned q);
	void *opaque;
};

struct vsock_queues {
	struct virtq *rx, *tx, *event;
};

/* lock: the device lock (recursive), taken around host socket events. */
struct vsock *vsock_new(struct eventloop *ev, pthread_mutex_t *lock, const struct vsock_hooks *hooks,
			const struct vsock_queues *q);
/* Entries; each returns 0 or -1 with one line in err. Paths are kept. */
int vsock_add_listen(struct vsock *v, uint32_t port, const char *path, char *err, size_t errlen);
int vsock_add_connect(struct vsock *v, uint32_t port, const char *path, char *err, size_t errlen);
int vsock_add_mux(struct vsock *v, const char *path, char *err, size_t errlen);
/* Guest connections to port get one end of a socketpair through accept(). */
int vsock_add_service(struct vsock *v, uint32_t port, void (*accept)(void *opaque, int fd), void *opaque, char *err,
		      size_t errlen);

/* Queue work (device lock held). */
void vsock_tx_kick(struct vsock *v);    /* the guest sent packets */
void vsock_rx_kick(struct vsock *v);    /* the guest gave receive buffers */
void vsock_event_kick(struct vsock *v); /* the guest gave event buffers */
/* The driver reset the device: every connection is gone. */
void vsock_reset(struct vsock *v);
/* The host lost every connection (restore): reset them all and tell the
 * guest with VIRTIO_VSOCK_EVENT_TRANSPORT_RESET. */
void vsock_transport_reset(struct vsock *v);

/* Any thread: open a stream to guest port; returns a socket whose other
 * end is the connection (EOF if the guest refuses), or -errno. */
int vsock_dial_guest(struct vsock *v, uint32_t port);

/* Close every connection and listener, remove the sockets kvkit created. */
void vsock_free(struct vsock *v);

/* Counters for logs and tests. */
struct vsock_stats {
	unsigned conns;
	uint64_t resets_sent, bad_packets;
};
void vsock_get_stats(struct vsock *v, struct vsock_stats *s);

#endif
