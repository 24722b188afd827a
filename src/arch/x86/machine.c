/* The x86 machine as the core sees it (src/vmm/arch.h): KVM's VM-wide
 * setup, the memory map and the legacy interrupt routing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include "../../pci/pci.h"
#include "../../vmm/arch.h"
#include "../../vmm/vm.h"
#include "cpu.h"
#include "layout.h"

static int fail(char *err, size_t errlen, const char *what)
{
	int e = errno;
	snprintf(err, errlen, "%s: %s", what, strerror(e));
	return -e;
}

int arch_vm_init(struct vm *vm, char *err, size_t errlen)
{
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		return fail(err, errlen, "KVM_SET_TSS_ADDR");
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return fail(err, errlen, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail(err, errlen, "KVM_CREATE_IRQCHIP");
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return fail(err, errlen, "KVM_CREATE_PIT2");
	return 0;
}

void arch_ram_split(uint64_t ram_bytes, uint64_t *low, uint64_t *high_base)
{
	*low = ram_bytes < MMIO_HOLE_START ? ram_bytes : MMIO_HOLE_START;
	*high_base = RAM_ABOVE_4G;
}

/* GSI 0-15 on the PICs (but 2, the cascade) and 0-23 on the IOAPIC, where
 * the timer (GSI 0) is wired to pin 2. */
uint32_t arch_irq_routes(struct kvm_irq_routing *r)
{
	r->nr = 0;
	for (uint32_t gsi = 0; gsi < 24; gsi++) {
		if (gsi < 16 && gsi != 2) {
			struct kvm_irq_routing_entry *e = &r->entries[r->nr++];
			memset(e, 0, sizeof(*e));
			e->gsi = gsi;
			e->type = KVM_IRQ_ROUTING_IRQCHIP;
			e->u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
			e->u.irqchip.pin = gsi % 8;
		}
		if (gsi == 2)
			continue;
		struct kvm_irq_routing_entry *e = &r->entries[r->nr++];
		memset(e, 0, sizeof(*e));
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		e->u.irqchip.pin = gsi == 0 ? 2 : gsi;
	}
	return GSI_MSI_BASE;
}

/* 64-bit BARs (DAX windows) go above RAM, from the next 1 GiB boundary up
 * to the guest's physical address width; the DSDT tells the guest so. */
void arch_place_pci_windows(struct vm *vm)
{
	uint64_t top = RAM_ABOVE_4G + vm->high_ram;
	uint64_t base = (top + PCI_MMIO64_ALIGN - 1) & ~(PCI_MMIO64_ALIGN - 1);
	unsigned bits = x86_phys_bits(vm);
	uint64_t end = bits < 64 ? 1ull << bits : 0;
	pci_set_mmio64(base, end > base ? end - base : 0);
}
