/* PCI bus 0: host bridge, config space through ports CF8/CFC and ECAM,
 * memory BARs assigned by kvkit (32-bit below 4 GiB, 64-bit prefetchable
 * above RAM), MSI-X. */
#ifndef KVKIT_PCI_H
#define KVKIT_PCI_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "../vmm/bus.h"

struct vm;
struct pci_func;

struct pci_bar {
	uint64_t addr, size;
	bool mem64; /* 64-bit prefetchable: this register and the next hold the address */
	bus_handler fn;
	void *opaque;
};

struct pci_func {
	uint8_t cfg[256];
	uint8_t wmask[256];
	struct pci_bar bar[6];
	uint8_t last_cap; /* offset of the last capability, 0 if none */
	unsigned cap_end; /* first free config byte after the capabilities */
	int slot;
	/* called after the guest moved a BAR (old address, new address); a
	 * 64-bit BAR's address is reported only while memory decoding is on
	 * (0 otherwise), so the half-written address between the two register
	 * writes of a move is never acted on */
	void (*bar_moved)(struct pci_func *f, int bar, uint64_t old_addr, uint64_t new_addr);
	/* called after any config write, e.g. for the MSI-X control word */
	void (*cfg_written)(struct pci_func *f, unsigned off, unsigned len);
	void *opaque;
};

/* i440fx: present the i440FX host bridge ID (UEFI boot) */
int pci_init(struct vm *vm, bool i440fx);
void pci_func_init(struct pci_func *f, uint16_t vendor, uint16_t device, uint32_t class_code,
		   uint16_t subsys_vendor, uint16_t subsys_id, uint8_t revision);
/* Append a capability (data[0] = id; next pointer filled in); returns its offset. */
int pci_add_cap(struct pci_func *f, const void *data, unsigned len);
int pci_add_bar(struct pci_func *f, int idx, uint64_t size, bus_handler fn, void *opaque);
/* A 64-bit prefetchable memory BAR in registers idx and idx + 1 (idx + 1
 * must stay unused), placed in the 64-bit window. */
int pci_add_bar64(struct pci_func *f, int idx, uint64_t size, bus_handler fn, void *opaque);
/* The window above RAM for 64-bit BARs, [base, base + size); set after
 * pci_init, before functions register. Without one (size 0) 64-bit BARs
 * go below 4 GiB with the others. */
void pci_set_mmio64(uint64_t base, uint64_t size);
void pci_get_mmio64(uint64_t *base, uint64_t *size);
/* Put the function on the next free slot of bus 0 and assign its BARs. */
int pci_register(struct vm *vm, struct pci_func *f);
/* Put a BAR-less function at a fixed device/function number of bus 0 (the
 * PIIX4 power management function at 00:01.3, which firmware reaches by
 * number; a non-multifunction device 0 of that slot hides it from scans). */
int pci_register_at(struct pci_func *f, int dev, int fn);

/* ---- MSI-X ---- */
struct msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct msix {
	struct vm *vm;
	struct pci_func *f;
	pthread_mutex_t lock;
	unsigned nvec;
	unsigned cap;
	bool enabled, fmask;
	struct msix_entry *table;
	uint64_t *pba;
	int *gsi, *efd;
};

int msix_init(struct msix *m, struct vm *vm, struct pci_func *f, unsigned nvec, int bar,
	      uint32_t table_off, uint32_t pba_off);
void msix_table_access(struct msix *m, uint64_t off, uint8_t *data, unsigned len, bool is_write);
void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, unsigned len, bool is_write);
void msix_cfg_written(struct msix *m);
/* Raise vector vec (no-op for 0xffff or out of range). */
void msix_notify(struct msix *m, unsigned vec);

#endif
