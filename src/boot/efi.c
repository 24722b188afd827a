/* UEFI boot; see efi.h. */
#define _GNU_SOURCE
#include "efi.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kvkit/config.h"
#include "../arch/x86/acpi.h"
#include "../arch/x86/layout.h"
#include "../arch/x86/smbios.h"
#include "../devices/fw_cfg.h"
#include "../devices/pflash.h"
#include "../devices/piix4_pm.h"
#include "../devices/rtc.h"
#include "../util/file_replace.h"
#include "../util/log.h"
#include "../vmm/vm.h"
#include "../util/bytes.h"

#define FLASH_MAX (16u << 20) /* 0xff000000 up: above the KVM TSS pages */
#define FLASH_BLOCK 4096      /* OVMF's PcdOvmfFirmwareBlockSize */
#define SLOT_CODE 2           /* KVM memory slots 0 and 1 are RAM */
#define SLOT_VARS 3
#define FV_SIGNATURE_OFF 0x28
#define FV_LENGTH_OFF 0x20
#define FV_HDRLEN_OFF 0x30
#define FV_GUID_OFF 0x10
#define PORT_DEBUGCON 0x402   /* OVMF's debug log, when built to print one */

static struct {
	struct pflash code, vars;
	struct fw_cfg fw_cfg;
	struct rtc rtc;
	struct vm *vm;
	uint64_t vars_gpa;
	int store_fd;
	char debug_line[256];
	size_t debug_len;
	bool loaded;
} efi = { .store_fd = -1 };

static const char *code_path(const struct kv_bootloader *b)
{
	return b->efi_firmware && *b->efi_firmware ? b->efi_firmware : OVMF_CODE_DEFAULT;
}

/* The template: given, or the firmware's name with CODE turned into VARS
 * (OVMF_CODE_4M.fd -> OVMF_VARS_4M.fd), or Debian's. */
static char *template_path(const struct kv_bootloader *b)
{
	if (b->efi_vars_template && *b->efi_vars_template)
		return strdup(b->efi_vars_template);
	if (!b->efi_firmware || !*b->efi_firmware)
		return strdup(OVMF_VARS_DEFAULT);
	char *p = strdup(b->efi_firmware);
	char *base = p ? strrchr(p, '/') : NULL;
	char *code = p ? strstr(base ? base : p, "CODE") : NULL;
	if (!code) {
		free(p);
		return NULL;
	}
	memcpy(code, "VARS", 4);
	return p;
}

static int read_whole(const char *path, const char *what, unsigned char **buf, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	*buf = NULL;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot read the %s %s: %s%s", what, path, strerror(errno),
			 errno == ENOENT && strstr(path, "/usr/share/OVMF/") ? " (install Debian's ovmf package)" : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > FLASH_MAX) {
		snprintf(err, errlen, "the %s %s is not a firmware image (size %lld)", what, path, (long long)st.st_size);
		close(fd);
		return -1;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len);
	size_t got = 0;
	while (*buf && got < *len) {
		ssize_t n = read(fd, *buf + got, *len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!*buf || got != *len) {
		snprintf(err, errlen, "cannot read the %s %s: %s", what, path, *buf ? "short read" : "out of memory");
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
}


int efi_store_matches(const unsigned char *buf, size_t len, const unsigned char *tmpl, size_t tmpl_len)
{
	if (len != tmpl_len || len < 0x48 || memcmp(buf + FV_SIGNATURE_OFF, "_FVH", 4) ||
	    rd64(buf + FV_LENGTH_OFF) != len || memcmp(buf + FV_GUID_OFF, tmpl + FV_GUID_OFF, 16))
		return 0;
	uint16_t hdr = rd16(buf + FV_HDRLEN_OFF);
	if (hdr < 0x48 || hdr % 2 || hdr + 16u > len)
		return 0;
	uint16_t sum = 0;
	for (unsigned i = 0; i < hdr; i += 2)
		sum = (uint16_t)(sum + rd16(buf + i));
	if (sum)
		return 0;
	/* the variable store header that follows: same format GUID */
	uint16_t thdr = rd16(tmpl + FV_HDRLEN_OFF);
	return thdr == hdr && !memcmp(buf + hdr, tmpl + hdr, 16);
}

/* The store's state: 0 valid, 1 missing, 2 empty, 3 wrong size, 4 not a
 * store; -1 unreadable (err set). */
static int store_state(const char *path, const unsigned char *tmpl, size_t tmpl_len, char *err, size_t errlen)
{
	unsigned char *buf;
	size_t len;
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "cannot use the EFI variable store %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "the EFI variable store %s is not a regular file", path);
		return -1;
	}
	if (st.st_size == 0)
		return 2;
	if ((size_t)st.st_size != tmpl_len)
		return 3;
	if (access(path, R_OK | W_OK) < 0) {
		snprintf(err, errlen, "cannot use the EFI variable store %s: %s", path, strerror(errno));
		return -1;
	}
	if (read_whole(path, "EFI variable store", &buf, &len, err, errlen) < 0)
		return -1;
	int ok = efi_store_matches(buf, len, tmpl, tmpl_len);
	free(buf);
	return ok ? 0 : 4;
}

