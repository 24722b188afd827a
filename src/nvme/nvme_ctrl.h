/* An NVMe controller (base specification 1.4, the part a Linux or UEFI
 * driver uses): one namespace on a block backend, an admin queue pair and
 * up to NVME_MAX_IOQ I/O queue pairs, PRP data pointers (no SGLs).
 *
 * This is the model only, free of KVM and PCI so that unit tests and the
 * fuzzer drive it directly; nvme_pci.c puts it on the bus. Threads: register
 * and doorbell accesses come from vCPU threads (nvme_ctrl_mmio), everything
 * that reads queues or guest memory runs on the I/O thread
 * (nvme_ctrl_process and the backend's completions); one lock covers both.
 *
 * The guest is hostile: queue bases, PRP entries and lists, LBA ranges,
 * queue ids and doorbell values are all checked; a command that fails a
 * check completes with the NVMe status that names the problem. */
#ifndef KVKIT_NVME_CTRL_H
#define KVKIT_NVME_CTRL_H
#include <stdbool.h>
#include <stdint.h>

struct gmem;
struct blk_backend;
struct nvme_ctrl;

#define NVME_MAX_IOQ 16         /* I/O queue pairs at most */
#define NVME_REG_SIZE 0x1000    /* controller registers; doorbells follow */
#define NVME_DB_END (NVME_REG_SIZE + (NVME_MAX_IOQ + 1) * 8)

/* A submission queue entry as the guest writes it (4.2). */
struct nvme_sqe {
	uint8_t opc, flags;
	uint16_t cid;
	uint32_t nsid, cdw2, cdw3;
	uint64_t mptr, prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};
_Static_assert(sizeof(struct nvme_sqe) == 64, "submission queue entry");

struct nvme_ctrl_ops {
	void (*irq)(void *opaque, unsigned vector); /* raise an MSI-X vector */
	void (*wake)(void *opaque);                 /* have nvme_ctrl_process run on the I/O thread */
	/* The guest gave shadow doorbells (on) or reset the controller (off):
	 * the I/O queues' doorbell writes may now go to an eventfd that calls
	 * wake, as their values are read from guest memory. May be NULL. */
	void (*shadow_doorbells)(void *opaque, bool on);
};

struct nvme_ctrl_params {
	const char *serial;  /* 20 characters at most (identify data) */
	unsigned max_ioq;    /* I/O queue pairs offered, 1..NVME_MAX_IOQ */
	unsigned nvec;       /* interrupt vectors the function has */
	uint8_t uuid[16];    /* the namespace's identifier */
};

/* The backend's complete/batch_done callbacks are taken over. */
struct nvme_ctrl *nvme_ctrl_new(const struct gmem *mem, struct blk_backend *be, const struct nvme_ctrl_params *p,
				const struct nvme_ctrl_ops *ops, void *opaque);
void nvme_ctrl_free(struct nvme_ctrl *c);
/* A register or doorbell access at off (< NVME_DB_END); vCPU thread. */
void nvme_ctrl_mmio(struct nvme_ctrl *c, uint64_t off, uint8_t *data, unsigned len, bool is_write);
/* Fetch and run what the guest queued; I/O thread. */
void nvme_ctrl_process(struct nvme_ctrl *c);
/* Requests the backend still holds (for draining at exit). */
unsigned nvme_ctrl_inflight(struct nvme_ctrl *c);

#endif
