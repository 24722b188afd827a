/* virtio-gpu (1af4:1050), 2D, one scanout: the transport side. The
 * commands themselves are gpu_ctrl.c's; this file moves requests between
 * the virtqueues and it, and lets the display side (the screenshot, a
 * window) read the scanout under the device's lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../util/log.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "devices.h"
#include "gpu_ctrl.h"
#include "virtio_pci.h"

enum { CONTROL_Q, CURSOR_Q, GPU_QUEUES };

struct gpu {
	struct virtio_dev dev;
	struct gpu_state state;
	uint8_t *req; /* GPU_MAX_REQUEST bytes: one request's readable part */
	struct virtq_elem elem;
	bool warned;
};

static void gpu_notify(struct virtio_dev *d, unsigned qi)
{
	struct gpu *g = d->priv;
	struct virtq *vq = &d->q[qi].vq;
	bool any = false;
	while (virtq_pop(vq, &g->elem) > 0) {
		uint32_t fail[2] = { 0, 0 };
		uint32_t wrote = gpu_serve_chain(&g->state, &g->elem, g->req, fail);
		if (fail[1] && !g->warned) { /* a driver bug or a hostile guest: say so once */
			log_warn("virtio-gpu: the guest's command 0x%x failed with 0x%x (further failures are not logged)",
				 fail[0], fail[1]);
			g->warned = true;
		}
		virtq_push(vq, g->elem.head, wrote);
		any = true;
	}
	if (any)
		virtio_notify(d, qi);
}

static void gpu_config_written(struct virtio_dev *d, unsigned off, unsigned len)
{
	/* events_clear (offset 4) acknowledges events_read: kvkit raises none
	 * (the mode never changes under the guest), so both stay 0 */
	memset(d->config, 0, 8);
}

static void gpu_reset(struct virtio_dev *d)
{
	struct gpu *g = d->priv;
	gpu_state_free(&g->state); /* the driver starts over: its resources are gone */
	g->state.scanout.resource_id = 0;
	g->state.cursor.resource_id = 0;
}

static const struct virtio_ops gpu_ops = {
	.name = "virtio-gpu",
	.device_id = VIRTIO_ID_GPU,
	.class_code = 0x038000, /* display controller, other */
	.num_queues = GPU_QUEUES,
	.queue_max = 256,
	.features = VIRTIO_BIT(VIRTIO_GPU_F_EDID),
	.config_size = sizeof(struct virtio_gpu_config),
	.config_written = gpu_config_written,
	.queue_notify = gpu_notify,
	.reset = gpu_reset,
};

extern const struct device_type virtio_gpu_device;

/* The window, VNC and the screenshot show the first GPU. */
static int gpu_check(const struct kv_config *c, size_t index, char *err, size_t errlen)
{
	for (size_t i = 0; i < index; i++)
		if (c->devices[i].kind == KV_DEV_VIRTIO_GPU && c->devices[index].u.gpu.vnc) {
			snprintf(err, errlen, "virtio-gpu: vnc= is for the first virtio-gpu device only");
			return -1;
		}
	return 0;
}

static int gpu_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	const struct kv_gpu *cfg = &c->devices[i].u.gpu;
	struct gpu *g = calloc(1, sizeof(*g));
	if (!g || !(g->req = malloc(GPU_MAX_REQUEST))) {
		free(g);
		snprintf(err, errlen, "virtio-gpu: out of memory");
		return -ENOMEM;
	}
	gpu_state_init(&g->state, &vm->mem, cfg->width, cfg->height);
	struct virtio_gpu_config vc = { .num_scanouts = htole32(1) };
	memcpy(g->dev.config, &vc, sizeof(vc));
	int rc = virtio_dev_init(&g->dev, vm, &gpu_ops, g);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-gpu: cannot create device: %s", strerror(-rc));
		return rc;
	}
	return device_add(vm, &virtio_gpu_device, &g->dev, err, errlen);
}

static void gpu_destroy(struct device *d)
{
	struct gpu *g = virtio_device_model(d);
	gpu_state_free(&g->state);
	free(g->req);
	g->req = NULL;
}

const struct device_type virtio_gpu_device = {
	.kind = KV_DEV_VIRTIO_GPU, .check = gpu_check, .create = gpu_create, .resume = virtio_device_resume, .destroy = gpu_destroy,
};

int virtio_gpu_scanout_rgb(struct vm *vm, uint8_t **rgb, uint32_t *width, uint32_t *height)
{
	struct device *d = device_first(vm, &virtio_gpu_device);
	if (!d)
		return -ENODEV;
	struct gpu *g = virtio_device_model(d);
	pthread_mutex_lock(&g->dev.lock);
	int rc = gpu_scanout_rgb(&g->state, rgb, width, height);
	pthread_mutex_unlock(&g->dev.lock);
	return rc < 0 ? -EAGAIN : 0;
}

int virtio_gpu_cursor(struct vm *vm, struct gpu_cursor_image *c)
{
	struct device *d = device_first(vm, &virtio_gpu_device);
	if (!d)
		return -ENODEV;
	struct gpu *g = virtio_device_model(d);
	pthread_mutex_lock(&g->dev.lock);
	int rc = gpu_cursor_rgba(&g->state, c);
	pthread_mutex_unlock(&g->dev.lock);
	return rc < 0 ? -EAGAIN : 0;
}

uint64_t virtio_gpu_updates(struct vm *vm, uint64_t *cursor_updates)
{
	struct device *d = device_first(vm, &virtio_gpu_device);
	if (!d)
		return 0;
	struct gpu *g = virtio_device_model(d);
	if (cursor_updates)
		*cursor_updates = __atomic_load_n(&g->state.cursor_updates, __ATOMIC_ACQUIRE);
	return __atomic_load_n(&g->state.updates, __ATOMIC_ACQUIRE);
}