static int check_images(const struct kv_bootloader *b, unsigned char **code, size_t *code_len, unsigned char **tmpl,
			size_t *tmpl_len, char *err, size_t errlen)
{
	char *tp = template_path(b);
	*code = *tmpl = NULL;
	if (!tp) {
		snprintf(err, errlen, "cannot tell the variable-store template of %s: give vars-template=PATH",
			 b->efi_firmware);
		return -1;
	}
	int r = read_whole(code_path(b), "UEFI firmware", code, code_len, err, errlen);
	if (!r)
		r = read_whole(tp, "UEFI variable-store template", tmpl, tmpl_len, err, errlen);
	if (!r && (*code_len % FLASH_BLOCK || *tmpl_len % FLASH_BLOCK || *code_len + *tmpl_len > FLASH_MAX)) {
		snprintf(err, errlen, "the UEFI firmware %s and template %s do not fit kvkit's flash (4 KiB blocks, 16 MiB)",
			 code_path(b), tp);
		r = -1;
	}
	if (!r && memcmp(*tmpl + FV_SIGNATURE_OFF, "_FVH", 4)) {
		snprintf(err, errlen, "the UEFI variable-store template %s is not a firmware volume", tp);
		r = -1;
	}
	free(tp);
	if (r < 0) {
		free(*code);
		free(*tmpl);
		*code = *tmpl = NULL;
	}
	return r;
}

int efi_boot_validate(const struct kv_bootloader *b, char *err, size_t errlen)
{
	unsigned char *code, *tmpl;
	size_t code_len, tmpl_len;
	if (check_images(b, &code, &code_len, &tmpl, &tmpl_len, err, errlen) < 0)
		return -1;
	int st = store_state(b->efi_store, tmpl, tmpl_len, err, errlen);
	free(code);
	free(tmpl);
	if (st < 0 || b->efi_create)
		return st < 0 ? -1 : 0;
	switch (st) {
	case 1:
		snprintf(err, errlen, "the EFI variable store %s does not exist (add ',create' to make one)", b->efi_store);
		return -1;
	case 2:
		snprintf(err, errlen, "the EFI variable store %s is empty (add ',create' to make one)", b->efi_store);
		return -1;
	case 3:
		snprintf(err, errlen, "the EFI variable store %s has the wrong size for this firmware (%zu bytes expected)",
			 b->efi_store, tmpl_len);
		return -1;
	case 4:
		snprintf(err, errlen, "the EFI variable store %s is not a variable store of this firmware", b->efi_store);
		return -1;
	}
	return 0;
}

/* Make path a copy of the template, whole or not at all; an unusable old
 * store stays reachable as PATH.invalid (a hard link made first, so path
 * itself is never missing). */
static int create_store(const char *path, const unsigned char *tmpl, size_t len, bool keep_old, char *err,
			size_t errlen)
{
	char *old = NULL;
	bool kept = false;
	if (keep_old && asprintf(&old, "%s.invalid", path) >= 0) {
		unlink(old);
		kept = link(path, old) == 0;
	}
	int r = file_replace(path, tmpl, len, 0644);
	if (r < 0)
		snprintf(err, errlen, "cannot create the EFI variable store %s: %s", path, strerror(-r));
	else if (kept)
		log_warn("the EFI variable store %s was not usable: kept as %s, replaced by a new one", path, old);
	free(old);
	return r < 0 ? -1 : 0;
}

