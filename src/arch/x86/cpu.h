/* x86 vCPU setup: CPUID, MSRs, FPU, LAPIC, and the registers a boot protocol
 * hands to the first instruction. */
#ifndef KVKIT_X86_CPU_H
#define KVKIT_X86_CPU_H
#include <stddef.h>
#include <stdint.h>

struct vcpu;
struct vm;

/* The guest's physical address width (CPUID 0x80000008, as KVM passes it). */
unsigned x86_phys_bits(struct vm *vm);

/* Write GDT, IDT and identity page tables for the first 4 GiB into guest RAM. */
void x86_write_boot_tables(struct vm *vm);
/* Without firmware, F000:FFF0 would hold zeros; an OS that restarts by
 * jumping to the reset vector (Linux does by default) must reset the VM. */
void x86_write_reset_vector(struct vm *vm);
/* 64-bit boot protocol entry: long mode, paging on, rsi = zero page. */
int x86_set_regs_long(struct vcpu *c, uint64_t rip, uint64_t rsi);
/* PVH entry: 32-bit protected mode, paging off, ebx = hvm_start_info. */
int x86_set_regs_pvh(struct vcpu *c, uint64_t rip, uint64_t rbx);

#endif
