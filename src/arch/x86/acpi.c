/* ACPI table builder. The DSDT is static AML compiled from dsdt.asl; the
 * other tables depend on the vCPU count and are built here. */
#include "acpi.h"
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include "../../pci/pci.h"
#include "../../util/log.h"
#include "../../vmm/vm.h"
#include "dsdt_aml.h"
#include "layout.h"
#include "../../util/bytes.h"

struct __attribute__((packed)) acpi_header {
	char sig[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
};

struct __attribute__((packed)) gas {
	uint8_t space, bit_width, bit_offset, access_size;
	uint64_t address;
};

struct __attribute__((packed)) rsdp {
	char sig[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
	uint32_t length;
	uint64_t xsdt;
	uint8_t ext_checksum;
	uint8_t reserved[3];
};

struct __attribute__((packed)) fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl, dsdt;
	uint8_t reserved0, pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt, pm1b_evt, pm1a_cnt, pm1b_cnt, pm2_cnt, pm_tmr, gpe0, gpe1;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_len, gpe1_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl, x_dsdt;
	struct gas x_pm1a_evt, x_pm1b_evt, x_pm1a_cnt, x_pm1b_cnt, x_pm2_cnt, x_pm_tmr, x_gpe0, x_gpe1;
	struct gas sleep_control, sleep_status;
	uint64_t hypervisor_id;
};

_Static_assert(sizeof(struct fadt) == 276, "FADT layout");

#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PWR_BUTTON (1u << 4) /* 1 = power button is a control-method device */
#define FADT_F_SLP_BUTTON (1u << 5)
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED (1u << 20)
#define BOOT_ARCH_VGA_NOT_PRESENT (1u << 2)
#define BOOT_ARCH_CMOS_RTC_NOT_PRESENT (1u << 5)


static uint8_t checksum(const void *p, size_t len)
{
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s += ((const uint8_t *)p)[i];
	return (uint8_t)-s;
}

static void header(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->sig, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, "KVKIT ", 6);
	memcpy(h->oem_table_id, "KVKITVM ", 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "KVKT", 4);
	h->creator_revision = 1;
	h->checksum = 0;
	h->checksum = checksum(h, len);
}

/* Bump allocator over a table area, 16-byte aligned. It also records
 * where the tables hold pointers to each other and which ranges carry a
 * checksum, for the firmware's table loader (UEFI boot). */
#define MAX_FIXUPS 32
struct area {
	uint8_t *base;
	uint64_t gpa, used, cap;
	unsigned nptr, nsum;
	struct { uint32_t off; uint8_t size; } ptr[MAX_FIXUPS];
	struct { uint32_t at, start, len; } sum[MAX_FIXUPS];
	bool overflow;
};

static void *alloc(struct area *a, uint64_t len, uint64_t *gpa)
{
	a->used = (a->used + 15) & ~15ULL;
	if (a->used + len > a->cap)
		return NULL;
	void *p = a->base + a->used;
	memset(p, 0, len);
	*gpa = a->gpa + a->used;
	a->used += len;
	return p;
}

static void note_ptr(struct area *a, const void *field, uint8_t size)
{
	if (a->nptr == MAX_FIXUPS) {
		a->overflow = true;
		return;
	}
	a->ptr[a->nptr].off = (uint32_t)((const uint8_t *)field - a->base);
	a->ptr[a->nptr++].size = size;
}

/* The table at table (len bytes) carries a checksum the loader must set. */
static void note_sum(struct area *a, const void *table, uint32_t len)
{
	if (a->nsum == MAX_FIXUPS) {
		a->overflow = true;
		return;
	}
	uint32_t start = (uint32_t)((const uint8_t *)table - a->base);
	a->sum[a->nsum].at = start + offsetof(struct acpi_header, checksum);
	a->sum[a->nsum].start = start;
	a->sum[a->nsum++].len = len;
}

static void table_header(struct area *a, void *table, const char *sig, uint32_t len, uint8_t rev)
{
	header(table, sig, len, rev);
	note_sum(a, table, len);
}

