/* ACPI tables for direct boot: RSDP, XSDT, FADT (hardware-reduced), DSDT,
 * MADT, MCFG. */
#ifndef KVKIT_ACPI_H
#define KVKIT_ACPI_H
#include <stdint.h>
struct vm;
/* Writes the tables into guest RAM; returns the RSDP's address or 0. */
uint64_t acpi_build_tables(struct vm *vm);
#endif
