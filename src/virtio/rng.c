/* virtio-rng (1af4:1044): fills the guest's buffers from getrandom(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "devices.h"
#include "virtio_pci.h"

#define RNG_MAX_PER_REQUEST (64 * 1024)

struct rng {
	struct virtio_dev dev;
	struct virtq_elem elem;
};

static void rng_notify(struct virtio_dev *d, unsigned qi)
{
	struct rng *r = d->priv;
	struct virtq *vq = &d->q[qi].vq;
	int got;
	bool any = false;

	while ((got = virtq_pop(vq, &r->elem)) > 0) {
		uint32_t written = 0;
		for (unsigned i = r->elem.n_out; i < r->elem.n_out + r->elem.n_in && written < RNG_MAX_PER_REQUEST; i++) {
			size_t want = r->elem.iov[i].iov_len;
			if (want > RNG_MAX_PER_REQUEST - written)
				want = RNG_MAX_PER_REQUEST - written;
			ssize_t n = getrandom(r->elem.iov[i].iov_base, want, 0);
			if (n < 0)
				break;
			written += n;
		}
		virtq_push(vq, r->elem.head, written);
		any = true;
	}
	if (any)
		virtio_notify(d, qi);
}

static const struct virtio_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.class_code = 0x00ff00,
	.num_queues = 1,
	.queue_max = 256,
	.queue_notify = rng_notify,
};

extern const struct device_type virtio_rng_device;

static int rng_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	struct rng *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "virtio-rng: out of memory");
		return -ENOMEM;
	}
	int rc = virtio_dev_init(&r->dev, vm, &rng_ops, r);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-rng: cannot create device: %s", strerror(-rc));
		return rc;
	}
	return device_add(vm, &virtio_rng_device, &r->dev, err, errlen);
}

const struct device_type virtio_rng_device = {
	.kind = KV_DEV_VIRTIO_RNG, .create = rng_create, .resume = virtio_device_resume,
};
