/* virtio-vsock (1af4:1053): guest CID 3, three queues (receive, transmit,
 * events). The connection engine is src/vsock/; this file is the PCI side. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../vmm/vm.h"
#include "../vsock/vsock.h"
#include "devices.h"
#include "virtio_pci.h"

#define VIRTIO_ID_VSOCK 19

struct vsock_dev {
	struct virtio_dev dev;
	struct vsock *engine;
};

static struct vsock_dev *the_vsock;

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

struct vsock *virtio_vsock_create(struct vm *vm, char *err, size_t errlen)
{
	if (the_vsock)
		return the_vsock->engine;
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
	the_vsock = s;
	return s->engine;
}

void virtio_vsock_close(void)
{
	if (!the_vsock)
		return;
	vsock_free(the_vsock->engine);
	the_vsock->engine = NULL;
}
