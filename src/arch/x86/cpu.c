/* x86 vCPU setup. CPUID comes from KVM_GET_SUPPORTED_CPUID, patched for our
 * topology (one core per vCPU, one socket) and with VMX/SVM hidden unless
 * --nested asks for them. */
#include "cpu.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include "../../vmm/arch.h"
#include "../../vmm/vm.h"
#include "layout.h"

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

#define CPUID_MAX_ENTRIES 256

static int avx_present(const struct kvm_cpuid2 *cpuid)
{
	for (unsigned i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == 1)
			return (cpuid->entries[i].ecx >> 28) & 1;
	return 0;
}

static void patch_cpuid(struct kvm_cpuid2 *cpuid, unsigned id, unsigned ncpus, int nested)
{
	for (unsigned i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		switch (e->function) {
		case 1:
			/* APIC id, logical processor count, hypervisor bit */
			e->ebx = (e->ebx & 0x0000ffff) | (id << 24) | ((ncpus & 0xff) << 16);
			e->ecx |= 1u << 31;
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: the count field is valid */
			if (!nested)
				e->ecx &= ~(1u << 5); /* VMX */
			break;
		case 4: {
			/* deterministic cache parameters: cores per package */
			uint32_t cores = ncpus > 64 ? 63 : ncpus - 1;
			e->eax = (e->eax & 0x03ffffff) | (cores << 26);
			e->eax &= ~(0xfffu << 14); /* one logical CPU shares each cache */
			break;
		}
		case 6:
			e->ecx &= ~(1u << 3); /* no energy-perf bias MSR */
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC topology: level 0 = SMT (1 thread), level 1 = core */
			e->edx = id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = 0x100;
			} else if (e->index == 1) {
				uint32_t shift = 0;
				while ((1u << shift) < ncpus)
					shift++;
				e->eax = shift;
				e->ebx = ncpus;
				e->ecx = 0x200 | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0xd:
			/* XSAVE components must agree with the feature bits: a host
			 * without AVX (e.g. nested under TCG) may still list YMM */
			if (e->index == 0 && !(avx_present(cpuid)))
				e->eax &= ~((1u << 2) | (7u << 5));
			break;
		case 0x80000001:
			if (!nested)
				e->ecx &= ~(1u << 2); /* SVM */
			break;
		case 0x80000008: {
			uint32_t shift = 0;
			while ((1u << shift) < ncpus)
				shift++;
			e->ecx = (shift << 12) | ((ncpus - 1) & 0xff);
			break;
		}
		}
	}
}

static int set_msrs(struct vcpu *c)
{
	static const uint32_t idx[] = { MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
					MSR_STAR, MSR_CSTAR, MSR_KERNEL_GS_BASE, MSR_SYSCALL_MASK, MSR_LSTAR,
					MSR_IA32_TSC, MSR_IA32_MISC_ENABLE, MSR_MTRR_DEF_TYPE };
	const unsigned n = sizeof(idx) / sizeof(idx[0]);
	/* struct kvm_msrs ends in a flexible array: back it with enough bytes */
	union {
		struct kvm_msrs h;
		uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(idx) / sizeof(idx[0]) * sizeof(struct kvm_msr_entry)];
	} m;
	memset(&m, 0, sizeof(m));
	m.h.nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		m.h.entries[i].index = idx[i];
		if (idx[i] == MSR_IA32_MISC_ENABLE)
			m.h.entries[i].data = 1; /* fast string operations */
		if (idx[i] == MSR_MTRR_DEF_TYPE)
			m.h.entries[i].data = (1u << 11) | 6; /* MTRRs on, default write-back */
	}
	int r = ioctl(c->fd, KVM_SET_MSRS, &m);
	return r < 0 ? -errno : 0;
}

/* What KVM can give a guest (freed by the caller); NULL with errno set. */
static struct kvm_cpuid2 *supported_cpuid(struct vm *vm)
{
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!cpuid)
		return NULL;
	cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		int e = errno;
		free(cpuid);
		errno = e;
		return NULL;
	}
	return cpuid;
}