/* dsdt.asl's QWordMemory placeholder: the window for 64-bit BARs. Its
 * minimum sits 14 bytes into the descriptor (tag 0x8A, length, type,
 * flags, granularity), then maximum, translation and length. */
#define MMIO64_PLACEHOLDER 0x4B564B6400000000ULL

static bool patch_mmio64(uint8_t *aml, size_t len)
{
	uint64_t base, size;
	pci_get_mmio64(&base, &size);
	for (size_t i = 14; i + 32 <= len; i++) {
		uint64_t v;
		memcpy(&v, aml + i, 8);
		if (v != MMIO64_PLACEHOLDER || aml[i - 14] != 0x8a)
			continue;
		wr64(aml + i, size ? base : 0);
		wr64(aml + i + 8, size ? base + size - 1 : 0);
		wr64(aml + i + 24, size); /* 0: Linux ignores the descriptor */
		struct acpi_header *h = (struct acpi_header *)aml;
		h->checksum = 0;
		h->checksum = checksum(aml, len);
		return true;
	}
	return false;
}

/* DSDT, FADT, MADT, MCFG and the XSDT that lists them; returns the XSDT's
 * address (a->gpa based) or 0 if the area is too small. */
static uint64_t build_tables(unsigned ncpus, struct area *a)
{
	uint64_t xsdt_gpa, fadt_gpa, dsdt_gpa, madt_gpa, mcfg_gpa;
	uint8_t *dsdt = alloc(a, sizeof(dsdt_aml_code), &dsdt_gpa);
	if (!dsdt)
		return 0;
	memcpy(dsdt, dsdt_aml_code, sizeof(dsdt_aml_code));
	if (!patch_mmio64(dsdt, sizeof(dsdt_aml_code)))
		return 0; /* dsdt.asl lost its placeholder: a build error */
	note_sum(a, dsdt, sizeof(dsdt_aml_code)); /* the AML comes with its checksum; the loader resets it */

	struct fadt *f = alloc(a, sizeof(*f), &fadt_gpa);
	if (!f)
		return 0;
	f->flags = FADT_F_HW_REDUCED | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP | FADT_F_WBINVD;
	f->iapc_boot_arch = BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_CMOS_RTC_NOT_PRESENT;
	f->x_dsdt = dsdt_gpa;
	f->dsdt = (uint32_t)dsdt_gpa;
	note_ptr(a, &f->x_dsdt, 8);
	note_ptr(a, &f->dsdt, 4);
	f->minor_version = 3;
	f->reset_reg = (struct gas){ .space = 1, .bit_width = 8, .access_size = 1, .address = PORT_RESET_CF9 };
	f->reset_value = 0x6;
	f->sleep_control = (struct gas){ .space = 1, .bit_width = 8, .access_size = 1, .address = PORT_ACPI_SLEEP_CTL };
	f->sleep_status = (struct gas){ .space = 1, .bit_width = 8, .access_size = 1, .address = PORT_ACPI_SLEEP_STS };
	memcpy(&f->hypervisor_id, "KVKIT   ", 8);
	table_header(a, f, "FACP", sizeof(*f), 6);

	/* MADT: local APIC per vCPU, IOAPIC, PC interrupt overrides, LINT1 = NMI */
	uint32_t madt_len = sizeof(struct acpi_header) + 8 + ncpus * 8 + 12 + 2 * 10 + 6;
	uint8_t *madt = alloc(a, madt_len, &madt_gpa);
	if (!madt)
		return 0;
	uint8_t *p = madt + sizeof(struct acpi_header);
	wr32(p, LAPIC_ADDR);
	wr32(p + 4, 1); /* PCAT_COMPAT: there is an 8259 pair */
	p += 8;
	for (unsigned i = 0; i < ncpus; i++, p += 8) {
		p[0] = 0; p[1] = 8; p[2] = i; p[3] = i;
		wr32(p + 4, 1); /* enabled */
	}
	p[0] = 1; p[1] = 12; p[2] = ncpus; /* IOAPIC id after the CPUs */
	wr32(p + 4, IOAPIC_ADDR);
	wr32(p + 8, 0);
	p += 12;
	/* ISA IRQ 0 (PIT) arrives on GSI 2 */
	p[0] = 2; p[1] = 10; p[2] = 0; p[3] = 0; wr32(p + 4, 2); wr16(p + 8, 0);
	p += 10;
	/* IRQ 9, the conventional SCI: level, active high */
	p[0] = 2; p[1] = 10; p[2] = 0; p[3] = 9; wr32(p + 4, 9); wr16(p + 8, 0xd);
	p += 10;
	p[0] = 4; p[1] = 6; p[2] = 0xff; wr16(p + 3, 0); p[5] = 1;
	table_header(a, madt, "APIC", madt_len, 5);

	uint32_t mcfg_len = sizeof(struct acpi_header) + 8 + 16;
	uint8_t *mcfg = alloc(a, mcfg_len, &mcfg_gpa);
	if (!mcfg)
		return 0;
	p = mcfg + sizeof(struct acpi_header) + 8;
	wr64(p, PCI_ECAM_START);
	wr16(p + 8, 0); /* segment */
	p[10] = 0;                /* first bus */
	p[11] = 0;                /* last bus */
	table_header(a, mcfg, "MCFG", mcfg_len, 1);

	uint64_t tables[] = { fadt_gpa, madt_gpa, mcfg_gpa };
	uint32_t xsdt_len = sizeof(struct acpi_header) + sizeof(tables);
	uint8_t *xsdt = alloc(a, xsdt_len, &xsdt_gpa);
	if (!xsdt)
		return 0;
	memcpy(xsdt + sizeof(struct acpi_header), tables, sizeof(tables));
	for (unsigned i = 0; i < sizeof(tables) / 8; i++)
		note_ptr(a, xsdt + sizeof(struct acpi_header) + 8 * i, 8);
	table_header(a, xsdt, "XSDT", xsdt_len, 1);
	return a->overflow ? 0 : xsdt_gpa;
}

