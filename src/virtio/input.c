/* virtio-input (1af4:1052): a keyboard or an absolute pointer (tablet).
 * The display side (a window, a VNC client) hands events in with
 * virtio_input_send from its own thread; they wait in a bounded ring
 * until the guest has buffers on the event queue. The status queue (LEDs
 * the guest sets) is read and dropped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../util/log.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "devices.h"
#include "input_model.h"
#include "virtio_pci.h"

enum { EVENT_Q, STATUS_Q, INPUT_QUEUES };
struct input {
	struct virtio_dev dev;
	enum kv_input_kind kind;
	unsigned index;
	struct input_pending pending;
	bool warned_full;
	struct virtq_elem elem;
};

/* Move pending events into the guest's buffers (device lock held). */
static void deliver(struct input *in)
{
	struct virtio_dev *d = &in->dev;
	if (!virtio_driver_ok(d) || virtio_dev_paused(d) || !d->q[EVENT_Q].enabled)
		return;
	if (input_pending_deliver(&in->pending, &d->q[EVENT_Q].vq, &in->elem))
		virtio_notify(d, EVENT_Q);
}

static void input_notify(struct virtio_dev *d, unsigned qi)
{
	struct input *in = d->priv;
	if (qi == EVENT_Q) {
		deliver(in);
		return;
	}
	struct virtq *vq = &d->q[qi].vq;
	bool any = false;
	while (virtq_pop(vq, &in->elem) > 0) { /* LED changes: nothing shows them */
		virtq_push(vq, in->elem.head, 0);
		any = true;
	}
	if (any)
		virtio_notify(d, qi);
}

static void input_config_written(struct virtio_dev *d, unsigned off, unsigned len)
{
	struct input *in = d->priv;
	struct virtio_input_config c;
	memcpy(&c, d->config, sizeof(c));
	input_config_answer(in->kind, in->index, &c);
	memcpy(d->config, &c, sizeof(c));
}

static void input_reset(struct virtio_dev *d)
{
	struct input *in = d->priv;
	in->pending.head = in->pending.count = 0; /* events for a driver that is gone */
}

static const struct virtio_ops input_ops = {
	.name = "virtio-input",
	.device_id = VIRTIO_ID_INPUT,
	.class_code = 0x098000, /* input device, other */
	.num_queues = INPUT_QUEUES,
	.queue_max = 64,
	.config_size = sizeof(struct virtio_input_config),
	.config_written = input_config_written,
	.queue_notify = input_notify,
	.reset = input_reset,
};

extern const struct device_type virtio_input_device;

static unsigned count_kind(struct vm *vm, enum kv_input_kind kind)
{
	unsigned n = 0;
	for (struct device *d = vm->devices; d; d = d->next)
		if (d->type == &virtio_input_device && ((struct input *)virtio_device_model(d))->kind == kind)
			n++;
	return n;
}

static int input_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	struct input *in = calloc(1, sizeof(*in));
	if (!in) {
		snprintf(err, errlen, "virtio-input: out of memory");
		return -ENOMEM;
	}
	in->kind = c->devices[i].u.input;
	in->index = count_kind(vm, in->kind);
	int rc = virtio_dev_init(&in->dev, vm, &input_ops, in);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-input: cannot create device: %s", strerror(-rc));
		return rc;
	}
	return device_add(vm, &virtio_input_device, &in->dev, err, errlen);
}

/* Resume: events that arrived while paused go out, then the queues are
 * looked at again (the transport's resume). */
static void input_resume(struct device *dev)
{
	virtio_device_resume(dev);
	struct input *in = virtio_device_model(dev);
	pthread_mutex_lock(&in->dev.lock);
	deliver(in);
	pthread_mutex_unlock(&in->dev.lock);
}

const struct device_type virtio_input_device = {
	.kind = KV_DEV_VIRTIO_INPUT, .create = input_create, .resume = input_resume,
};

int virtio_input_send(struct vm *vm, enum kv_input_kind kind, const struct virtio_input_event *ev, unsigned n)
{
	struct input *in = NULL;
	for (struct device *d = vm->devices; d && !in; d = d->next)
		if (d->type == &virtio_input_device && ((struct input *)virtio_device_model(d))->kind == kind)
			in = virtio_device_model(d);
	if (!in)
		return -ENODEV;
	pthread_mutex_lock(&in->dev.lock);
	int rc = 0;
	if (!input_pending_add(&in->pending, ev, n)) { /* the guest does not read: drop the batch */
		if (!in->warned_full)
			log_warn("virtio-input: the guest reads no input events; dropping them");
		in->warned_full = true;
		rc = -ENOSPC;
	} else {
		in->warned_full = false;
		deliver(in);
	}
	pthread_mutex_unlock(&in->dev.lock);
	return rc;
}
