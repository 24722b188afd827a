/* Direct Linux boot (Documentation/arch/x86/boot.rst and the PVH ABI). */
#include "linux.h"
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <kvkit/config.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "../arch/x86/acpi.h"
#include "../arch/x86/cpu.h"
#include "../arch/x86/layout.h"
#include "../arch/x86/smbios.h"
#include "kernel_unpack.h"
#include "../util/log.h"
#include "../vmm/vm.h"
#include "../util/bytes.h"

/* zero page (struct boot_params) offsets */
#define BP_ACPI_RSDP 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
/* setup header fields, as offsets into the zero page */
#define HDR_SETUP_SECTS 0x1f1
#define HDR_BOOT_FLAG 0x1fe
#define HDR_HEADER 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_CMDLINE_SIZE 0x238
#define HDR_XLOADFLAGS 0x236
#define HDR_INIT_SIZE 0x260
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_PAYLOAD_OFFSET 0x248
#define HDR_PAYLOAD_LENGTH 0x24c
#define HDR_PREF_ADDRESS 0x258
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8

#define XLF_KERNEL_64 1
#define LOADED_HIGH 1
#define KASLR_FLAG 2
#define CAN_USE_HEAP 0x80

#define E820_RAM 1
#define E820_RESERVED 2

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* An open kernel or initrd: its first bytes for format checks, the rest is
 * read with pread() straight into guest memory (no second copy in kvkit). */
struct file_buf {
	int fd;
	uint64_t size;
	uint8_t data[4096];
};

static int read_file(const char *path, const char *what, struct file_buf *f, char *err, size_t errlen)
{
	struct stat st;
	memset(f->data, 0, sizeof(f->data));
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s is not a regular file", what, path);
		close(f->fd);
		f->fd = -1;
		return -EINVAL;
	}
	f->size = st.st_size;
	if (pread(f->fd, f->data, sizeof(f->data), 0) < 0) {
		snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
		close(f->fd);
		f->fd = -1;
		return -EIO;
	}
	return 0;
}

