/* Modern virtio-pci transport; see virtio_pci.h. BAR 0 layout: */
#include "virtio_pci.h"
#include <endian.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vmm/vm.h"

#define BAR_SIZE 0x10000
#define OFF_COMMON 0x0000
#define OFF_ISR 0x1000
#define OFF_DEVICE 0x2000
#define OFF_NOTIFY 0x3000
#define OFF_MSIX_TABLE 0x4000
#define OFF_MSIX_PBA 0x5000
#define NOTIFY_MULT 4
/* a field of the common configuration, by name */
#define CC(field) offsetof(struct virtio_pci_common_cfg, field)
#define SHM_BAR 2

void virtio_device_resume(struct device *dev)
{
	struct virtio_dev *d = dev->priv;
	uint64_t one = 1;
	for (unsigned q = 0; q < d->num_queues; q++)
		if (write(d->q[q].notify_efd, &one, sizeof(one)) < 0)
			log_debug("notify eventfd: %m");
}

bool virtio_dev_paused(const struct virtio_dev *d)
{
	return d->vm->devices_paused;
}

bool virtio_driver_ok(const struct virtio_dev *d)
{
	return (d->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static uint64_t offered(const struct virtio_dev *d)
{
	return d->ops->features | VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	       VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
}

void virtio_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_queue *vq = &d->q[q];
	if (!virtq_should_notify(&vq->vq))
		return;
	/* atomic: a multiqueue device's queue threads notify without the
	 * device lock */
	__atomic_or_fetch(&d->isr, 1, __ATOMIC_RELAXED);
	msix_notify(&d->msix, vq->msix_vector);
}

void virtio_config_changed(struct virtio_dev *d)
{
	d->config_generation++;
	d->isr |= 2;
	msix_notify(&d->msix, d->config_vector);
}

static void needs_reset(struct virtio_dev *d)
{
	d->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	d->isr |= 2;
	msix_notify(&d->msix, d->config_vector);
}

static void device_reset(struct virtio_dev *d)
{
	if (d->ops->quiesce)
		d->ops->quiesce(d, true);
	d->status = 0;
	d->driver_features = 0;
	d->dfselect = d->gfselect = 0;
	d->queue_select = 0;
	d->config_vector = VIRTIO_MSI_NO_VECTOR;
	d->isr = 0;
	for (unsigned i = 0; i < d->num_queues; i++) {
		struct virtio_queue *q = &d->q[i];
		virtq_reset(&q->vq);
		q->enabled = false;
		q->size = d->ops->queue_max;
		q->msix_vector = VIRTIO_MSI_NO_VECTOR;
	}
	if (d->ops->reset)
		d->ops->reset(d);
	if (d->ops->quiesce)
		d->ops->quiesce(d, false);
}

static void queue_kick(void *opaque, uint32_t events)
{
	struct virtio_queue *q = opaque;
	struct virtio_dev *d = q->dev;
	uint64_t v;
	(void)events;
	if (read(q->notify_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (d->vm->devices_paused)
		return; /* looked at again when the VM resumes */
	pthread_mutex_lock(&d->lock);
	if (q->enabled && virtio_driver_ok(d) && d->ops->queue_notify)
		d->ops->queue_notify(d, q->index);
	pthread_mutex_unlock(&d->lock);
}

static void ioeventfds(struct virtio_dev *d, uint64_t base, bool assign)
{
	for (unsigned i = 0; i < d->num_queues; i++) {
		int r = vm_ioeventfd(d->vm, d->q[i].notify_efd, base + OFF_NOTIFY + i * NOTIFY_MULT, 2, false, assign);
		if (r < 0)
			log_debug("%s: ioeventfd for queue %u: %s", d->ops->name, i, strerror(-r));
	}
}

static void bar_moved(struct pci_func *f, int bar, uint64_t old_addr, uint64_t new_addr)
{
	struct virtio_dev *d = f->opaque;
	if (bar == SHM_BAR && d->shm_placed)
		d->shm_placed(d, new_addr);
	if (bar != 0)
		return;
	if (old_addr)
		ioeventfds(d, old_addr, false);
	if (new_addr)
		ioeventfds(d, new_addr, true);
	d->notify_base = new_addr;
}

static void cfg_written(struct pci_func *f, unsigned off, unsigned len)
{
	struct virtio_dev *d = f->opaque;
	if (off <= d->msix.cap + 3 && off + len > d->msix.cap + 2)
		msix_cfg_written(&d->msix);
}

static uint64_t common_read(struct virtio_dev *d, unsigned off)
{
	struct virtio_queue *q = d->queue_select < d->num_queues ? &d->q[d->queue_select] : NULL;
	switch (off) {
	case CC(device_feature_select): return d->dfselect;
	case CC(device_feature): return d->dfselect < 2 ? (uint32_t)(offered(d) >> (32 * d->dfselect)) : 0;
	case CC(guest_feature_select): return d->gfselect;
	case CC(guest_feature): return d->gfselect < 2 ? (uint32_t)(d->driver_features >> (32 * d->gfselect)) : 0;
	case CC(msix_config): return d->config_vector;
	case CC(num_queues): return d->num_queues;
	case CC(device_status): return d->status;
	case CC(config_generation): return d->config_generation;
	case CC(queue_select): return d->queue_select;
	case CC(queue_size): return q ? q->size : 0;
	case CC(queue_msix_vector): return q ? q->msix_vector : VIRTIO_MSI_NO_VECTOR;
	case CC(queue_enable): return q ? q->enabled : 0;
	case CC(queue_notify_off): return q ? d->queue_select : 0;
	case CC(queue_desc_lo): return q ? (uint32_t)q->vq.desc_gpa : 0;
	case CC(queue_desc_hi): return q ? q->vq.desc_gpa >> 32 : 0;
	case CC(queue_avail_lo): return q ? (uint32_t)q->vq.avail_gpa : 0;
	case CC(queue_avail_hi): return q ? q->vq.avail_gpa >> 32 : 0;
	case CC(queue_used_lo): return q ? (uint32_t)q->vq.used_gpa : 0;
	case CC(queue_used_hi): return q ? q->vq.used_gpa >> 32 : 0;
	}
	return 0;
}

static void set_lo(uint64_t *v, uint32_t lo) { *v = (*v & ~0xffffffffULL) | lo; }
static void set_hi(uint64_t *v, uint32_t hi) { *v = (*v & 0xffffffffULL) | ((uint64_t)hi << 32); }

static void set_status(struct virtio_dev *d, uint8_t s)
{
	if (s == 0) {
		device_reset(d);
		return;
	}
	if ((s & VIRTIO_CONFIG_S_FEATURES_OK) && !(d->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		uint64_t f = d->driver_features;
		if ((f & ~offered(d)) || !(f & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
			log_warn("%s: driver accepted features 0x%llx we did not offer", d->ops->name,
				 (unsigned long long)f);
			s &= ~VIRTIO_CONFIG_S_FEATURES_OK;
		}
	}
	uint8_t was = d->status;
	d->status = s | (was & VIRTIO_CONFIG_S_NEEDS_RESET);
	if ((s & VIRTIO_CONFIG_S_DRIVER_OK) && !(was & VIRTIO_CONFIG_S_DRIVER_OK)) {
		if (d->ops->driver_ok)
			d->ops->driver_ok(d);
		/* Drivers may queue buffers and notify before DRIVER_OK (Linux's
		 * balloon primes its stats queue so); those kicks were dropped,
		 * so look at every queue once now. */
		uint64_t one = 1;
		for (unsigned i = 0; i < d->num_queues; i++)
			if (d->q[i].enabled && write(d->q[i].notify_efd, &one, sizeof(one)) < 0)
				log_debug("notify eventfd: %m");
	}
}

static void common_write(struct virtio_dev *d, unsigned off, uint32_t v)
{
	struct virtio_queue *q = d->queue_select < d->num_queues ? &d->q[d->queue_select] : NULL;
	switch (off) {
	case CC(device_feature_select): d->dfselect = v; return;
	case CC(guest_feature_select): d->gfselect = v; return;
	case CC(guest_feature):
		if (d->gfselect < 2 && !(d->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			if (d->gfselect == 0)
				set_lo(&d->driver_features, v);
			else
				set_hi(&d->driver_features, v);
		}
		return;
	case CC(msix_config): d->config_vector = v < d->msix.nvec ? v : VIRTIO_MSI_NO_VECTOR; return;
	case CC(device_status): set_status(d, v); return;
	case CC(queue_select): d->queue_select = v; return;
	}
	if (!q || q->enabled)
		return; /* queue fields are frozen once the queue is enabled */
	switch (off) {
	case CC(queue_size):
		if (v && v <= d->ops->queue_max && !(v & (v - 1)))
			q->size = v;
		return;
	case CC(queue_msix_vector): q->msix_vector = v < d->msix.nvec ? v : VIRTIO_MSI_NO_VECTOR; return;
	case CC(queue_enable):
		if (v != 1)
			return;
		q->vq.size = q->size;
		q->vq.event_idx = d->driver_features & VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
		if (virtq_start(&q->vq, &d->vm->mem) < 0) {
			log_warn("%s: queue %u: invalid ring addresses from the guest", d->ops->name, q->index);
			needs_reset(d);
			return;
		}
		q->enabled = true;
		return;
	case CC(queue_desc_lo): set_lo(&q->vq.desc_gpa, v); return;
	case CC(queue_desc_hi): set_hi(&q->vq.desc_gpa, v); return;
	case CC(queue_avail_lo): set_lo(&q->vq.avail_gpa, v); return;
	case CC(queue_avail_hi): set_hi(&q->vq.avail_gpa, v); return;
	case CC(queue_used_lo): set_lo(&q->vq.used_gpa, v); return;
	case CC(queue_used_hi): set_hi(&q->vq.used_gpa, v); return;
	}
}

static void bar_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct virtio_dev *d = opaque;

	if (off >= OFF_MSIX_TABLE && off < OFF_MSIX_PBA) {
		msix_table_access(&d->msix, off - OFF_MSIX_TABLE, data, len, is_write);
		return;
	}
	if (off >= OFF_MSIX_PBA && off < OFF_MSIX_PBA + 0x1000) {
		msix_pba_access(&d->msix, off - OFF_MSIX_PBA, data, len, is_write);
		return;
	}
	if (off >= OFF_NOTIFY && off < OFF_NOTIFY + 0x1000) {
		/* only reached when no ioeventfd is registered for this address */
		unsigned qi = (off - OFF_NOTIFY) / NOTIFY_MULT;
		if (is_write && qi < d->num_queues) {
			uint64_t one = 1;
			if (write(d->q[qi].notify_efd, &one, sizeof(one)) < 0)
				log_debug("notify eventfd: %m");
		} else if (!is_write) {
			memset(data, 0, len);
		}
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off < OFF_COMMON + sizeof(struct virtio_pci_common_cfg)) {
		/* fields are naturally aligned; the driver uses their exact width */
		if (is_write) {
			uint32_t v = 0;
			memcpy(&v, data, len > 4 ? 4 : len);
			common_write(d, off, v);
			if (len == 8) {
				uint32_t hi;
				memcpy(&hi, data + 4, 4);
				common_write(d, off + 4, hi);
			}
		} else {
			uint64_t v = common_read(d, off);
			if (len == 8)
				v |= common_read(d, off + 4) << 32;
			memcpy(data, &v, len > 8 ? 8 : len);
		}
	} else if (off == OFF_ISR) {
		if (!is_write) {
			memset(data, 0, len);
			data[0] = __atomic_exchange_n(&d->isr, 0, __ATOMIC_RELAXED);
		}
	} else if (off >= OFF_DEVICE && off < OFF_DEVICE + d->ops->config_size) {
		unsigned o = off - OFF_DEVICE;
		unsigned n = len;
		if (o + n > d->ops->config_size)
			n = d->ops->config_size - o;
		if (is_write) {
			memcpy(d->config + o, data, n);
			if (d->ops->config_written)
				d->ops->config_written(d, o, n);
		} else {
			memset(data, 0, len);
			memcpy(data, d->config + o, n);
		}
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&d->lock);
}

/* A capability in BAR 0 (virtio 1.2 4.1.4); the notify one carries the
 * multiplier after it. */
static int add_vcap(struct virtio_dev *d, uint8_t type, uint32_t off, uint32_t len)
{
	struct virtio_pci_notify_cap c = {
		.cap = { .cap_vndr = PCI_CAP_ID_VNDR, .cfg_type = type, .bar = 0, .offset = htole32(off),
			 .length = htole32(len) },
		.notify_off_multiplier = htole32(NOTIFY_MULT),
	};
	c.cap.cap_len = type == VIRTIO_PCI_CAP_NOTIFY_CFG ? sizeof(c) : sizeof(c.cap);
	return pci_add_cap(&d->pci, &c, c.cap.cap_len);
}

/* BAR 2 is memory the device maps for the guest; what is not mapped (the
 * memory slot not yet placed) reads as all ones and ignores writes. */
static void shm_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque; (void)off;
	if (!is_write)
		memset(data, 0xff, len);
}

static int add_shm_cap(struct virtio_dev *d)
{
	struct virtio_pci_cap64 c = {
		.cap = { .cap_vndr = PCI_CAP_ID_VNDR, .cap_len = sizeof(c), .cfg_type = VIRTIO_PCI_CAP_SHARED_MEMORY_CFG,
			 .bar = SHM_BAR, .id = d->shm_id, .offset = 0, .length = htole32((uint32_t)d->shm_size) },
		.offset_hi = 0,
		.length_hi = htole32((uint32_t)(d->shm_size >> 32)),
	};
	int r = pci_add_cap(&d->pci, &c, sizeof(c));
	return r < 0 ? r : pci_add_bar64(&d->pci, SHM_BAR, d->shm_size, shm_io, d);
}

int virtio_dev_init(struct virtio_dev *d, struct vm *vm, const struct virtio_ops *ops, void *priv)
{
	int r;
	d->vm = vm;
	d->ops = ops;
	d->priv = priv;
	/* recursive: a backend may answer a frame while the device sends it
	 * (libslirp replies to ARP inside slirp_input) */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&d->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (!d->num_queues)
		d->num_queues = ops->num_queues;
	d->q = calloc(d->num_queues, sizeof(*d->q));
	if (!d->q)
		return -ENOMEM;
	pci_func_init(&d->pci, 0x1af4, 0x1040 + ops->device_id, ops->class_code, 0x1af4, 0x1100 | ops->device_id, 1);
	d->pci.opaque = d;
	d->pci.bar_moved = bar_moved;
	d->pci.cfg_written = cfg_written;
	d->pci.cfg[0x3d] = 0; /* no INTx pin: MSI-X only */
	if (add_vcap(d, VIRTIO_PCI_CAP_COMMON_CFG, OFF_COMMON, sizeof(struct virtio_pci_common_cfg)) < 0 ||
	    add_vcap(d, VIRTIO_PCI_CAP_ISR_CFG, OFF_ISR, 1) < 0 ||
	    add_vcap(d, VIRTIO_PCI_CAP_DEVICE_CFG, OFF_DEVICE, ops->config_size ? ops->config_size : 4) < 0 ||
	    add_vcap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, OFF_NOTIFY, d->num_queues * NOTIFY_MULT) < 0)
		return -ENOSPC;
	if (d->shm_size && add_shm_cap(d) < 0)
		return -ENOSPC;
	/* one vector per queue plus one for config changes */
	r = msix_init(&d->msix, vm, &d->pci, d->num_queues + 1, 0, OFF_MSIX_TABLE, OFF_MSIX_PBA);
	if (r < 0)
		return r;
	pci_add_bar(&d->pci, 0, BAR_SIZE, bar_io, d);
	for (unsigned i = 0; i < d->num_queues; i++) {
		struct virtio_queue *q = &d->q[i];
		q->dev = d;
		q->index = i;
		q->notify_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->notify_efd < 0)
			return -errno;
		if (ops->own_notify)
			continue;
		q->watch = (struct ev_watch){ .fd = q->notify_efd, .events = EPOLLIN, .fn = queue_kick, .opaque = q };
		r = ev_add(&vm->ev, &q->watch);
		if (r < 0)
			return r;
	}
	device_reset(d);
	r = pci_register(vm, &d->pci);
	if (r < 0)
		return r;
	d->notify_base = d->pci.bar[0].addr;
	ioeventfds(d, d->notify_base, true);
	/* the shared memory BAR (64-bit) is placed when the guest turns memory
	 * decoding on: bar_moved() */
	log_debug("%s: PCI 00:%02x.0, BAR0 0x%llx", ops->name, r, (unsigned long long)d->notify_base);
	return 0;
}
