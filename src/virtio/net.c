/* virtio-net (1af4:1041): receive and transmit queue pairs, mergeable
 * receive buffers (frames up to 64 KiB, so an MTU of 4000 or more works),
 * link status, a MAC. Checksum and segmentation offloads are offered only
 * over backends that carry the virtio-net header (tap, unless
 * offloading=off): gvproxy and libslirp expect complete, checksummed
 * frames, so those NICs get none. Backends live in src/net/.
 *
 * One pair is served by the I/O thread under the device lock. A tap with
 * more than one vCPU gets a pair per vCPU (VIRTIO_NET_F_MQ, at most
 * NET_MAX_PAIRS), each with a queue of the tap (IFF_MULTI_QUEUE), its own
 * thread and event loop and its own lock: flows the tap spreads over its
 * queues use as many host cores. The control queue (pair 0's thread) takes
 * the number of pairs the driver uses; the others' tap queues are detached
 * so the kernel puts no frame where nobody reads. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>
#include "../net/net.h"
#include "../sandbox/sandbox.h"
#include "../util/bytes.h"
#include "../util/log.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "devices.h"
#include "net_frames.h"
#include "virtio_pci.h"
#include <linux/virtio_net.h>
#include <stddef.h>

extern const struct device_type virtio_net_device;

#define NET_QUEUE_SIZE 256
#define NET_MAX_PAIRS 8
#define F(bit) VIRTIO_BIT(VIRTIO_NET_F_##bit)
#define NET_OFFLOADS                                                                                              \
	(F(CSUM) | F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) | F(HOST_TSO4) | F(HOST_TSO6) |     \
	 F(HOST_ECN))
/* the config as far as max_virtqueue_pairs (no MTU, speed or RSS fields) */
#define NET_CONFIG_SIZE offsetof(struct virtio_net_config, mtu)

struct net_dev;

/* One receive queue (2i) and transmit queue (2i+1) with their backend. */
struct net_pair {
	struct net_dev *n;
	unsigned index, rxq, txq;
	struct net_backend *be;
	/* the device lock with one pair; the pair's own with several (the
	 * device lock is then taken only for config and control, never while
	 * a pair's is held) */
	pthread_mutex_t *lock;
	pthread_mutex_t own_lock;
	struct virtq_elem rx_elem, tx_elem;
	bool tx_waiting; /* the backend is full: tx_elem is still to send */
	bool rx_starved; /* a frame found no buffer: tell the backend when some come */
	uint64_t rx_frames, tx_frames;
	/* multiqueue: the pair's thread, its event loop and what it watches */
	int tap_fd;
	pthread_t thread;
	bool started, quitting;
	bool attached; /* its tap queue gets frames: the thread's own view */
	struct eventloop ev;
	int wake_efd; /* quit, or attach or detach the tap queue */
	struct ev_watch wake, kick[3]; /* rx, tx, and the control queue on pair 0 */
	struct iovec tx_iov[VIRTQ_MAX_SIZE];
};

struct net_dev {
	struct virtio_dev dev;
	struct virtio_ops ops; /* net_ops, plus offloads and multiqueue as the backend allows */
	uint8_t mac[6];
	bool link_up; /* until the backend's peer goes away */
	unsigned npairs;
	unsigned active; /* pairs the driver uses (VQ_PAIRS_SET); 1 until it says */
	bool on_bus;     /* virtio_dev_init() put it on the PCI bus */
	char *tap;       /* multiqueue: the tap's name, for log lines */
	struct net_pair pairs[];
};

static bool multiqueue(const struct net_dev *n)
{
	return n->npairs > 1;
}

/* ---------------- receive: backend -> guest ---------------- */

/* A frame from the backend into the guest's receive buffers, published
 * together. -ENOSPC (nothing consumed) when the guest has too few. */
