/* virtio-balloon (1af4:1045): inflate, deflate and memory statistics.
 * Pages the guest gives up are punched out of the guest-RAM memfd
 * (MADV_REMOVE), so kvkit's memory really shrinks; deflated pages come back
 * zeroed on the guest's next touch. The REST API sets the target and reads
 * the statistics (beyond vfkit). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "balloon_pfns.h"
#include "devices.h"
#include "virtio_pci.h"
#include <linux/virtio_balloon.h>

#define INFLATE_Q 0
#define DEFLATE_Q 1
#define STATS_Q 2
#define BALLOON_PAGE 4096ULL
#define STATS_TIMEOUT_MS 1000

struct balloon {
	struct virtio_dev dev;
	struct vm *vm;
	uint32_t target_pages; /* balloon size the driver is asked for */
	/* the guest's statistics buffer, held until we want fresh figures */
	bool stats_held;
	uint16_t stats_head;
	struct virtq_elem stats_elem;
	struct balloon_stats stats;
	unsigned stats_generation;
	pthread_cond_t stats_cond;
	struct virtq_elem elem;
	unsigned bad_pfns_logged;
};

extern const struct device_type virtio_balloon_device;

/* Give the host pages behind one run of guest frames back to the kernel. */
static void release_run(struct balloon *b, uint64_t first_pfn, uint64_t npages)
{
	uint64_t gpa = first_pfn * BALLOON_PAGE, len = npages * BALLOON_PAGE;
	void *p = gmem_ptr(&b->vm->mem, gpa, len);
	if (!p) {
		if (b->bad_pfns_logged++ < 3)
			log_warn("virtio-balloon: guest inflated frames outside its RAM (pfn 0x%llx); ignored",
				 (unsigned long long)first_pfn);
		return;
	}
	if (madvise(p, len, MADV_REMOVE) < 0 && b->bad_pfns_logged++ < 3)
		log_warn("virtio-balloon: MADV_REMOVE: %m");
}

static void release_cb(void *opaque, uint64_t first, uint64_t count) { release_run(opaque, first, count); }

static void inflate(struct balloon *b, struct virtq_elem *e)
{
	size_t n = balloon_pfn_runs(e->iov, e->n_out, BALLOON_MAX_PFNS_PER_CHAIN, release_cb, b);
	if (n > BALLOON_MAX_PFNS_PER_CHAIN && b->bad_pfns_logged++ < 3)
		log_warn("virtio-balloon: an inflate buffer of %zu page numbers; only the first %u taken", n,
			 BALLOON_MAX_PFNS_PER_CHAIN);
}

/* Read the tag/value pairs the guest wrote (device-readable part). */
static void parse_stats(struct balloon *b, struct virtq_elem *e)
{
	struct balloon_stats s = { .valid = true };
	for (size_t off = 0; off + 10 <= e->out_len; off += 10) {
		uint16_t tag;
		uint64_t val;
		iov_to_buf(e->iov, e->n_out, off, &tag, 2);
		iov_to_buf(e->iov, e->n_out, off + 2, &val, 8);
		if (tag < BALLOON_STAT_COUNT) {
			s.val[tag] = val;
			s.present |= 1u << tag;
		}
	}
	b->stats = s;
	b->stats_generation++;
	pthread_cond_broadcast(&b->stats_cond);
}

static void balloon_notify(struct virtio_dev *d, unsigned q)
{
	struct balloon *b = d->priv;
	struct virtq *vq = &d->q[q].vq;
	bool any = false;
	if (q == STATS_Q) {
		if (b->stats_held)
			return; /* one buffer at a time, as the driver uses it */
		if (virtq_pop(vq, &b->stats_elem) > 0) {
			parse_stats(b, &b->stats_elem);
			b->stats_held = true;
			b->stats_head = b->stats_elem.head;
		}
		return;
	}
	while (virtq_pop(vq, &b->elem) > 0) {
		if (q == INFLATE_Q)
			inflate(b, &b->elem);
		virtq_push(vq, b->elem.head, 0);
		any = true;
	}
	if (any)
		virtio_notify(d, q);
}