static void fill_rsdp(struct rsdp *rsdp, uint64_t xsdt_gpa)
{
	memcpy(rsdp->sig, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, "KVKIT ", 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt = xsdt_gpa;
	rsdp->checksum = checksum(rsdp, 20);
	rsdp->ext_checksum = checksum(rsdp, sizeof(*rsdp));
}

uint64_t acpi_build_tables(struct vm *vm)
{
	struct area a = { .base = gmem_ptr(&vm->mem, ACPI_TABLES_ADDR, ACPI_TABLES_SIZE), .gpa = ACPI_TABLES_ADDR,
			  .cap = ACPI_TABLES_SIZE };
	uint64_t rsdp_gpa;
	if (!a.base)
		return 0;
	struct rsdp *rsdp = alloc(&a, sizeof(*rsdp), &rsdp_gpa);
	uint64_t xsdt_gpa = rsdp ? build_tables(vm->ncpus, &a) : 0;
	if (!xsdt_gpa)
		return 0;
	fill_rsdp(rsdp, xsdt_gpa);
	log_debug("ACPI tables at 0x%llx (%llu bytes)", (unsigned long long)ACPI_TABLES_ADDR,
		  (unsigned long long)a.used);
	return rsdp_gpa;
}

/* ---- the same tables for the firmware: QEMU's table loader ---- */

#define LOADER_FILESZ 56
#define CMD_ALLOCATE 1
#define CMD_ADD_POINTER 2
#define CMD_ADD_CHECKSUM 3
#define ZONE_HIGH 1
#define ZONE_FSEG 2
#define FILE_RSDP "etc/acpi/rsdp"
#define FILE_TABLES "etc/acpi/tables"

struct __attribute__((packed)) loader_cmd {
	uint32_t command;
	union {
		struct { char file[LOADER_FILESZ]; uint32_t align; uint8_t zone; } alloc;
		struct { char dest[LOADER_FILESZ]; char src[LOADER_FILESZ]; uint32_t offset; uint8_t size; } ptr;
		struct { char file[LOADER_FILESZ]; uint32_t result; uint32_t start, length; } sum;
		uint8_t pad[124];
	} u;
};
_Static_assert(sizeof(struct loader_cmd) == 128, "loader command size");

static void name(char *dst, const char *src) { strncpy(dst, src, LOADER_FILESZ - 1); }

int acpi_firmware_files(unsigned ncpus, int (*add)(void *opaque, const char *name, const void *data, uint32_t len),
			void *opaque)
{
	static uint8_t buf[ACPI_TABLES_SIZE];
	struct area a = { .base = buf, .gpa = 0, .cap = sizeof(buf) };
	uint64_t xsdt = build_tables(ncpus, &a);
	if (!xsdt)
		return -1;
	struct rsdp rsdp = { 0 };
	fill_rsdp(&rsdp, xsdt);
	/* OVMF sets a checksum as 0 - sum(range), the checksum byte included
	 * (SeaBIOS subtracts the sum from the byte instead): it comes out right
	 * only if the byte starts at 0, as in QEMU's blobs. With the checksums
	 * of the direct-boot layout left in, every table failed OVMF's check,
	 * none was installed, and the guest booted without ACPI. */
	for (unsigned i = 0; i < a.nsum; i++)
		buf[a.sum[i].at] = 0;
	rsdp.checksum = rsdp.ext_checksum = 0;

	struct loader_cmd cmds[2 + 1 + 2 + 2 * MAX_FIXUPS];
	unsigned n = 0;
	memset(cmds, 0, sizeof(cmds));
	cmds[n].command = CMD_ALLOCATE;
	name(cmds[n].u.alloc.file, FILE_RSDP);
	cmds[n].u.alloc.align = 16;
	cmds[n++].u.alloc.zone = ZONE_FSEG;
	cmds[n].command = CMD_ALLOCATE;
	name(cmds[n].u.alloc.file, FILE_TABLES);
	cmds[n].u.alloc.align = 64;
	cmds[n++].u.alloc.zone = ZONE_HIGH;
	for (unsigned i = 0; i < a.nptr; i++, n++) {
		cmds[n].command = CMD_ADD_POINTER;
		name(cmds[n].u.ptr.dest, FILE_TABLES);
		name(cmds[n].u.ptr.src, FILE_TABLES);
		cmds[n].u.ptr.offset = a.ptr[i].off;
		cmds[n].u.ptr.size = a.ptr[i].size;
	}
	cmds[n].command = CMD_ADD_POINTER;
	name(cmds[n].u.ptr.dest, FILE_RSDP);
	name(cmds[n].u.ptr.src, FILE_TABLES);
	cmds[n].u.ptr.offset = offsetof(struct rsdp, xsdt);
	cmds[n++].u.ptr.size = 8;
	for (unsigned i = 0; i < a.nsum; i++, n++) {
		cmds[n].command = CMD_ADD_CHECKSUM;
		name(cmds[n].u.sum.file, FILE_TABLES);
		cmds[n].u.sum.result = a.sum[i].at;
		cmds[n].u.sum.start = a.sum[i].start;
		cmds[n].u.sum.length = a.sum[i].len;
	}
	cmds[n].command = CMD_ADD_CHECKSUM; /* ACPI 1.0 part, then the whole RSDP */
	name(cmds[n].u.sum.file, FILE_RSDP);
	cmds[n].u.sum.result = offsetof(struct rsdp, checksum);
	cmds[n++].u.sum.length = 20;
	cmds[n].command = CMD_ADD_CHECKSUM;
	name(cmds[n].u.sum.file, FILE_RSDP);
	cmds[n].u.sum.result = offsetof(struct rsdp, ext_checksum);
	cmds[n++].u.sum.length = sizeof(rsdp);

	if (add(opaque, FILE_RSDP, &rsdp, sizeof(rsdp)) < 0 || add(opaque, FILE_TABLES, buf, (uint32_t)a.used) < 0 ||
	    add(opaque, "etc/table-loader", cmds, n * (uint32_t)sizeof(cmds[0])) < 0)
		return -1;
	return 0;
}