static int deliver(void *opaque, const uint8_t *frame, size_t len)
{
	struct net_pair *p = opaque;
	struct net_dev *n = p->n;
	struct virtio_dev *d = &n->dev;
	struct vring_used_elem used[NET_RX_MAX_BUFS];
	unsigned nused;
	int rc = 0;
	struct virtio_net_hdr_v1 hdr_buf, *hdr = NULL;
	if (p->be->vnet_hdr) { /* the backend's header leads the frame */
		if (len < NET_VNET_HDR_LEN)
			return 0;
		memcpy(&hdr_buf, frame, NET_VNET_HDR_LEN);
		hdr = &hdr_buf;
		frame += NET_VNET_HDR_LEN;
		len -= NET_VNET_HDR_LEN;
	}

	pthread_mutex_lock(p->lock);
	if (!virtio_driver_ok(d) || !d->q[p->rxq].enabled || virtio_dev_paused(d) || p->index >= n->active) {
		p->be->rx_dropped++; /* no driver: the frame is lost, as on a real NIC */
	} else if (net_rx_place(&d->q[p->rxq].vq, &p->rx_elem, hdr, frame, len, used, &nused) < 0) {
		p->rx_starved = true;
		rc = -ENOSPC;
	} else {
		virtq_push_n(&d->q[p->rxq].vq, used, nused);
		virtio_notify(d, p->rxq);
		p->rx_frames++;
	}
	pthread_mutex_unlock(p->lock);
	return rc;
}

/* ---------------- transmit: guest -> backend ---------------- */

/* The pair's lock held. */
static void tx_run(struct net_pair *p)
{
	struct virtio_dev *d = &p->n->dev;
	struct virtq *vq = &d->q[p->txq].vq;
	bool any = false;
	if (!d->q[p->txq].enabled || !virtio_driver_ok(d) || virtio_dev_paused(d))
		return;
	for (;;) {
		if (!p->tx_waiting && virtq_pop(vq, &p->tx_elem) <= 0)
			break;
		p->tx_waiting = false;
		struct virtq_elem *e = &p->tx_elem;
		int niov = net_tx_frame(e, p->tx_iov, NET_MAX_FRAME, p->be->vnet_hdr);
		if (niov < 0) {
			p->be->tx_dropped++; /* not an Ethernet frame */
		} else if (p->be->ops->send(p->be, p->tx_iov, niov) == -EAGAIN) {
			p->tx_waiting = true; /* resumed by writable() */
			break;
		} else {
			p->tx_frames++;
		}
		virtq_push(vq, e->head, 0);
		any = true;
	}
	if (any)
		virtio_notify(d, p->txq);
}

static void writable(void *opaque)
{
	struct net_pair *p = opaque;
	pthread_mutex_lock(p->lock);
	tx_run(p);
	pthread_mutex_unlock(p->lock);
}

/* The guest gave receive buffers back (the pair's lock held): the backend
 * may hand over what it held; it calls deliver(), which takes the lock
 * itself, so the lock is let go around it. */
static void rx_refilled(struct net_pair *p)
{
	if (!p->rx_starved || virtio_dev_paused(&p->n->dev))
		return;
	p->rx_starved = false;
	pthread_mutex_unlock(p->lock);
	p->be->ops->rx_resume(p->be);
	pthread_mutex_lock(p->lock);
}

/* The backend's peer is gone: carrier off, and the guest is told. */
static void link_down(void *opaque)
{
	struct net_pair *p = opaque;
	struct net_dev *n = p->n;
	struct virtio_dev *d = &n->dev;
	pthread_mutex_lock(&d->lock);
	n->link_up = false;
	wr16(d->config + offsetof(struct virtio_net_config, status), 0);
	if (virtio_driver_ok(d))
		virtio_config_changed(d);
	pthread_mutex_unlock(&d->lock);
}

/* One pair: the I/O thread, device lock held (it is the pair's). */
static void net_notify(struct virtio_dev *d, unsigned q)
{
	struct net_pair *p = &((struct net_dev *)d->priv)->pairs[0];
	if (q == p->txq)
		tx_run(p);
	else
		rx_refilled(p);
}