static void set_vars_direct(struct pflash *f, bool on)
{
	struct kvm_userspace_memory_region slot = {
		.slot = SLOT_VARS, .flags = KVM_MEM_READONLY, .guest_phys_addr = efi.vars_gpa,
		.memory_size = on ? f->size : 0, .userspace_addr = (uintptr_t)f->mem,
	};
	if (ioctl(efi.vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		log_error("cannot %s the variable flash: %m", on ? "map" : "unmap");
}

static int map_rom(struct vm *vm, int slot, uint64_t gpa, void *mem, uint64_t size)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = KVM_MEM_READONLY, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uintptr_t)mem,
	};
	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

static void *page_copy(const unsigned char *src, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	memcpy(p, src, len);
	return p;
}

/* OVMF's debug log on port 0x402: a line at a time into kvkit's debug log.
 * Reading the port gives 0xe9 (the "debugcon present" answer) only at
 * --log-level debug, so by default the firmware does not spend exits on it. */
static void debugcon(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque; (void)off;
	if (!is_write) {
		memset(data, log_enabled(LOG_DEBUG) ? 0xe9 : 0xff, len);
		return;
	}
	for (unsigned i = 0; i < len; i++) {
		char ch = (char)data[i];
		if (ch == '\n' || efi.debug_len == sizeof(efi.debug_line) - 1) {
			efi.debug_line[efi.debug_len] = 0;
			log_debug("firmware: %s", efi.debug_line);
			efi.debug_len = 0;
		}
		if (ch != '\n' && ch != '\r')
			efi.debug_line[efi.debug_len++] = ch;
	}
}

static int fw_cfg_setup(struct vm *vm)
{
	struct fw_cfg *c = &efi.fw_cfg;
	fw_cfg_init(c);
	uint32_t id = 1; /* the traditional interface, no DMA */
	uint16_t ncpus = (uint16_t)vm->ncpus;
	struct smbios_machine machine = { .ncpus = vm->ncpus, .low_ram = vm->low_ram, .high_ram = vm->high_ram };
	struct __attribute__((packed)) { uint64_t addr, len; uint32_t type; } e820[3] = {
		{ 0, vm->low_ram, 1 },
		{ KVM_IDENTITY_MAP_ADDR, 0x4000, 2 }, /* the KVM identity map and TSS pages */
		{ RAM_ABOVE_4G, vm->high_ram, 1 },
	};
	if (fw_cfg_add(c, FW_CFG_SIGNATURE, "QEMU", 4) < 0 || fw_cfg_add(c, FW_CFG_ID, &id, 4) < 0 ||
	    fw_cfg_add(c, FW_CFG_NB_CPUS, &ncpus, 2) < 0 || fw_cfg_add(c, FW_CFG_MAX_CPUS, &ncpus, 2) < 0 ||
	    fw_cfg_add_file(c, "etc/e820", e820, (uint32_t)sizeof(e820[0]) * (vm->high_ram ? 3 : 2)) < 0 ||
	    acpi_firmware_files(vm->ncpus, fw_cfg_add_file_to, c) < 0 ||
	    smbios_firmware_files(&machine, fw_cfg_add_file_to, c) < 0 ||
	    fw_cfg_finish(c) < 0)
		return -1;
	return bus_register(&vm->pio, FW_CFG_PORT_SEL, 2, fw_cfg_io, c);
}

/* What preparing the store read: the firmware, the template and the store
 * as locked, kept for mapping so nothing is read twice. */
struct images {
	unsigned char *code, *tmpl, *store;
	size_t code_len, tmpl_len, store_len;
};

static void images_free(struct images *im)
{
	free(im->code);
	free(im->tmpl);
	free(im->store);
	memset(im, 0, sizeof(*im));
}

