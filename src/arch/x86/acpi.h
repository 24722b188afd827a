/* ACPI tables for direct boot: RSDP, XSDT, FADT (hardware-reduced), DSDT,
 * MADT, MCFG. */
#ifndef KVKIT_ACPI_H
#define KVKIT_ACPI_H
#include <stdint.h>
struct vm;
/* Writes the tables into guest RAM; returns the RSDP's address or 0. */
uint64_t acpi_build_tables(struct vm *vm);
struct fw_cfg;
/* The same tables as fw_cfg files for UEFI firmware: etc/acpi/rsdp,
 * etc/acpi/tables and the etc/table-loader script that allocates them,
 * links their pointers and sets their checksums. 0 or -1. */
int acpi_fw_cfg(unsigned ncpus, struct fw_cfg *fc);
#endif