static void wake(struct net_pair *p)
{
	uint64_t one = 1;
	if (p->wake_efd >= 0 && write(p->wake_efd, &one, sizeof(one)) < 0)
		log_debug("virtio-net: queue pair %u: wake eventfd: %m", p->index);
}

/* Use pairs [0, active) from now on. Each pair's thread then attaches or
 * detaches its tap queue itself (pair_wake()), so the kernel puts received
 * frames only where the guest reads. The device lock held, and every
 * pair's (pairs_lock()). */
static void set_active(struct net_dev *n, unsigned active)
{
	n->active = active;
	for (unsigned i = 1; i < n->npairs; i++)
		wake(&n->pairs[i]);
}

static void pairs_lock(struct net_dev *n, bool lock)
{
	for (unsigned i = 0; multiqueue(n) && i < n->npairs; i++)
		(lock ? pthread_mutex_lock : pthread_mutex_unlock)(&n->pairs[i].own_lock);
}

/* Around a reset (device lock held): no pair thread is in its rings while
 * the core clears them. */
static void net_quiesce(struct virtio_dev *d, bool stop)
{
	pairs_lock(d->priv, stop);
}

static void net_reset(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;
	for (unsigned i = 0; i < n->npairs; i++)
		n->pairs[i].tx_waiting = false;
	/* a new driver starts on the first pair (virtio 1.2, 5.1.6.5.5) */
	if (multiqueue(n))
		set_active(n, 1);
	struct virtio_net_config c = { .status = htole16(n->link_up ? VIRTIO_NET_S_LINK_UP : 0),
				       .max_virtqueue_pairs = htole16((uint16_t)n->npairs) };
	memcpy(c.mac, n->mac, 6);
	memcpy(d->config, &c, NET_CONFIG_SIZE);
}

/* The control queue (pair 0's thread, device lock held): the number of
 * pairs is the one command; anything else is refused (no other control
 * feature is offered). */
static void serve_control(struct net_dev *n)
{
	struct virtio_dev *d = &n->dev;
	unsigned cq = 2 * n->npairs;
	struct virtq_elem e;
	bool any = false;
	while (virtq_pop(&d->q[cq].vq, &e) > 0) {
		uint32_t written;
		unsigned pairs = net_ctrl_command(&e, n->npairs, d->driver_features & F(MQ), &written);
		if (pairs) {
			pairs_lock(n, true);
			set_active(n, pairs);
			pairs_lock(n, false);
			log_debug("virtio-net tap %s: the driver uses %u of %u queue pairs", n->tap, pairs, n->npairs);
		}
		virtq_push(&d->q[cq].vq, e.head, written);
		any = true;
	}
	if (any)
		virtio_notify(d, cq);
}

/* ---------------- multiqueue: a thread per pair ---------------- */

/* A kick's eventfd read; false when the VM is paused (kicked again at
 * resume). */
static bool take_kick(struct net_pair *p, int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("virtio-net: queue pair %u: notify eventfd: %m", p->index);
	return !virtio_dev_paused(&p->n->dev);
}

/* The guest posted receive buffers: the pair's lock only. */
static void rx_kick(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	(void)events;
	if (!take_kick(p, p->kick[0].fd))
		return;
	pthread_mutex_lock(p->lock);
	if (virtio_driver_ok(&p->n->dev) && p->index < p->n->active)
		rx_refilled(p);
	pthread_mutex_unlock(p->lock);
}

/* The guest queued frames to send: the pair's lock only. */
static void tx_kick(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	(void)events;
	if (!take_kick(p, p->kick[1].fd))
		return;
	pthread_mutex_lock(p->lock);
	if (p->index < p->n->active)
		tx_run(p);
	pthread_mutex_unlock(p->lock);
}

/* A control command (pair 0's thread): under the device lock. */
static void control_kick(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	struct virtio_dev *d = &p->n->dev;
	(void)events;
	if (!take_kick(p, p->kick[2].fd))
		return;
	pthread_mutex_lock(&d->lock);
	if (virtio_driver_ok(d) && d->q[2 * p->n->npairs].enabled)
		serve_control(p->n);
	pthread_mutex_unlock(&d->lock);
}

