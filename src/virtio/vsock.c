/* virtio-vsock (1af4:1053): guest CID 3, three queues (receive, transmit,
 * events). The connection engine is src/vsock/; this file is the PCI side. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../services/ignition.h"
#include "../util/log.h"
#include "../util/unixsock.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "../vsock/vsock.h"
#include "devices.h"
#include "virtio_pci.h"


struct vsock_dev {
	struct virtio_dev dev;
	struct vsock *engine;
};

extern const struct device_type virtio_vsock_device;

static bool dev_can_run(void *opaque)
{
	struct virtio_dev *d = opaque;
	return virtio_driver_ok(d) && !virtio_dev_paused(d) && d->q[0].enabled && d->q[1].enabled;
}

static void dev_notify(void *opaque, unsigned q)
{
	virtio_notify(opaque, q);
}

static void vsock_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct vsock_dev *s = d->priv;
	if (!s->engine)
		return;
	if (q == 0)
		vsock_rx_kick(s->engine);
	else if (q == 1)
		vsock_tx_kick(s->engine);
	else
		vsock_event_kick(s->engine);
}

static void vsock_dev_reset(struct virtio_dev *d)
{
	struct vsock_dev *s = d->priv;
	uint64_t cid = VSOCK_GUEST_CID;
	memcpy(d->config, &cid, sizeof(cid));
	if (s->engine)
		vsock_reset(s->engine);
}

static const struct virtio_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.class_code = 0x00ff00,
	.num_queues = 3,
	.queue_max = 256,
	.config_size = 8,
	.queue_notify = vsock_queue_notify,
	.reset = vsock_dev_reset,
};

struct vsock *virtio_vsock_get(struct vm *vm, char *err, size_t errlen)
{
	struct device *found = device_first(vm, &virtio_vsock_device);
	if (found)
		return ((struct vsock_dev *)virtio_device_model(found))->engine;
	log_info("Adding virtio-vsock device");
	struct vsock_dev *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "virtio-vsock: out of memory");
		return NULL;
	}
	int rc = virtio_dev_init(&s->dev, vm, &vsock_ops, s);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-vsock: cannot create device: %s", strerror(-rc));
		return NULL;
	}
	struct vsock_hooks hooks = { .can_run = dev_can_run, .notify = dev_notify, .opaque = &s->dev };
	struct vsock_queues q = { &s->dev.q[0].vq, &s->dev.q[1].vq, &s->dev.q[2].vq };
	s->engine = vsock_new(&vm->ev, &s->dev.lock, &hooks, &q);
	if (!s->engine) {
		snprintf(err, errlen, "virtio-vsock: out of memory");
		return NULL;
	}
	if (device_add(vm, &virtio_vsock_device, &s->dev, err, errlen) < 0)
		return NULL;
	return s->engine;
}

/* One port per direction, 1024 is Ignition's, paths fit. */
static int vsock_check(const struct kv_config *c, size_t i, char *err, size_t errlen)
{
	const struct kv_vsock *a = &c->devices[i].u.vsock;
	if (!a->socket_url || !*a->socket_url)
		return 0;
	if (strlen(a->socket_url) > UNIX_PATH_MAX_LEN) {
		snprintf(err, errlen, "virtio-vsock: socket path length exceeds %d bytes: %s", UNIX_PATH_MAX_LEN,
			 a->socket_url);
		return -1;
	}
	if (a->mux)
		return 0;
	if (c->ignition && a->listen && a->port == IGNITION_VSOCK_PORT) {
		snprintf(err, errlen, "vsock port %d is used by --ignition", IGNITION_VSOCK_PORT);
		return -1;
	}
	for (size_t j = 0; j < i; j++) {
		const struct kv_vsock *b = &c->devices[j].u.vsock;
		if (c->devices[j].kind == KV_DEV_VIRTIO_VSOCK && b->socket_url && *b->socket_url && !b->mux &&
		    b->port == a->port && b->listen == a->listen) {
			snprintf(err, errlen, "virtio-vsock: port %u is given twice in %s mode", a->port,
				 a->listen ? "listen" : "connect");
			return -1;
		}
	}
	return 0;
}

/* Every entry adds to the one device, created where the first one is (PCI order). */
static int vsock_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	const struct kv_vsock *k = &c->devices[i].u.vsock;
	struct vsock *v = virtio_vsock_get(vm, err, errlen);
	if (!v)
		return -1;
	if (!k->socket_url || !*k->socket_url)
		return 0; /* only makes sure the device exists */
	if (k->mux)
		return vsock_add_mux(v, k->socket_url, err, errlen);
	if (k->listen)
		return vsock_add_listen(v, k->port, k->socket_url, err, errlen);
	return vsock_add_connect(v, k->port, k->socket_url, err, errlen);
}

/* Close connections, remove the sockets kvkit created. */
static void vsock_destroy(struct device *d)
{
	struct vsock_dev *s = virtio_device_model(d);
	vsock_free(s->engine);
	s->engine = NULL;
}

const struct device_type virtio_vsock_device = {
	.kind = KV_DEV_VIRTIO_VSOCK, .check = vsock_check, .create = vsock_create,
	.resume = virtio_device_resume, .destroy = vsock_destroy,
};
