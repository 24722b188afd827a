/* The PIIX4 power management function (00:01.3) as OVMF uses it on an
 * i440FX machine: it programs the ACPI I/O base (PMBA, config 0x40) and
 * enables it (PMREGMISC, config 0x80), then reads the ACPI PM timer there
 * (base + 8) for every delay, and powers the machine off by writing S5
 * (SLP_TYP 0, SLP_EN) to PM1a_CNT (base + 4): Linux's shutdown goes that
 * way under UEFI, through the firmware's ResetSystem. Only UEFI boot
 * creates it; Linux's own ACPI (hardware-reduced) never looks at it. */
#ifndef KVKIT_PIIX4_PM_H
#define KVKIT_PIIX4_PM_H
#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>
#include "../pci/pci.h"

struct vm;

#define PIIX4_PM_BASE 0xb000 /* OVMF's PcdAcpiPmBaseAddress: the one base decoded */
#define PM_TIMER_HZ 3579545ULL

struct piix4_pm {
	struct pci_func f;
	pthread_mutex_t lock;
	uint16_t sts, en, cnt; /* PM1a status, enable, control */
	uint64_t t0_ns;        /* the timer counts from here */
	bool warned;
	void (*power_off)(void *opaque);
	void *opaque;
};

int piix4_pm_init(struct vm *vm);
/* The PCI function and the I/O block's state (tests build one this way). */
void piix4_pm_setup(struct piix4_pm *p, void (*power_off)(void *), void *opaque);
/* the I/O block, for tests: off within the block */
void piix4_pm_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write);

#endif
