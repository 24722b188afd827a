/* NVMe disks (`--device nvme,path=...`): one PCI NVMe controller (class
 * 01:08:02) per disk, with namespace 1 on a block backend; nvme_ctrl.h is
 * the controller itself. BAR 0 (16 KiB): registers at 0,
 * doorbells at 0x1000, the MSI-X table at 0x2000 and its PBA at 0x3000.
 * A doorbell is an MMIO exit (its value is the new queue index, which an
 * ioeventfd would lose): the vCPU thread records it and wakes the I/O
 * thread, which reads the queues and talks to the backend. Once the driver
 * gives shadow doorbells (Linux does, as the controller offers them) the
 * I/O queues' indexes are in guest memory: their doorbells become
 * ioeventfds, and the driver rings them only when kvkit asks. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "../block/backend.h"
#include "../pci/pci.h"
#include "../util/log.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "nvme_ctrl.h"

#define BAR_SIZE 0x4000
#define OFF_MSIX_TABLE 0x2000
#define OFF_MSIX_PBA 0x3000
#define PCI_CLASS_NVME 0x010802 /* mass storage, non-volatile memory, NVM Express */

struct nvme_dev {
	struct pci_func pci;
	struct msix msix;
	struct vm *vm;
	struct blk_backend *be;
	struct nvme_ctrl *ctrl;
	int efd;
	struct ev_watch watch;
	pthread_mutex_t db_lock; /* the ioeventfds: set by the I/O thread, moved by a vCPU */
	bool db_events;          /* the I/O queues' doorbells are ioeventfds */
	uint64_t db_base;        /* where they are registered (BAR 0) */
	unsigned max_ioq;
	char serial[24]; /* the controller's identify data points here */
};

extern const struct device_type nvme_device;

static void bar_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct nvme_dev *d = opaque;
	if (off >= OFF_MSIX_TABLE && off < OFF_MSIX_PBA)
		msix_table_access(&d->msix, off - OFF_MSIX_TABLE, data, len, is_write);
	else if (off >= OFF_MSIX_PBA)
		msix_pba_access(&d->msix, off - OFF_MSIX_PBA, data, len, is_write);
	else if (off < NVME_DB_END)
		nvme_ctrl_mmio(d->ctrl, off, data, len, is_write);
	else if (!is_write)
		memset(data, 0, len);
}

static void cfg_written(struct pci_func *f, unsigned off, unsigned len)
{
	struct nvme_dev *d = f->opaque;
	if (off <= d->msix.cap + 3 && off + len > d->msix.cap + 2)
		msix_cfg_written(&d->msix);
}

/* Lock held. */
static void doorbell_events(struct nvme_dev *d, uint64_t base, bool assign)
{
	for (unsigned q = 1; q <= d->max_ioq; q++)
		for (unsigned k = 0; k < 2; k++) {
			int r = vm_ioeventfd(d->vm, d->efd, base + NVME_REG_SIZE + q * 8 + k * 4, 4, false, assign);
			if (r < 0)
				log_debug("nvme: ioeventfd for doorbell %u: %s", 2 * q + k, strerror(-r));
		}
}

static void shadow_doorbells(void *opaque, bool on)
{
	struct nvme_dev *d = opaque;
	pthread_mutex_lock(&d->db_lock);
	if (on != d->db_events && d->db_base)
		doorbell_events(d, d->db_base, on);
	if (on != d->db_events)
		log_debug("nvme 00:%02x.0: shadow doorbells %s", d->pci.slot, on ? "on" : "off");
	d->db_events = on;
	pthread_mutex_unlock(&d->db_lock);
}

static void bar_moved(struct pci_func *f, int bar, uint64_t old_addr, uint64_t new_addr)
{
	struct nvme_dev *d = f->opaque;
	if (bar != 0)
		return;
	pthread_mutex_lock(&d->db_lock);
	if (d->db_events && old_addr)
		doorbell_events(d, old_addr, false);
	if (d->db_events && new_addr)
		doorbell_events(d, new_addr, true);
	d->db_base = new_addr;
	pthread_mutex_unlock(&d->db_lock);
}

static void raise_irq(void *opaque, unsigned vector)
{
	struct nvme_dev *d = opaque;
	msix_notify(&d->msix, vector);
}

