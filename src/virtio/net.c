/* virtio-net (1af4:1041): one receive and one transmit queue, mergeable
 * receive buffers (frames up to 64 KiB, so an MTU of 4000 or more works),
 * link status, a MAC. Checksum and segmentation offloads are offered only
 * over backends that carry the virtio-net header (tap, unless
 * offloading=off): gvproxy and libslirp expect complete, checksummed
 * frames, so those NICs get none. Backends
 * live in src/net/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "../net/net.h"
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

#define RX_Q 0
#define TX_Q 1
#define NET_QUEUE_SIZE 256
#define F(bit) VIRTIO_BIT(VIRTIO_NET_F_##bit)
#define NET_OFFLOADS                                                                                              \
	(F(CSUM) | F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) | F(HOST_TSO4) | F(HOST_TSO6) |     \
	 F(HOST_ECN))
/* the config as far as max_virtqueue_pairs (no MTU, speed or RSS fields) */
#define NET_CONFIG_SIZE offsetof(struct virtio_net_config, mtu)

struct net_dev {
	struct virtio_dev dev;
	struct virtio_ops ops; /* net_ops, plus offloads when the backend takes them */
	struct net_backend *be;
	uint8_t mac[6];
	struct virtq_elem rx_elem, tx_elem;
	bool tx_waiting;      /* the backend is full: tx_elem is still to send */
	bool rx_starved;      /* a frame found no buffer: tell the backend when some come */
	bool link_up;         /* until the backend's peer goes away */
	struct iovec tx_iov[VIRTQ_MAX_SIZE];
};

/* ---------------- receive: backend -> guest ---------------- */

/* A frame from the backend into the guest's receive buffers, published
 * together. -ENOSPC (nothing consumed) when the guest has too few. */
