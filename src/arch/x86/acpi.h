/* ACPI tables for direct boot: RSDP, XSDT, FADT (hardware-reduced), DSDT,
 * MADT, MCFG. */
#ifndef KVKIT_ACPI_H
#define KVKIT_ACPI_H
#include <stdint.h>
struct vm;
/* Writes the tables into guest RAM; returns the RSDP's address or 0. */
uint64_t acpi_build_tables(struct vm *vm);
/* The same tables as files for UEFI firmware (QEMU's fw_cfg interface):
 * etc/acpi/rsdp, etc/acpi/tables and the etc/table-loader script that
 * allocates them, links their pointers and sets their checksums. add is
 * smbios.h's firmware_file_fn. 0 or -1. */
int acpi_firmware_files(unsigned ncpus, int (*add)(void *opaque, const char *name, const void *data, uint32_t len),
			void *opaque);
#endif
