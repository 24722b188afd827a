/* Modern virtio-pci transport (virtio 1.x, 4.1) and the small ops table a
 * device implements. A device never sees PCI: it gets queue notifications on
 * the I/O thread and raises interrupts with virtio_notify(). */
#ifndef KVKIT_VIRTIO_PCI_H
#define KVKIT_VIRTIO_PCI_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "../pci/pci.h"
#include "../vmm/device.h"
#include "../vmm/eventloop.h"
#include "virtq.h"

/* Feature bit numbers, status bits (VIRTIO_CONFIG_S_*) and device IDs come
 * from the kernel's uapi headers; a device's feature mask is built with
 * VIRTIO_BIT(VIRTIO_<DEV>_F_<NAME>). */
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#define VIRTIO_BIT(n) (1ULL << (n))
#define VIRTIO_MAX_QUEUES 64 /* MSI-X table room: one vector per queue + config */

struct virtio_dev;

struct virtio_ops {
	const char *name;
	uint16_t device_id;
	uint32_t class_code;
	unsigned num_queues;
	uint16_t queue_max;
	uint64_t features;   /* device-specific feature bits */
	unsigned config_size;
	/* the guest wrote device config (bytes already stored in d->config) */
	void (*config_written)(struct virtio_dev *d, unsigned off, unsigned len);
	/* I/O thread, device lock held */
	void (*queue_notify)(struct virtio_dev *d, unsigned q);
	/* the device's own threads wait on its queues' notify eventfds (and
	 * check virtio_dev_paused); the I/O thread does not watch them */
	bool own_notify;
	void (*driver_ok)(struct virtio_dev *d);
	void (*reset)(struct virtio_dev *d);
	/* device lock held: stop (true) before the core clears the queues at
	 * a reset, go on (false) after reset(); for a device whose own
	 * threads use its rings under locks of their own */
	void (*quiesce)(struct virtio_dev *d, bool stop);
};

struct virtio_queue {
	struct virtq vq;
	uint16_t msix_vector;
	uint16_t size;
	bool enabled;
	int notify_efd;
	struct ev_watch watch;
	struct virtio_dev *dev;
	unsigned index;
};

struct virtio_dev {
	struct vm *vm;
	const struct virtio_ops *ops;
	void *priv;
	struct pci_func pci;
	struct msix msix;
	pthread_mutex_t lock;
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint16_t config_vector;
	uint8_t status;
	uint8_t config_generation;
	uint16_t queue_select;
	uint8_t isr;
	uint8_t config[256];
	struct virtio_queue *q;
	unsigned num_queues;  /* ops->num_queues unless set before virtio_dev_init */
	uint64_t notify_base; /* guest address of the notify area, 0 if none */
	/* A shared memory region (virtio 1.2 4.1.4.7) as BAR 2 (64-bit,
	 * prefetchable), if shm_size is set before virtio_dev_init: shm_placed
	 * is told where the guest sees it whenever that changes (the guest
	 * turns memory decoding on or off, or moves the BAR; 0: gone). */
	uint64_t shm_size;
	uint8_t shm_id;
	void (*shm_placed)(struct virtio_dev *d, uint64_t addr);
};

/* Create the PCI function, MSI-X, queues and ioeventfds; put it on the bus. */
int virtio_dev_init(struct virtio_dev *d, struct vm *vm, const struct virtio_ops *ops, void *priv);
/* After used-ring updates on queue q: interrupt if the driver wants one. */
void virtio_notify(struct virtio_dev *d, unsigned q);
bool virtio_driver_ok(const struct virtio_dev *d);
/* The device changed its config space (lock held): tell the driver. */
void virtio_config_changed(struct virtio_dev *d);
/* The VM is paused: take no new work from the guest (backends may finish
 * what is in flight). Every queue is kicked again at resume. */
bool virtio_dev_paused(const struct virtio_dev *d);
/* A virtio device type's resume op (its instances are registered with their
 * struct virtio_dev): kick every queue, so the device looks at what the
 * guest queued while the VM was paused. */
void virtio_device_resume(struct device *dev);
/* The model behind a registered virtio device (the virtio_dev's priv). */
static inline void *virtio_device_model(const struct device *dev)
{
	return ((struct virtio_dev *)dev->priv)->priv;
}

#endif