static int deliver(void *opaque, const uint8_t *frame, size_t len)
{
	struct net_dev *n = opaque;
	struct virtio_dev *d = &n->dev;
	struct vring_used_elem used[NET_RX_MAX_BUFS];
	unsigned nused;
	int rc = 0;
	struct virtio_net_hdr_v1 hdr_buf, *hdr = NULL;
	if (n->be->vnet_hdr) { /* the backend's header leads the frame */
		if (len < NET_VNET_HDR_LEN)
			return 0;
		memcpy(&hdr_buf, frame, NET_VNET_HDR_LEN);
		hdr = &hdr_buf;
		frame += NET_VNET_HDR_LEN;
		len -= NET_VNET_HDR_LEN;
	}

	pthread_mutex_lock(&d->lock);
	if (!virtio_driver_ok(d) || !d->q[RX_Q].enabled || virtio_dev_paused(d)) {
		n->be->rx_dropped++; /* no driver: the frame is lost, as on a real NIC */
	} else if (net_rx_place(&d->q[RX_Q].vq, &n->rx_elem, hdr, frame, len, used, &nused) < 0) {
		n->rx_starved = true;
		rc = -ENOSPC;
	} else {
		virtq_push_n(&d->q[RX_Q].vq, used, nused);
		virtio_notify(d, RX_Q);
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* ---------------- transmit: guest -> backend ---------------- */

static void tx_run(struct net_dev *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *vq = &d->q[TX_Q].vq;
	bool any = false;
	if (!d->q[TX_Q].enabled || virtio_dev_paused(d))
		return;
	for (;;) {
		if (!n->tx_waiting && virtq_pop(vq, &n->tx_elem) <= 0)
			break;
		n->tx_waiting = false;
		struct virtq_elem *e = &n->tx_elem;
		int niov = net_tx_frame(e, n->tx_iov, NET_MAX_FRAME, n->be->vnet_hdr);
		if (niov < 0) {
			n->be->tx_dropped++; /* not an Ethernet frame */
		} else if (n->be->ops->send(n->be, n->tx_iov, niov) == -EAGAIN) {
			n->tx_waiting = true; /* resumed by writable() */
			break;
		}
		virtq_push(vq, e->head, 0);
		any = true;
	}
	if (any)
		virtio_notify(d, TX_Q);
}

static void writable(void *opaque)
{
	struct net_dev *n = opaque;
	pthread_mutex_lock(&n->dev.lock);
	tx_run(n);
	pthread_mutex_unlock(&n->dev.lock);
}

/* The backend's peer is gone: carrier off, and the guest is told. */
static void link_down(void *opaque)
{
	struct net_dev *n = opaque;
	struct virtio_dev *d = &n->dev;
	pthread_mutex_lock(&d->lock);
	n->link_up = false;
	wr16(d->config + offsetof(struct virtio_net_config, status), 0);
	if (virtio_driver_ok(d))
		virtio_config_changed(d);
	pthread_mutex_unlock(&d->lock);
}

static void net_notify(struct virtio_dev *d, unsigned q)
{
	struct net_dev *n = d->priv;
	if (q == TX_Q) {
		tx_run(n);
	} else if (n->rx_starved && !virtio_dev_paused(d)) {
		/* buffers came back: the backend may hand us what it held; it
		 * calls deliver(), which takes the lock itself */
		n->rx_starved = false;
		pthread_mutex_unlock(&d->lock);
		n->be->ops->rx_resume(n->be);
		pthread_mutex_lock(&d->lock);
	}
}

static void net_reset(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;
	n->tx_waiting = false;
	struct virtio_net_config c = { .status = htole16(n->link_up ? VIRTIO_NET_S_LINK_UP : 0),
				       .max_virtqueue_pairs = htole16(1) };
	memcpy(c.mac, n->mac, 6);
	memcpy(d->config, &c, NET_CONFIG_SIZE);
}

/* The guest is ready: tell a vnet_hdr backend which offloads it takes. */
static void net_driver_ok(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;
	uint64_t f = d->driver_features;
	if (n->be->ops->set_offload)
		n->be->ops->set_offload(n->be, f & F(GUEST_CSUM), f & F(GUEST_TSO4), f & F(GUEST_TSO6), f & F(GUEST_ECN));
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
};

static int nic_check(const struct kv_config *c, size_t i, char *err, size_t errlen)
{
	return net_fd_check(&c->devices[i].u.net, err, errlen);
}

/* The backend is the device's from here on, even on failure. */
static int nic_init(struct vm *vm, struct kv_net *cfg, struct net_backend *be, char *err, size_t errlen)
{
	struct net_dev *n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(err, errlen, "virtio-net: out of memory");
		return -ENOMEM;
	}
	if (!cfg->has_mac) {
		/* random, locally administered, unicast; shown in /vm/inspect */
		if (getrandom(cfg->mac, 6, 0) != 6)
			memset(cfg->mac, 0x42, 6);
		cfg->mac[0] = (cfg->mac[0] & 0xfc) | 0x02;
		cfg->has_mac = true;
	}
	memcpy(n->mac, cfg->mac, 6);
	n->be = be;
	be->deliver = deliver;
	be->writable = writable;
	be->link_down = link_down;
	be->dev = n;
	n->link_up = true;
	n->ops = net_ops;
	if (be->vnet_hdr && cfg->offloading != KV_NET_OFFLOAD_OFF) /* a tap, unless offloading=off */
		n->ops.features |= NET_OFFLOADS;
	int rc = virtio_dev_init(&n->dev, vm, &n->ops, n);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-net: cannot create device: %s", strerror(-rc));
		return rc;
	}
	return device_add(vm, &virtio_net_device, &n->dev, err, errlen);
}

static int nic_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	struct kv_net *k = &c->devices[i].u.net;
	struct net_backend *be;
	if (net_backend_open(k, &vm->ev, &be, err, errlen) < 0)
		return -1;
	if (nic_init(vm, k, be, err, errlen) < 0) {
		be->ops->close(be);
		return -1;
	}
	log_info("Adding virtio-net device (nat: %s macAddress: [%02x:%02x:%02x:%02x:%02x:%02x])", k->nat ? "true" : "false",
		 k->mac[0], k->mac[1], k->mac[2], k->mac[3], k->mac[4], k->mac[5]);
	return 0;
}

static void nic_destroy(struct device *d)
{
	struct net_dev *n = virtio_device_model(d);
	if (n->be->rx_dropped || n->be->tx_dropped)
		log_info("virtio-net %02x:%02x:%02x:%02x:%02x:%02x: %llu received and %llu sent frames dropped", n->mac[0],
			 n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5], (unsigned long long)n->be->rx_dropped,
			 (unsigned long long)n->be->tx_dropped);
	n->be->ops->close(n->be);
}

const struct device_type virtio_net_device = {
	.kind = KV_DEV_VIRTIO_NET, .check = nic_check, .create = nic_create, .resume = virtio_device_resume,
	.destroy = nic_destroy,
};