unsigned x86_phys_bits(struct vm *vm)
{
	unsigned bits = 36; /* what a CPU without leaf 0x80000008 has */
	struct kvm_cpuid2 *cpuid = supported_cpuid(vm);
	for (unsigned i = 0; cpuid && i < cpuid->nent; i++)
		if (cpuid->entries[i].function == 0x80000008 && (cpuid->entries[i].eax & 0xff) >= 32)
			bits = cpuid->entries[i].eax & 0xff;
	free(cpuid);
	return bits;
}

int arch_vcpu_init(struct vcpu *c, char *err, size_t errlen)
{
	struct vm *vm = c->vm;
	struct kvm_cpuid2 *cpuid = supported_cpuid(vm);
	if (!cpuid) {
		int e = errno;
		if (e == ENOMEM)
			snprintf(err, errlen, "out of memory");
		else
			snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
		return -e;
	}
	patch_cpuid(cpuid, c->id, vm->ncpus, vm->nested);
	int r = ioctl(c->fd, KVM_SET_CPUID2, cpuid);
	free(cpuid);
	if (r < 0) {
		snprintf(err, errlen, "KVM_SET_CPUID2: %s", strerror(errno));
		return -errno;
	}
	r = set_msrs(c);
	if (r < 0) {
		snprintf(err, errlen, "KVM_SET_MSRS: %s", strerror(-r));
		return r;
	}
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0) {
		snprintf(err, errlen, "KVM_SET_FPU: %s", strerror(errno));
		return -errno;
	}
	/* LINT0 = ExtINT (the PIC), LINT1 = NMI, as firmware would leave them */
	struct kvm_lapic_state lapic;
	if (ioctl(c->fd, KVM_GET_LAPIC, &lapic) == 0) {
		uint32_t *lvt0 = (uint32_t *)&lapic.regs[0x350], *lvt1 = (uint32_t *)&lapic.regs[0x360];
		*lvt0 = (*lvt0 & ~0x700u) | (7u << 8);
		*lvt1 = (*lvt1 & ~0x700u) | (4u << 8);
		ioctl(c->fd, KVM_SET_LAPIC, &lapic);
	}
	return 0;
}

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0x000f0000) << 32) | ((uint64_t)(base & 0x00ffffff) << 16) |
	       (uint64_t)(limit & 0x0000ffff);
}

/* Selectors follow the boot protocol: __BOOT_CS = 0x10, __BOOT_DS = 0x18. */
static const uint64_t boot_gdt_flags[] = { 0, 0, 0xa09b, 0xc093, 0x808b };
static const uint64_t pvh_gdt_flags[] = { 0, 0, 0xc09b, 0xc093, 0x808b };

void x86_write_boot_tables(struct vm *vm)
{
	uint64_t *pml4 = gmem_ptr(&vm->mem, PML4_ADDR, 4096);
	uint64_t *pdpt = gmem_ptr(&vm->mem, PDPT_ADDR, 4096);
	uint64_t *pd = gmem_ptr(&vm->mem, PD_ADDR, 4 * 4096);
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = PDPT_ADDR | 3;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (PD_ADDR + i * 4096) | 3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* 2 MiB pages, present, writable */
	memset(gmem_ptr(&vm->mem, IDT_ADDR, 8), 0, 8);
}

void x86_write_reset_vector(struct vm *vm)
{
	/* mov al, 0xfe; out 0x64, al (i8042 reset); cli; hlt; jmp $ */
	static const uint8_t stub[] = { 0xb0, 0xfe, 0xe6, 0x64, 0xfa, 0xf4, 0xeb, 0xfe };
	uint8_t *p = gmem_ptr(&vm->mem, 0xffff0, sizeof(stub));
	if (p)
		memcpy(p, stub, sizeof(stub));
}

static void seg(struct kvm_segment *s, uint16_t sel, uint64_t flags)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = 0;
	s->limit = 0xffffffff;
	s->type = flags & 0xf;
	s->present = (flags >> 7) & 1;
	s->dpl = (flags >> 5) & 3;
	s->db = (flags >> 14) & 1;
	s->s = (flags >> 4) & 1;
	s->l = (flags >> 13) & 1;
	s->g = (flags >> 15) & 1;
}