/* Quit, or follow the number of pairs the driver uses. */
static void pair_wake(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	uint64_t v;
	(void)events;
	if (read(p->wake_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("virtio-net: queue pair %u: wake eventfd: %m", p->index);
	pthread_mutex_lock(p->lock);
	bool want = p->index < p->n->active;
	if (p->quitting) {
		p->ev.quit = true;
	} else if (want != p->attached) {
		int r = p->be->ops->queue_enable(p->be, want);
		if (r < 0)
			log_warn("virtio-net tap %s: cannot %s queue %u: %s", p->n->tap, want ? "attach" : "detach",
				 p->index, strerror(-r));
		else
			p->attached = want;
	}
	pthread_mutex_unlock(p->lock);
}

static void pair_sandbox(void *opaque)
{
	(void)opaque;
	sandbox_thread(SANDBOX_IO);
}

static void *pair_main(void *arg)
{
	struct net_pair *p = arg;
	char name[16];
	snprintf(name, sizeof(name), "virtio-net-%u", p->index);
	pthread_setname_np(pthread_self(), name);
	sandbox_thread(SANDBOX_IO);
	ev_run(&p->ev);
	return NULL;
}

/* The pair's loop watches its two queues' kicks (and pair 0 the control
 * queue's), a quit eventfd and, since its backend opened on it, its tap
 * queue; then its thread starts. */
static int pair_start(struct net_pair *p)
{
	struct virtio_dev *d = &p->n->dev;
	unsigned qs[3] = { p->rxq, p->txq, 2 * p->n->npairs };
	const ev_handler fn[3] = { rx_kick, tx_kick, control_kick };
	for (unsigned i = 0; i < 3; i++) {
		p->kick[i] = (struct ev_watch){ .fd = -1 };
		if (i == 2 && p->index != 0)
			continue;
		p->kick[i] = (struct ev_watch){ .fd = d->q[qs[i]].notify_efd, .events = EPOLLIN, .fn = fn[i], .opaque = p };
		int r = ev_add(&p->ev, &p->kick[i]);
		if (r < 0)
			return r;
	}
	p->wake = (struct ev_watch){ .fd = p->wake_efd, .events = EPOLLIN, .fn = pair_wake, .opaque = p };
	int r = ev_add(&p->ev, &p->wake);
	if (r < 0 || (r = ev_add_round_end(&p->ev, pair_sandbox, p)) < 0)
		return r;
	if (pthread_create(&p->thread, NULL, pair_main, p) != 0)
		return -EAGAIN;
	p->started = true;
	return 0;
}

static void pair_stop(struct net_pair *p)
{
	if (!p->started)
		return;
	pthread_mutex_lock(p->lock);
	p->quitting = true;
	pthread_mutex_unlock(p->lock);
	wake(p);
	pthread_join(p->thread, NULL);
	p->started = false;
}

/* The guest is ready: tell a vnet_hdr backend which offloads it takes
 * (one queue of a tap sets them for all). */
static void net_driver_ok(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;
	struct net_backend *be = n->pairs[0].be;
	uint64_t f = d->driver_features;
	if (be->ops->set_offload)
		be->ops->set_offload(be, f & F(GUEST_CSUM), f & F(GUEST_TSO4), f & F(GUEST_TSO6), f & F(GUEST_ECN));
}

static const struct virtio_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.class_code = 0x020000,
	.num_queues = 2,
	.queue_max = NET_QUEUE_SIZE,
	.features = F(MAC) | F(MRG_RXBUF) | F(STATUS),
	.config_size = NET_CONFIG_SIZE,
	.queue_notify = net_notify,
	.driver_ok = net_driver_ok,
	.reset = net_reset,
	.quiesce = net_quiesce,
};

static int nic_check(const struct kv_config *c, size_t i, char *err, size_t errlen)
{
	return net_fd_check(&c->devices[i].u.net, err, errlen);
}

static struct net_dev *nic_alloc(struct kv_net *cfg, unsigned npairs)
{
	struct net_dev *n = calloc(1, sizeof(*n) + npairs * sizeof(n->pairs[0]));
	if (!n)
		return NULL;
	if (!cfg->has_mac) {
		/* random, locally administered, unicast; shown in /vm/inspect */
		if (getrandom(cfg->mac, 6, 0) != 6)
			memset(cfg->mac, 0x42, 6);
		cfg->mac[0] = (cfg->mac[0] & 0xfc) | 0x02;
		cfg->has_mac = true;
	}
	memcpy(n->mac, cfg->mac, 6);
	n->npairs = npairs;
	n->active = 1;
	n->link_up = true;
	n->ops = net_ops;
	for (unsigned i = 0; i < npairs; i++) {
		struct net_pair *p = &n->pairs[i];
		*p = (struct net_pair){ .n = n, .index = i, .rxq = 2 * i, .txq = 2 * i + 1, .tap_fd = -1, .wake_efd = -1,
					.attached = true,
					.ev = { .epfd = -1 } };
		p->lock = npairs > 1 ? &p->own_lock : &n->dev.lock;
		pthread_mutex_init(&p->own_lock, NULL);
	}
	return n;
}

static void pair_attach(struct net_pair *p, struct net_backend *be)
{
	p->be = be;
	be->deliver = deliver;
	be->writable = writable;
	be->link_down = link_down;
	be->dev = p;
}

/* Every pair has its backend: the device goes on the bus, and with
 * several pairs their threads start. */
static int nic_init(struct vm *vm, struct net_dev *n, const struct kv_net *cfg, char *err, size_t errlen)
{
	if (n->pairs[0].be->vnet_hdr && cfg->offloading != KV_NET_OFFLOAD_OFF) /* a tap, unless offloading=off */
		n->ops.features |= NET_OFFLOADS;
	if (multiqueue(n)) {
		n->ops.features |= F(MQ) | F(CTRL_VQ);
		n->ops.num_queues = 2 * n->npairs + 1;
		n->ops.own_notify = true; /* the pairs' threads wait on the kicks */
	}
	int rc = virtio_dev_init(&n->dev, vm, &n->ops, n);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-net: cannot create device: %s", strerror(-rc));
		return rc;
	}
	n->on_bus = true;
	for (unsigned i = 0; multiqueue(n) && i < n->npairs; i++)
		if ((rc = pair_start(&n->pairs[i])) < 0) {
			snprintf(err, errlen, "virtio-net tap %s: cannot start queue pair %u: %s", n->tap, i, strerror(-rc));
			return rc;
		}
	return device_add(vm, &virtio_net_device, &n->dev, err, errlen);
}

