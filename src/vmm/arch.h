/* What the core asks of the architecture. Declared here, implemented by
 * src/arch/x86/ (machine.c and cpu.c): the core includes no arch header,
 * and arch code may include the core's. */
#ifndef KVKIT_ARCH_H
#define KVKIT_ARCH_H
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

struct vcpu;
struct vm;

/* The VM-wide pieces KVM wants before memory and vCPUs (x86: TSS and
 * identity-map pages, the in-kernel interrupt controllers, the PIT). */
int arch_vm_init(struct vm *vm, char *err, size_t errlen);
/* How guest RAM is laid out: *low bytes from address 0 (below the MMIO
 * hole), the rest from *high_base. */
void arch_ram_split(uint64_t ram_bytes, uint64_t *low, uint64_t *high_base);
/* Fill the routing table with the legacy interrupt lines; returns the
 * first GSI left for MSIs. */
uint32_t arch_irq_routes(struct kvm_irq_routing *r);
/* Tell the PCI bus where 64-bit BARs may go (above RAM, within the guest's
 * physical address width). */
void arch_place_pci_windows(struct vm *vm);

int arch_vcpu_init(struct vcpu *c, char *err, size_t errlen);
/* One debug line: where the vCPU is and what its interrupt controller waits for. */
void arch_vcpu_describe(struct vcpu *c, char *buf, size_t len);

#endif