static int set_regs(struct vcpu *c, uint64_t rip, uint64_t rsi, uint64_t rbx, int longmode)
{
	struct vm *vm = c->vm;
	const uint64_t *flags = longmode ? boot_gdt_flags : pvh_gdt_flags;
	uint64_t *gdt = gmem_ptr(&vm->mem, GDT_ADDR, 5 * 8);
	struct kvm_sregs sregs;

	for (int i = 0; i < 5; i++)
		gdt[i] = gdt_entry(flags[i], 0, i == 4 ? 0x67 : 0xfffff);
	if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.gdt.base = GDT_ADDR;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = IDT_ADDR;
	sregs.idt.limit = 7;
	seg(&sregs.cs, 0x10, flags[2]);
	seg(&sregs.ds, 0x18, flags[3]);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	seg(&sregs.tr, 0x20, flags[4]);
	sregs.tr.limit = 0x67;
	sregs.tr.g = 0;
	sregs.tr.type = 11; /* busy 64-bit TSS */
	if (longmode) {
		sregs.cr3 = PML4_ADDR;
		sregs.cr4 |= 1u << 5;             /* PAE */
		sregs.cr0 = 0x80000001 | 0x10;   /* PG | PE | ET */
		sregs.efer |= 0x500;             /* LME | LMA */
	} else {
		sregs.cr0 = 0x11; /* PE | ET, paging off */
		sregs.cr4 = 0;
		sregs.efer = 0;
	}
	if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	struct kvm_regs regs = { .rflags = 2, .rip = rip, .rsi = rsi, .rbx = rbx, .rsp = BOOT_STACK, .rbp = BOOT_STACK };
	if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

int x86_set_regs_long(struct vcpu *c, uint64_t rip, uint64_t rsi) { return set_regs(c, rip, rsi, 0, 1); }
int x86_set_regs_pvh(struct vcpu *c, uint64_t rip, uint64_t rbx) { return set_regs(c, rip, 0, rbx, 0); }

/* 32-bit LAPIC register at offset off of the KVM_GET_LAPIC page */
static uint32_t apic_reg(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;
	memcpy(&v, l->regs + off, sizeof(v));
	return v;
}

/* highest vector set in a 256-bit LAPIC bitmap (ISR 0x100, IRR 0x200), -1 if none */
static int apic_top(const struct kvm_lapic_state *l, unsigned base)
{
	for (int i = 7; i >= 0; i--) {
		uint32_t w = apic_reg(l, base + i * 16);
		if (w)
			return i * 32 + 31 - __builtin_clz(w);
	}
	return -1;
}

void arch_vcpu_describe(struct vcpu *c, char *buf, size_t len)
{
	struct kvm_regs r = { 0 };
	struct kvm_mp_state mp = { 0 };
	struct kvm_vcpu_events ev = { 0 };
	struct kvm_lapic_state l = { 0 };
	/* TSC and TSC_DEADLINE: struct kvm_msrs ends in a flexible array */
	union {
		struct kvm_msrs h;
		uint8_t raw[sizeof(struct kvm_msrs) + 2 * sizeof(struct kvm_msr_entry)];
	} m = { .h.nmsrs = 2 };
	struct kvm_msr_entry *e = m.h.entries;
	e[0].index = 0x10;
	e[1].index = 0x6e0;
	ioctl(c->fd, KVM_GET_REGS, &r);
	ioctl(c->fd, KVM_GET_MP_STATE, &mp);
	ioctl(c->fd, KVM_GET_VCPU_EVENTS, &ev);
	ioctl(c->fd, KVM_GET_LAPIC, &l);
	ioctl(c->fd, KVM_GET_MSRS, &m);
	int64_t dl = e[1].data ? (int64_t)(e[1].data - e[0].data) : 0;
	snprintf(buf, len,
		 "rip %#llx IF %d mp_state %u irq injected %d nmi pending %d | lapic TPR %#x ISR top %d IRR top %d "
		 "LVTT %#x TMICT %u TMCCT %u tsc-deadline %s%lld cycles",
		 (unsigned long long)r.rip, !!(r.rflags & 0x200), mp.mp_state, ev.interrupt.injected, ev.nmi.pending,
		 apic_reg(&l, 0x80), apic_top(&l, 0x100), apic_top(&l, 0x200), apic_reg(&l, 0x320), apic_reg(&l, 0x380),
		 apic_reg(&l, 0x390), e[1].data ? "in " : "off ", (long long)dl);
}