/* Stop the pairs' threads, close the backends (or the tap queues not yet
 * given one), free the device; one that made it onto the PCI bus is left
 * there (a start that failed after that point ends kvkit, and the bus
 * still points at it). */
static void nic_free(struct net_dev *n)
{
	for (unsigned i = 0; i < n->npairs; i++)
		pair_stop(&n->pairs[i]);
	for (unsigned i = 0; i < n->npairs; i++) {
		struct net_pair *p = &n->pairs[i];
		if (p->be)
			p->be->ops->close(p->be);
		else if (p->tap_fd >= 0)
			close(p->tap_fd);
		if (p->wake_efd >= 0)
			close(p->wake_efd);
		if (p->ev.epfd >= 0)
			close(p->ev.epfd);
		p->be = NULL, p->tap_fd = p->wake_efd = p->ev.epfd = -1;
	}
	if (n->on_bus)
		return;
	for (unsigned i = 0; i < n->npairs; i++)
		pthread_mutex_destroy(&n->pairs[i].own_lock);
	free(n->tap);
	free(n);
}

/* A tap with several vCPUs: a queue of the tap per pair, one pair per
 * vCPU, each on its own loop; a tap of one queue gets the I/O thread's. */
static struct net_dev *nic_open_multiqueue(struct kv_net *k, unsigned want, struct eventloop *io, char *err,
					   size_t errlen)
{
	int fds[NET_MAX_PAIRS];
	int got = net_tap_open_queues(k->tap, want, fds, err, errlen);
	if (got < 0)
		return NULL;
	struct net_dev *n = nic_alloc(k, (unsigned)got);
	if (n)
		n->tap = strdup(k->tap);
	for (int i = 0; i < got; i++)
		if (n)
			n->pairs[i].tap_fd = fds[i];
		else
			close(fds[i]);
	if (!n || !n->tap) {
		snprintf(err, errlen, "virtio-net: out of memory");
		if (n)
			nic_free(n);
		return NULL;
	}
	for (int i = 0; i < got; i++) {
		struct net_pair *p = &n->pairs[i];
		struct net_backend *be;
		int r = got > 1 ? ev_init(&p->ev) : 0;
		if (r == 0 && got > 1 && (p->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			r = -errno;
		if (r < 0) {
			snprintf(err, errlen, "virtio-net tap %s: queue pair %d: %s", k->tap, i, strerror(-r));
			nic_free(n);
			return NULL;
		}
		if (net_tap_backend(p->tap_fd, k->tap, (unsigned)i, got > 1 ? &p->ev : io, &be, err, errlen) < 0) {
			nic_free(n);
			return NULL;
		}
		pair_attach(p, be);
	}
	if (got > 1)
		log_info("virtio-net tap %s: %d queue pairs, each with its own thread", k->tap, got);
	return n;
}

static int nic_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	struct kv_net *k = &c->devices[i].u.net;
	unsigned want = c->cpus < NET_MAX_PAIRS ? c->cpus : NET_MAX_PAIRS;
	struct net_dev *n;
	if (k->tap && want > 1) {
		if (!(n = nic_open_multiqueue(k, want, &vm->ev, err, errlen)))
			return -1;
	} else {
		struct net_backend *be;
		if (net_backend_open(k, &vm->ev, &be, err, errlen) < 0)
			return -1;
		if (!(n = nic_alloc(k, 1))) {
			be->ops->close(be);
			snprintf(err, errlen, "virtio-net: out of memory");
			return -1;
		}
		pair_attach(&n->pairs[0], be);
	}
	if (nic_init(vm, n, k, err, errlen) < 0) {
		nic_free(n);
		return -1;
	}
	log_info("Adding virtio-net device (nat: %s macAddress: [%02x:%02x:%02x:%02x:%02x:%02x])", k->nat ? "true" : "false",
		 k->mac[0], k->mac[1], k->mac[2], k->mac[3], k->mac[4], k->mac[5]);
	return 0;
}

static void nic_destroy(struct device *d)
{
	struct net_dev *n = virtio_device_model(d);
	uint64_t rxd = 0, txd = 0;
	for (unsigned i = 0; i < n->npairs; i++)
		rxd += n->pairs[i].be->rx_dropped, txd += n->pairs[i].be->tx_dropped;
	if (rxd || txd)
		log_info("virtio-net %02x:%02x:%02x:%02x:%02x:%02x: %llu received and %llu sent frames dropped", n->mac[0],
			 n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5], (unsigned long long)rxd,
			 (unsigned long long)txd);
	for (unsigned i = 0; multiqueue(n) && i < n->npairs; i++)
		log_info("virtio-net tap %s: queue pair %u received %llu and sent %llu frames", n->tap, i,
			 (unsigned long long)n->pairs[i].rx_frames, (unsigned long long)n->pairs[i].tx_frames);
	nic_free(n);
}

const struct device_type virtio_net_device = {
	.kind = KV_DEV_VIRTIO_NET, .check = nic_check, .create = nic_create, .resume = virtio_device_resume,
	.destroy = nic_destroy,
};
