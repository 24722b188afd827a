/* Direct Linux boot: bzImage through the 64-bit boot protocol, or an ELF
 * vmlinux through its PVH entry point. */
#ifndef KVKIT_BOOT_LINUX_H
#define KVKIT_BOOT_LINUX_H
#include <stddef.h>
struct vm;
struct kv_bootloader;
/* Check that the files exist and look like what they claim (before the VM). */
int linux_boot_validate(const struct kv_bootloader *b, char *err, size_t errlen);
/* Load kernel, initrd, cmdline, tables and set the boot vCPU's registers. */
int linux_boot_load(struct vm *vm, const struct kv_bootloader *b, char *err, size_t errlen);
#endif