/* efi_store_prepare, keeping the images in im (freed on failure). */
static int prepare(const struct kv_bootloader *b, struct images *im, char *err, size_t errlen)
{
	int fd = -1;
	memset(im, 0, sizeof(*im));
	if (check_images(b, &im->code, &im->code_len, &im->tmpl, &im->tmpl_len, err, errlen) < 0)
		return -1;
	int st = store_state(b->efi_store, im->tmpl, im->tmpl_len, err, errlen);
	if (st < 0)
		goto fail;
	if (st > 0) {
		if (!b->efi_create) { /* validated before; changed since */
			snprintf(err, errlen, "the EFI variable store %s is no longer usable", b->efi_store);
			goto fail;
		}
		if (create_store(b->efi_store, im->tmpl, im->tmpl_len, st >= 3, err, errlen) < 0)
			goto fail;
		log_info("created the EFI variable store %s from the firmware's template", b->efi_store);
	}
	fd = open(b->efi_store, O_RDWR | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			snprintf(err, errlen, "the EFI variable store %s is in use by another VM", b->efi_store);
		else
			snprintf(err, errlen, "cannot open the EFI variable store %s: %s", b->efi_store, strerror(errno));
		goto fail;
	}
	if (read_whole(b->efi_store, "EFI variable store", &im->store, &im->store_len, err, errlen) < 0)
		goto fail;
	if (!efi_store_matches(im->store, im->store_len, im->tmpl, im->tmpl_len)) {
		snprintf(err, errlen, "the EFI variable store %s changed while kvkit opened it", b->efi_store);
		goto fail;
	}
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	images_free(im);
	return -1;
}

int efi_store_prepare(const struct kv_bootloader *b, char *err, size_t errlen)
{
	struct images im;
	int fd = prepare(b, &im, err, errlen);
	images_free(&im);
	return fd;
}

int efi_boot_load(struct vm *vm, const struct kv_bootloader *b, char *err, size_t errlen)
{
	struct images im;
	int r = -1;
	efi.vm = vm;
	efi.store_fd = prepare(b, &im, err, errlen);
	if (efi.store_fd < 0)
		return -1;
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
		snprintf(err, errlen, "this KVM cannot map read-only memory, which UEFI boot needs");
		goto out;
	}
	void *code_mem = page_copy(im.code, im.code_len), *vars_mem = page_copy(im.store, im.store_len);
	if (!code_mem || !vars_mem) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	uint64_t code_gpa = FLASH_TOP - im.code_len;
	efi.vars_gpa = code_gpa - im.store_len;
	pflash_init(&efi.code, "UEFI firmware flash", code_mem, im.code_len, FLASH_BLOCK, -1, true);
	pflash_init(&efi.vars, "UEFI variable flash", vars_mem, im.store_len, FLASH_BLOCK, efi.store_fd, false);
	efi.vars.set_direct = set_vars_direct;
	if (map_rom(vm, SLOT_CODE, code_gpa, code_mem, im.code_len) < 0 ||
	    map_rom(vm, SLOT_VARS, efi.vars_gpa, vars_mem, im.store_len) < 0) {
		snprintf(err, errlen, "cannot map the UEFI flash: %s", strerror(errno));
		goto out;
	}
	rtc_init(&efi.rtc, vm->low_ram, vm->high_ram, vm->ncpus);
	if (bus_register(&vm->mmio, code_gpa, im.code_len, pflash_access, &efi.code) < 0 ||
	    bus_register(&vm->mmio, efi.vars_gpa, im.store_len, pflash_access, &efi.vars) < 0 ||
	    bus_register(&vm->pio, RTC_PORT_INDEX, 2, rtc_io, &efi.rtc) < 0 ||
	    bus_register(&vm->pio, PORT_DEBUGCON, 1, debugcon, NULL) < 0 || piix4_pm_init(vm) < 0 ||
	    fw_cfg_setup(vm) < 0) {
		snprintf(err, errlen, "cannot set up the UEFI platform devices");
		goto out;
	}
	log_debug("UEFI: firmware %s at 0x%llx, variable store %s at 0x%llx", code_path(b),
		  (unsigned long long)code_gpa, b->efi_store, (unsigned long long)efi.vars_gpa);
	efi.loaded = true;
	r = 0;
out:
	images_free(&im);
	return r;
}

void efi_boot_finish(void)
{
	if (efi.loaded)
		pflash_flush(&efi.vars);
}
