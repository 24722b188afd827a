/* ACPI table builder. The DSDT is static AML compiled from dsdt.asl; the
 * other tables depend on the vCPU count and are built here. */
#include "acpi.h"
#include <string.h>
#include "../../util/log.h"
#include "../../vmm/vm.h"
#include "dsdt_aml.h"
#include "layout.h"

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

static void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

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

/* Bump allocator over the ACPI area, 16-byte aligned. */
struct area {
	uint8_t *base;
	uint64_t gpa, used;
};

static void *alloc(struct area *a, uint64_t len, uint64_t *gpa)
{
	a->used = (a->used + 15) & ~15ULL;
	if (a->used + len > ACPI_TABLES_SIZE)
		return NULL;
	void *p = a->base + a->used;
	memset(p, 0, len);
	*gpa = a->gpa + a->used;
	a->used += len;
	return p;
}

uint64_t acpi_build_tables(struct vm *vm)
{
	struct area a = { .base = gmem_ptr(&vm->mem, ACPI_TABLES_ADDR, ACPI_TABLES_SIZE), .gpa = ACPI_TABLES_ADDR };
	uint64_t rsdp_gpa, xsdt_gpa, fadt_gpa, dsdt_gpa, madt_gpa, mcfg_gpa;
	if (!a.base)
		return 0;

	struct rsdp *rsdp = alloc(&a, sizeof(*rsdp), &rsdp_gpa);
	if (!rsdp)
		return 0;

	uint8_t *dsdt = alloc(&a, sizeof(dsdt_aml_code), &dsdt_gpa);
	if (!dsdt)
		return 0;
	memcpy(dsdt, dsdt_aml_code, sizeof(dsdt_aml_code));

	struct fadt *f = alloc(&a, sizeof(*f), &fadt_gpa);
	if (!f)
		return 0;
	f->flags = FADT_F_HW_REDUCED | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP | FADT_F_WBINVD;
	f->iapc_boot_arch = BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_CMOS_RTC_NOT_PRESENT;
	f->x_dsdt = dsdt_gpa;
	f->dsdt = (uint32_t)dsdt_gpa;
	f->minor_version = 3;
	f->reset_reg = (struct gas){ .space = 1, .bit_width = 8, .access_size = 1, .address = PORT_RESET_CF9 };
	f->reset_value = 0x6;
	f->sleep_control = (struct gas){ .space = 1, .bit_width = 8, .access_size = 1, .address = PORT_ACPI_SLEEP_CTL };
	f->sleep_status = (struct gas){ .space = 1, .bit_width = 8, .access_size = 1, .address = PORT_ACPI_SLEEP_STS };
	memcpy(&f->hypervisor_id, "KVKIT   ", 8);
	header(&f->h, "FACP", sizeof(*f), 6);

	/* MADT: local APIC per vCPU, IOAPIC, PC interrupt overrides, LINT1 = NMI */
	uint32_t madt_len = sizeof(struct acpi_header) + 8 + vm->ncpus * 8 + 12 + 2 * 10 + 6;
	uint8_t *madt = alloc(&a, madt_len, &madt_gpa);
	if (!madt)
		return 0;
	uint8_t *p = madt + sizeof(struct acpi_header);
	wr32(p, LAPIC_ADDR);
	wr32(p + 4, 1); /* PCAT_COMPAT: there is an 8259 pair */
	p += 8;
	for (unsigned i = 0; i < vm->ncpus; i++, p += 8) {
		p[0] = 0; p[1] = 8; p[2] = i; p[3] = i;
		wr32(p + 4, 1); /* enabled */
	}
	p[0] = 1; p[1] = 12; p[2] = vm->ncpus; /* IOAPIC id after the CPUs */
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
	header((struct acpi_header *)madt, "APIC", madt_len, 5);

	uint32_t mcfg_len = sizeof(struct acpi_header) + 8 + 16;
	uint8_t *mcfg = alloc(&a, mcfg_len, &mcfg_gpa);
	if (!mcfg)
		return 0;
	p = mcfg + sizeof(struct acpi_header) + 8;
	wr64(p, PCI_ECAM_START);
	wr16(p + 8, 0); /* segment */
	p[10] = 0;                /* first bus */
	p[11] = 0;                /* last bus */
	header((struct acpi_header *)mcfg, "MCFG", mcfg_len, 1);

	uint64_t tables[] = { fadt_gpa, madt_gpa, mcfg_gpa };
	uint32_t xsdt_len = sizeof(struct acpi_header) + sizeof(tables);
	uint8_t *xsdt = alloc(&a, xsdt_len, &xsdt_gpa);
	if (!xsdt)
		return 0;
	memcpy(xsdt + sizeof(struct acpi_header), tables, sizeof(tables));
	header((struct acpi_header *)xsdt, "XSDT", xsdt_len, 1);

	memcpy(rsdp->sig, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, "KVKIT ", 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt = xsdt_gpa;
	rsdp->checksum = checksum(rsdp, 20);
	rsdp->ext_checksum = checksum(rsdp, sizeof(*rsdp));
	log_debug("ACPI tables at 0x%llx (%llu bytes)", (unsigned long long)ACPI_TABLES_ADDR,
		  (unsigned long long)a.used);
	return rsdp_gpa;
}
