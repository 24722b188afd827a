/* UEFI boot (--bootloader efi): OVMF's code image read-only at the top of
 * the 4 GiB space, the variable store as CFI flash just below it (written
 * through to the store file), and the platform pieces OVMF reads: fw_cfg
 * (memory map, ACPI tables, CPU count), the CMOS RTC and the PIIX4 power
 * management function. The vCPUs start at the reset vector. */
#ifndef KVKIT_EFI_H
#define KVKIT_EFI_H
#include <stddef.h>

struct vm;
struct kv_bootloader;

#define OVMF_CODE_DEFAULT "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define OVMF_VARS_DEFAULT "/usr/share/OVMF/OVMF_VARS_4M.fd"

/* Checks the firmware, the template and the store without changing
 * anything: one line in err on failure. */
int efi_boot_validate(const struct kv_bootloader *b, char *err, size_t errlen);
/* Creates the store if asked and needed, maps the flash, adds the platform
 * devices (after pci_init, before the vCPUs start). */
int efi_boot_load(struct vm *vm, const struct kv_bootloader *b, char *err, size_t errlen);
/* The store ready for use: created or replaced as create allows (an
 * unusable one kept as PATH.invalid), opened read-write and locked against
 * a second VM. The fd, or -1 with err set. (efi_boot_load's first step.) */
int efi_store_prepare(const struct kv_bootloader *b, char *err, size_t errlen);
/* Syncs the variable store (at exit). */
void efi_boot_finish(void);

/* The store check, for tests: 1 if buf (len bytes) is a firmware volume
 * like the template (same size, "_FVH", length, checksum, file system
 * GUID), else 0. */
int efi_store_matches(const unsigned char *buf, size_t len, const unsigned char *tmpl, size_t tmpl_len);

#endif