static void balloon_config_written(struct virtio_dev *d, unsigned off, unsigned len)
{
	/* only "actual" (offset 4) is the driver's to write */
	struct balloon *b = d->priv;
	if (off < 4)
		memcpy(d->config, &b->target_pages, 4);
}

static void balloon_reset(struct virtio_dev *d)
{
	struct balloon *b = d->priv;
	b->stats_held = false;
	memset(d->config, 0, 8);
	memcpy(d->config, &b->target_pages, 4);
}

static const struct virtio_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.class_code = 0x05ff00,
	.num_queues = 3,
	.queue_max = 128,
	.features = VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ),
	.config_size = 8,
	.config_written = balloon_config_written,
	.queue_notify = balloon_notify,
	.reset = balloon_reset,
};

static int balloon_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	struct balloon *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "virtio-balloon: out of memory");
		return -ENOMEM;
	}
	b->vm = vm;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->stats_cond, &ca);
	pthread_condattr_destroy(&ca);
	int rc = virtio_dev_init(&b->dev, vm, &balloon_ops, b);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-balloon: cannot create device: %s", strerror(-rc));
		return rc;
	}
	return device_add(vm, &virtio_balloon_device, &b->dev, err, errlen);
}

const struct device_type virtio_balloon_device = {
	.kind = KV_DEV_VIRTIO_BALLOON, .create = balloon_create, .resume = virtio_device_resume,
};

/* The REST API drives the first balloon. */
static struct balloon *first_balloon(struct vm *vm)
{
	struct device *d = device_first(vm, &virtio_balloon_device);
	return d ? virtio_device_model(d) : NULL;
}

int virtio_balloon_set_target(struct vm *vm, uint64_t guest_bytes, char *err, size_t errlen)
{
	struct balloon *b = first_balloon(vm);
	if (!b) {
		snprintf(err, errlen, "no virtio-balloon device");
		return -ENODEV;
	}
	if (guest_bytes == 0 || guest_bytes > b->vm->ram_size) {
		snprintf(err, errlen, "targetBytes must be between 1 and the VM's memory (%llu)",
			 (unsigned long long)b->vm->ram_size);
		return -EINVAL;
	}
	pthread_mutex_lock(&b->dev.lock);
	b->target_pages = (uint32_t)((b->vm->ram_size - guest_bytes) / BALLOON_PAGE);
	memcpy(b->dev.config, &b->target_pages, 4);
	virtio_config_changed(&b->dev);
	pthread_mutex_unlock(&b->dev.lock);
	log_info("virtio-balloon: target %llu MiB of guest memory", (unsigned long long)(guest_bytes >> 20));
	return 0;
}

int virtio_balloon_info(struct vm *vm, struct balloon_info *out)
{
	struct balloon *b = first_balloon(vm);
	if (!b)
		return -ENODEV;
	pthread_mutex_lock(&b->dev.lock);
	if (b->stats_held && virtio_driver_ok(&b->dev) && !virtio_dev_paused(&b->dev)) {
		/* hand the buffer back: the driver refills it with fresh figures */
		unsigned gen = b->stats_generation;
		b->stats_held = false;
		virtq_push(&b->dev.q[STATS_Q].vq, b->stats_head, 0);
		virtio_notify(&b->dev, STATS_Q);
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += STATS_TIMEOUT_MS / 1000;
		while (b->stats_generation == gen)
			if (pthread_cond_timedwait(&b->stats_cond, &b->dev.lock, &dl) == ETIMEDOUT)
				break;
	}
	uint32_t actual;
	memcpy(&actual, b->dev.config + 4, 4);
	out->memory_bytes = b->vm->ram_size;
	out->target_bytes = b->vm->ram_size - (uint64_t)b->target_pages * BALLOON_PAGE;
	/* "actual" is the guest's word: never trust it to be in range */
	uint64_t given = (uint64_t)actual * BALLOON_PAGE;
	out->actual_bytes = given < b->vm->ram_size ? b->vm->ram_size - given : 0;
	out->stats = b->stats;
	pthread_mutex_unlock(&b->dev.lock);
	return 0;
}