/* Read len bytes at off into dst; -EIO on a short read. */
static int file_read_at(const struct file_buf *f, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *p = dst;
	while (len) {
		ssize_t n = pread(f->fd, p, len > (1u << 30) ? (1u << 30) : len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static void release(struct file_buf *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}


static bool is_bzimage(const struct file_buf *k)
{
	return k->size > 0x264 && rd16(k->data + HDR_BOOT_FLAG) == 0xaa55 && !memcmp(k->data + HDR_HEADER, "HdrS", 4);
}

static bool is_elf64(const struct file_buf *k)
{
	return k->size > sizeof(Elf64_Ehdr) && !memcmp(k->data, ELFMAG, SELFMAG) && k->data[EI_CLASS] == ELFCLASS64 &&
	       rd16(k->data + offsetof(Elf64_Ehdr, e_machine)) == EM_X86_64;
}

int linux_boot_validate(const struct kv_bootloader *b, char *err, size_t errlen)
{
	struct file_buf k, i;
	int r = read_file(b->kernel, "kernel", &k, err, errlen);
	if (r < 0)
		return r;
	if (!is_bzimage(&k) && !is_elf64(&k)) {
		snprintf(err, errlen, "kernel %s is not an x86_64 Linux kernel (neither bzImage nor ELF vmlinux)", b->kernel);
		release(&k);
		return -EINVAL;
	}
	if (is_bzimage(&k) && (rd16(k.data + HDR_VERSION) < 0x020c || !(k.data[HDR_XLOADFLAGS] & XLF_KERNEL_64))) {
		snprintf(err, errlen, "kernel %s has no 64-bit entry point (boot protocol 2.12 or later needed)", b->kernel);
		release(&k);
		return -EINVAL;
	}
	release(&k);
	if (b->initrd && *b->initrd) {
		r = read_file(b->initrd, "initrd", &i, err, errlen);
		release(&i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* e820 map: low RAM, EBDA+BIOS area reserved, RAM to the hole, RAM above 4G. */
static unsigned build_e820(struct vm *vm, uint8_t *table)
{
	struct { uint64_t addr, size; uint32_t type; } __attribute__((packed)) e[5];
	unsigned n = 0;
	e[n++] = (typeof(e[0])){ 0, EBDA_START, E820_RAM };
	e[n++] = (typeof(e[0])){ EBDA_START, HIGH_RAM_START - EBDA_START, E820_RESERVED };
	e[n++] = (typeof(e[0])){ HIGH_RAM_START, vm->low_ram - HIGH_RAM_START, E820_RAM };
	e[n++] = (typeof(e[0])){ PCI_ECAM_START, PCI_ECAM_SIZE, E820_RESERVED };
	if (vm->high_ram)
		e[n++] = (typeof(e[0])){ RAM_ABOVE_4G, vm->high_ram, E820_RAM };
	memcpy(table, e, n * sizeof(e[0]));
	return n;
}

/* The end of the RAM an initrd may use: below 4 GiB and at most the
 * kernel's initrd_addr_max (max_addr). */
static uint64_t initrd_top(const struct vm *vm, uint64_t max_addr)
{
	return vm->low_ram < max_addr + 1 ? vm->low_ram : max_addr + 1;
}

/* Where an initrd of this size goes: page-aligned, as high under
 * initrd_top() as it fits. False if it does not fit at all.
 * host_unpack() keeps the kernel below this place. */
static bool initrd_place(const struct vm *vm, uint64_t max_addr, uint64_t size, uint64_t *addr)
{
	uint64_t top = initrd_top(vm, max_addr);
	if (size > top)
		return false;
	*addr = (top - size) & ~0xfffULL;
	return true;
}

static int place_initrd(struct vm *vm, const struct kv_bootloader *b, uint64_t max_addr, uint64_t kernel_end,
			uint64_t *addr, uint64_t *size, char *err, size_t errlen)
{
	struct file_buf f;
	*addr = *size = 0;
	if (!b->initrd || !*b->initrd)
		return 0;
	int r = read_file(b->initrd, "initrd", &f, err, errlen);
	if (r < 0)
		return r;
	if (!initrd_place(vm, max_addr, f.size, addr) || *addr < kernel_end) {
		snprintf(err, errlen, "initrd %s (%llu bytes) does not fit in guest memory below 0x%llx", b->initrd, (unsigned long long)f.size,
			 (unsigned long long)initrd_top(vm, max_addr));
		*addr = 0;
		release(&f);
		return -ENOSPC;
	}
	*size = f.size;
	r = file_read_at(&f, 0, gmem_ptr(&vm->mem, *addr, f.size), f.size);
	release(&f);
	if (r < 0)
		snprintf(err, errlen, "cannot read initrd %s: %s", b->initrd, strerror(errno));
	return r;
}

static int write_cmdline(struct vm *vm, const char *cmdline, uint64_t max, char *err, size_t errlen)
{
	size_t len = cmdline ? strlen(cmdline) : 0;
	if (len >= max || len >= CMDLINE_MAX) {
		snprintf(err, errlen, "kernel command line is %zu bytes, the kernel accepts at most %llu", len,
			 (unsigned long long)(max - 1));
		return -E2BIG;
	}
	char *dst = gmem_ptr(&vm->mem, CMDLINE_ADDR, len + 1);
	memcpy(dst, cmdline ? cmdline : "", len);
	dst[len] = 0;
	return 0;
}

/* ---- bzImage unpacked on the host (kernel_unpack.h) ---- */

static bool cmdline_has(const char *cmdline, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = cmdline; p && (p = strstr(p, word)); p += n)
		if ((p == cmdline || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
			return true;
	return false;
}

static uint64_t random_below(uint64_t n)
{
	uint64_t r;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint64_t)time(NULL) * 6364136223846793005ULL;
	return n ? r % n : 0;
}

struct unpacked {
	uint64_t entry, end;
	bool kaslr;
};

/* Prefault guest RAM the host is about to fill: one call instead of a page
 * fault per page (costly under nested virtualization). Best effort. */
static void populate(struct vm *vm, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gmem_ptr(&vm->mem, gpa, len);
	if (p)
		madvise(p, len, MADV_POPULATE_WRITE);
}

/* Give guest RAM the host used as scratch back; the guest reads zeroes. */
static void discard(struct vm *vm, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gmem_ptr(&vm->mem, gpa, len);
	if (p && len)
		madvise(p, len, MADV_REMOVE);
}

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

/* Unpack the kernel into guest RAM the way its own decompressor would: the
 * payload read to the top of RAM, unpacked at the (randomized) load address
 * and laid out in place. 0, or -1 with the reason in why: the caller then
 * lets the guest do it. */
static int host_unpack(struct vm *vm, const struct kv_bootloader *b, struct file_buf *k, uint64_t setup_size,
		       uint64_t initrd_size, uint64_t initrd_max, struct unpacked *u, char *why, size_t whylen)
{
	const uint8_t *h = k->data;
	uint64_t poff = setup_size + rd32(h + HDR_PAYLOAD_OFFSET), plen = rd32(h + HDR_PAYLOAD_LENGTH);
	uint64_t link = rd64(h + HDR_PREF_ADDRESS), align = rd32(h + HDR_KERNEL_ALIGNMENT);
	uint64_t init_size = rd32(h + HDR_INIT_SIZE);
	uint8_t magic[8], tail[8];
	if (rd16(h + HDR_VERSION) < 0x020a)
		return snprintf(why, whylen, "boot protocol before 2.10"), -1;
	if (plen < 16 || poff > k->size || plen > k->size - poff || file_read_at(k, poff, magic, 8) < 0 ||
	    file_read_at(k, poff + plen - 8, tail, 8) < 0)
		return snprintf(why, whylen, "no payload"), -1;
	if (align < 4096 || align > (1u << 30) || (align & (align - 1)) || (link & (align - 1)) || link < HIGH_RAM_START)
		return snprintf(why, whylen, "load address 0x%llx, alignment 0x%llx", (unsigned long long)link,
				(unsigned long long)align), -1;
	enum kernel_compression c = kernel_compression_of(magic, sizeof(magic));
	uint64_t size = kernel_payload_size(tail, sizeof(tail));
	if (c == KC_UNKNOWN)
		return snprintf(why, whylen, "payload compression not handled here"), -1;
	/* the payload at the top of low RAM, below it the initrd's place, the kernel below both */
	uint64_t top = vm->low_ram & ~0xfffULL, in_len = round_up(plen, 4096);
	uint64_t above = in_len > round_up(initrd_size, 4096) ? in_len : round_up(initrd_size, 4096);
	uint64_t reserve = round_up(size > init_size ? size : init_size, align);
	if (size < sizeof(Elf64_Ehdr) || above > top || top - above < link + reserve)
		return snprintf(why, whylen, "%llu-byte kernel: no room to unpack it", (unsigned long long)size), -1;
	uint64_t limit = top - above;
	/* and below where place_initrd() will put the initrd, under the
	 * kernel's initrd_addr_max, which may be lower than the top of low RAM
	 * (2 GiB for Debian's kernels; a 6 GiB guest has 3 GiB low) */
	uint64_t initrd_at;
	if (initrd_size) {
		if (!initrd_place(vm, initrd_max, initrd_size, &initrd_at) || initrd_at < link + reserve)
			return snprintf(why, whylen, "%llu-byte kernel: no room below the initrd",
					(unsigned long long)size), -1;
		if (initrd_at < limit)
			limit = initrd_at;
	}
	bool relocatable = h[HDR_RELOCATABLE];
	bool kaslr = relocatable && !cmdline_has(b->cmdline, "nokaslr");
	uint64_t phys = link;
	if (kaslr)
		phys += random_below((limit - reserve - link) / align + 1) * align;
	uint64_t in_gpa = top - in_len;
	uint8_t *in = gmem_ptr(&vm->mem, in_gpa, plen), *blob = gmem_ptr(&vm->mem, phys, reserve);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	populate(vm, in_gpa, in_len);
	populate(vm, phys, round_up(size, 4096));
	int r = -1;
	struct vmlinux_layout l;
	if (!in || !blob || file_read_at(k, poff, in, plen) < 0) {
		snprintf(why, whylen, "cannot read the payload: %s", strerror(errno));
		goto done;
	}
	if (kernel_decompress(c, in, plen, blob, size, why, whylen) < 0 || vmlinux_inspect(blob, size, link, &l, why, whylen) < 0)
		goto done;
	if (l.span > reserve) {
		snprintf(why, whylen, "the image (%llu bytes) is larger than its header says", (unsigned long long)l.span);
		goto done;
	}
	uint64_t delta = 0;
	if (kaslr && l.reloc_words && KERNEL_IMAGE_SIZE > link + reserve)
		delta = random_below((KERNEL_IMAGE_SIZE - link - reserve) / align + 1) * align;
	if (vmlinux_place(blob, size, link, &l, delta, why, whylen) < 0)
		goto done;
	/* what is left of the unpacked file past the image */
	if (round_up(size, 4096) > round_up(l.span, 4096))
		discard(vm, phys + round_up(l.span, 4096), round_up(size, 4096) - round_up(l.span, 4096));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	u->entry = phys + l.entry_off;
	u->end = phys + l.span;
	u->kaslr = kaslr;
	log_debug("bzImage: %s kernel unpacked on the host in %.0f ms: %llu bytes at 0x%llx, %llu relocations, "
		  "virtual offset 0x%llx%s",
		  kernel_compression_name(c), (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
		  (unsigned long long)l.span, (unsigned long long)phys, (unsigned long long)l.relocs,
		  (unsigned long long)delta, kaslr ? "" : " (no KASLR)");
	r = 0;
done:
	discard(vm, in_gpa, in_len);
	if (r < 0)
		discard(vm, phys, reserve);
	return r;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	return path && *path && stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int load_bzimage(struct vm *vm, const struct kv_bootloader *b, struct file_buf *k, char *err, size_t errlen)
{
	uint8_t *zp = gmem_ptr(&vm->mem, ZERO_PAGE_ADDR, 4096);
	unsigned setup_sects = k->data[HDR_SETUP_SECTS] ? k->data[HDR_SETUP_SECTS] : 4;
	uint64_t setup_size = (setup_sects + 1) * 512ULL;
	if (setup_size >= k->size) {
		snprintf(err, errlen, "kernel %s: truncated bzImage", b->kernel);
		return -EINVAL;
	}
	uint64_t pm_size = k->size - setup_size;
	uint64_t init_size = rd32(k->data + HDR_INIT_SIZE);
	uint64_t kernel_end = HIGH_RAM_START + (init_size > pm_size ? init_size : pm_size), entry;
	struct unpacked u = { 0 };
	char why[160];
	uint32_t initrd_max = rd32(k->data + HDR_INITRD_ADDR_MAX);
	if (!initrd_max)
		initrd_max = 0x37ffffff; /* boot protocol before 2.03 */
	if (host_unpack(vm, b, k, setup_size, file_size(b->initrd), initrd_max, &u, why, sizeof(why)) == 0) {
		entry = u.entry;
		kernel_end = u.end;
	} else {
		log_debug("bzImage: the kernel unpacks itself in the guest (%s)", why);
		if (kernel_end > vm->low_ram) {
			snprintf(err, errlen, "invalid virtual machine configuration: kernel needs %llu MiB, guest has too little memory",
				 (unsigned long long)(kernel_end >> 20) + 1);
			return -ENOSPC;
		}
		if (file_read_at(k, setup_size, gmem_ptr(&vm->mem, HIGH_RAM_START, pm_size), pm_size) < 0) {
			snprintf(err, errlen, "cannot read kernel %s: %s", b->kernel, strerror(errno));
			return -EIO;
		}
		entry = HIGH_RAM_START + 0x200; /* the 64-bit entry of the decompressor */
	}

	memset(zp, 0, 4096);
	/* copy the setup header as the boot protocol asks */
	size_t hdr_end = 0x202 + k->data[0x201];
	if (hdr_end > sizeof(k->data) || hdr_end > k->size)
		hdr_end = 0x268;
	memcpy(zp + BP_HDR, k->data + BP_HDR, hdr_end - BP_HDR);
	zp[HDR_TYPE_OF_LOADER] = 0xff;
	zp[HDR_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP | (u.kaslr ? KASLR_FLAG : 0);
	zp[HDR_HEAP_END_PTR] = 0x00;
	zp[HDR_HEAP_END_PTR + 1] = 0xfe;
	wr32(zp + HDR_CMD_LINE_PTR, CMDLINE_ADDR);
	uint64_t max_cmd = rd16(k->data + HDR_VERSION) >= 0x0206 ? rd32(k->data + HDR_CMDLINE_SIZE) + 1ULL : 256;
	int r = write_cmdline(vm, b->cmdline, max_cmd, err, errlen);
	if (r < 0)
		return r;
	uint64_t iaddr, isize;
	r = place_initrd(vm, b, initrd_max, kernel_end, &iaddr, &isize, err, errlen);
	if (r < 0)
		return r;
	wr32(zp + HDR_RAMDISK_IMAGE, (uint32_t)iaddr);
	wr32(zp + HDR_RAMDISK_SIZE, (uint32_t)isize);
	wr32(zp + BP_EXT_RAMDISK_IMAGE, iaddr >> 32);
	wr32(zp + BP_EXT_RAMDISK_SIZE, isize >> 32);
	zp[BP_E820_ENTRIES] = build_e820(vm, zp + BP_E820_TABLE);
	uint64_t rsdp = acpi_build_tables(vm);
	memcpy(zp + BP_ACPI_RSDP, &rsdp, 8);
	if (smbios_write_legacy(vm) < 0) {
		snprintf(err, errlen, "the SMBIOS tables do not fit below 1 MiB");
		return -ENOSPC;
	}
	x86_write_boot_tables(vm);
	log_debug("bzImage: protocol %x, entry 0x%llx, initrd %llu bytes at 0x%llx", rd16(k->data + HDR_VERSION),
		  (unsigned long long)entry, (unsigned long long)isize, (unsigned long long)iaddr);
	return x86_set_regs_long(&vm->vcpus[0], entry, ZERO_PAGE_ADDR);
}

/* ---- ELF vmlinux through the PVH entry (hvm_start_info, version 1) ---- */

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};
struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

#define ELF_MAX_PHDRS 64
#define ELF_MAX_NOTES (64 * 1024)

static int read_phdrs(const struct file_buf *k, Elf64_Phdr *ph, unsigned *n)
{
	Elf64_Ehdr eh;
	memcpy(&eh, k->data, sizeof(eh));
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHDRS ||
	    eh.e_phoff > k->size || eh.e_phnum * sizeof(Elf64_Phdr) > k->size - eh.e_phoff)
		return -1;
	*n = eh.e_phnum;
	return file_read_at(k, eh.e_phoff, ph, eh.e_phnum * sizeof(Elf64_Phdr));
}

static int find_pvh_entry(const struct file_buf *k, const Elf64_Phdr *ph, unsigned nph, uint32_t *entry)
{
	static uint8_t notes[ELF_MAX_NOTES];
	for (unsigned i = 0; i < nph; i++) {
		if (ph[i].p_type != PT_NOTE || ph[i].p_offset > k->size || ph[i].p_filesz > k->size - ph[i].p_offset ||
		    ph[i].p_filesz > sizeof(notes))
			continue;
		if (file_read_at(k, ph[i].p_offset, notes, ph[i].p_filesz) < 0)
			return -1;
		const uint8_t *p = notes, *end = notes + ph[i].p_filesz;
		while (p + 12 <= end) {
			uint32_t namesz = rd32(p), descsz = rd32(p + 4), type = rd32(p + 8);
			uint64_t nlen = (namesz + 3ULL) & ~3ULL, dlen = (descsz + 3ULL) & ~3ULL;
			if ((uint64_t)(end - p) < 12 + nlen + dlen)
				break;
			if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && !memcmp(p + 12, "Xen", 4) && descsz >= 4) {
				*entry = rd32(p + 12 + nlen);
				return 0;
			}
			p += 12 + nlen + dlen;
		}
	}
	return -1;
}

static int load_elf(struct vm *vm, const struct kv_bootloader *b, struct file_buf *k, char *err, size_t errlen)
{
	Elf64_Phdr ph[ELF_MAX_PHDRS];
	unsigned nph = 0;
	uint32_t entry;
	if (read_phdrs(k, ph, &nph) < 0) {
		snprintf(err, errlen, "kernel %s: bad ELF program headers", b->kernel);
		return -EINVAL;
	}
	if (find_pvh_entry(k, ph, nph, &entry) < 0) {
		snprintf(err, errlen, "kernel %s: ELF vmlinux without a PVH entry point (CONFIG_PVH)", b->kernel);
		return -EINVAL;
	}
	uint64_t kernel_end = 0;
	for (unsigned i = 0; i < nph; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		uint8_t *dst = gmem_ptr(&vm->mem, ph[i].p_paddr, ph[i].p_memsz);
		if (!dst || ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > k->size ||
		    ph[i].p_filesz > k->size - ph[i].p_offset) {
			snprintf(err, errlen, "kernel %s: ELF segment does not fit in guest memory", b->kernel);
			return -EINVAL;
		}
		if (file_read_at(k, ph[i].p_offset, dst, ph[i].p_filesz) < 0) {
			snprintf(err, errlen, "cannot read kernel %s: %s", b->kernel, strerror(errno));
			return -EIO;
		}
		memset(dst + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
		if (ph[i].p_paddr + ph[i].p_memsz > kernel_end)
			kernel_end = ph[i].p_paddr + ph[i].p_memsz;
	}
	int r = write_cmdline(vm, b->cmdline, 2048, err, errlen);
	if (r < 0)
		return r;
	uint64_t iaddr, isize;
	r = place_initrd(vm, b, 0xffffffff, kernel_end, &iaddr, &isize, err, errlen);
	if (r < 0)
		return r;
	uint8_t *base = gmem_ptr(&vm->mem, PVH_START_INFO, 4096);
	memset(base, 0, 4096);
	struct hvm_start_info *si = (void *)base;
	struct hvm_modlist_entry *mod = (void *)(base + 64);
	struct hvm_memmap_entry *mm = (void *)(base + 128);
	si->magic = 0x336ec578;
	si->version = 1;
	si->cmdline_paddr = CMDLINE_ADDR;
	si->rsdp_paddr = acpi_build_tables(vm);
	if (smbios_write_legacy(vm) < 0) {
		snprintf(err, errlen, "the SMBIOS tables do not fit below 1 MiB");
		return -ENOSPC;
	}
	if (isize) {
		si->nr_modules = 1;
		si->modlist_paddr = PVH_START_INFO + 64;
		mod->paddr = iaddr;
		mod->size = isize;
	}
	uint8_t e820[5 * 20];
	unsigned n = build_e820(vm, e820);
	for (unsigned i = 0; i < n; i++) {
		memcpy(&mm[i].addr, e820 + i * 20, 8);
		memcpy(&mm[i].size, e820 + i * 20 + 8, 8);
		memcpy(&mm[i].type, e820 + i * 20 + 16, 4);
	}
	si->memmap_paddr = PVH_START_INFO + 128;
	si->memmap_entries = n;
	log_debug("vmlinux: PVH entry 0x%x, initrd %llu bytes at 0x%llx", entry, (unsigned long long)isize,
		  (unsigned long long)iaddr);
	return x86_set_regs_pvh(&vm->vcpus[0], entry, PVH_START_INFO);
}

int linux_boot_load(struct vm *vm, const struct kv_bootloader *b, char *err, size_t errlen)
{
	struct file_buf k;
	int r = read_file(b->kernel, "kernel", &k, err, errlen);
	if (r < 0)
		return r;
	x86_write_reset_vector(vm);
	if (is_bzimage(&k))
		r = load_bzimage(vm, b, &k, err, errlen);
	else if (is_elf64(&k))
		r = load_elf(vm, b, &k, err, errlen);
	else {
		snprintf(err, errlen, "kernel %s is not an x86_64 Linux kernel", b->kernel);
		r = -EINVAL;
	}
	release(&k);
	if (r < 0 && !*err)
		snprintf(err, errlen, "cannot set up the boot vCPU: %s", strerror(-r));
	return r;
}
