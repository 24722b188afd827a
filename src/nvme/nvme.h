/* NVMe disks (`--device nvme,path=...`): one PCI NVMe controller (class
 * 01:08:02) per disk, with namespace 1 on a block backend; see nvme_ctrl.h
 * for the controller itself. */
#ifndef KVKIT_NVME_H
#define KVKIT_NVME_H
#include <stddef.h>

struct vm;
struct blk_backend;

/* Put a controller on the bus; label names the disk in messages (its path).
 * The backend is the device's from here on, even on failure. */
int nvme_create(struct vm *vm, struct blk_backend *be, const char *label, char *err, size_t errlen);
/* Wait for every request the disks hold (the guest has stopped). */
void nvme_drain_all(void);
void nvme_close_all(void);

#endif
