/* SMBIOS 3.0 tables (dmidecode, /sys/class/dmi): system, chassis, one
 * processor per vCPU, the memory array and its mappings. */
#ifndef KVKIT_SMBIOS_H
#define KVKIT_SMBIOS_H
#include <stddef.h>
#include <stdint.h>

struct vm;

struct smbios_machine {
	unsigned ncpus;
	uint64_t low_ram, high_ram; /* bytes below 4 GiB (from 0), above it (from 4 GiB) */
};

/* Writes the structure table into buf (at most cap bytes); returns its
 * length, or 0 if it does not fit. */
size_t smbios_build(const struct smbios_machine *m, uint8_t *buf, size_t cap);
/* The 24-byte SMBIOS 3.0 entry point for a table of len bytes at gpa. */
void smbios_entry_point(uint8_t ep[24], uint32_t len, uint64_t gpa);

/* A named file for the firmware (the UEFI boot hands it to fw_cfg); the
 * data is copied. 0 or -1. */
typedef int (*firmware_file_fn)(void *opaque, const char *name, const void *data, uint32_t len);
/* UEFI boot: etc/smbios/smbios-anchor and etc/smbios/smbios-tables,
 * which OVMF installs (it adds its own BIOS information). 0 or -1. */
int smbios_firmware_files(const struct smbios_machine *m, firmware_file_fn add, void *opaque);
/* Direct boot: the entry point and tables in the F segment, where Linux's
 * DMI scan finds them. 0 or -1. */
int smbios_write_legacy(struct vm *vm);
#endif