static void wake(void *opaque)
{
	struct nvme_dev *d = opaque;
	uint64_t one = 1;
	if (write(d->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("nvme eventfd: %m");
}

static void on_wake(void *opaque, uint32_t events)
{
	struct nvme_dev *d = opaque;
	uint64_t v;
	(void)events;
	if (read(d->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (d->vm->devices_paused)
		return; /* looked at again when the VM resumes */
	nvme_ctrl_process(d->ctrl);
}


/* A serial number per disk: its position and a hash of its path, so the
 * same command line gives the guest the same names (/dev/disk/by-id). */
static void make_ids(const char *label, unsigned index, struct nvme_ctrl_params *p, char *serial, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (const char *s = label; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	snprintf(serial, n, "KVKIT%02u%08llX", index % 100, (unsigned long long)(h & 0xffffffffu));
	for (unsigned i = 0; i < 16; i++) {
		h = (h ^ index ^ i) * 1099511628211ull;
		p->uuid[i] = (uint8_t)(h >> 56);
	}
	p->uuid[6] = (p->uuid[6] & 0x0f) | 0x80; /* RFC 4122 version 8 (custom), variant 1 */
	p->uuid[8] = (p->uuid[8] & 0x3f) | 0x80;
}

/* Put a controller on the bus; label names the disk in messages (its path).
 * The backend is the device's from here on, even on failure. */
static int nvme_init(struct vm *vm, struct blk_backend *be, const char *label, char *err, size_t errlen)
{
	struct nvme_dev *d = calloc(1, sizeof(*d));
	if (!d) {
		be->ops->close(be);
		snprintf(err, errlen, "nvme: out of memory");
		return -ENOMEM;
	}
	/* One I/O queue pair per vCPU, and two at least: UEFI's NVMe driver
	 * (EDK2's NvmExpressDxe) creates a synchronous and an asynchronous
	 * pair, and with only one on offer OVMF found no disk to boot from. */
	struct nvme_ctrl_params p = { .max_ioq = vm->ncpus < NVME_MAX_IOQ ? vm->ncpus : NVME_MAX_IOQ };
	if (p.max_ioq < 2)
		p.max_ioq = 2;
	p.nvec = p.max_ioq + 1; /* the admin queue's, then one per I/O queue */
	make_ids(label, device_count(vm, &nvme_device), &p, d->serial, sizeof(d->serial));
	p.serial = d->serial;
	static const struct nvme_ctrl_ops ops = { .irq = raise_irq, .wake = wake, .shadow_doorbells = shadow_doorbells };
	d->vm = vm;
	d->max_ioq = p.max_ioq;
	pthread_mutex_init(&d->db_lock, NULL);
	d->be = be;
	d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->ctrl = d->efd >= 0 ? nvme_ctrl_new(&vm->mem, be, &p, &ops, d) : NULL;
	int r = d->ctrl ? 0 : -ENOMEM;
	if (!r) {
		pci_func_init(&d->pci, 0x1af4, 0x10f0, PCI_CLASS_NVME, 0x1af4, 0x1100, 1);
		d->pci.opaque = d;
		d->pci.cfg_written = cfg_written;
		d->pci.bar_moved = bar_moved;
		d->pci.cfg[0x3d] = 0; /* no INTx pin: MSI-X only */
		r = msix_init(&d->msix, vm, &d->pci, p.nvec, 0, OFF_MSIX_TABLE, OFF_MSIX_PBA);
	}
	if (!r)
		r = pci_add_bar(&d->pci, 0, BAR_SIZE, bar_io, d);
	if (!r) {
		d->watch = (struct ev_watch){ .fd = d->efd, .events = EPOLLIN, .fn = on_wake, .opaque = d };
		r = ev_add(&vm->ev, &d->watch);
	}
	if (!r)
		r = pci_register(vm, &d->pci);
	if (r < 0) {
		snprintf(err, errlen, "nvme: cannot create the controller for %s: %s", label, strerror(-r));
		be->ops->close(be);
		return r; /* d stays allocated: it may be half on the bus */
	}
	d->db_base = d->pci.bar[0].addr;
	log_debug("nvme %s: PCI 00:%02x.0, BAR0 0x%llx, %u I/O queues", d->serial, r,
		  (unsigned long long)d->pci.bar[0].addr, p.max_ioq);
	return device_add(vm, &nvme_device, d, err, errlen); /* on failure d stays: it is on the bus */
}

static int nvme_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	struct blk_backend *be;
	if (blk_disk_open(c, i, "NVMe", &vm->ev, &be, err, errlen) < 0)
		return -1;
	return nvme_init(vm, be, c->devices[i].u.disk.path, err, errlen) < 0 ? -1 : 0;
}

static void nvme_resume(struct device *dv)
{
	wake(dv->priv);
}

/* Wait for every request the disk holds (the guest has stopped). */
static void nvme_drain(struct device *dv)
{
	struct nvme_dev *d = dv->priv;
	while (nvme_ctrl_inflight(d->ctrl))
		d->be->ops->drain(d->be); /* a write's flush may follow its completion */
}

static void nvme_destroy(struct device *dv)
{
	struct nvme_dev *d = dv->priv;
	d->be->ops->close(d->be);
	nvme_ctrl_free(d->ctrl);
	ev_del(&d->vm->ev, &d->watch);
	close(d->efd);
	free(d);
}

const struct device_type nvme_device = {
	.kind = KV_DEV_NVME, .check = blk_disk_check, .create = nvme_create, .resume = nvme_resume,
	.drain = nvme_drain, .destroy = nvme_destroy,
};
