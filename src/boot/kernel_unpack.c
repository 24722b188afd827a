/* Host-side unpacking of a bzImage's kernel: see kernel_unpack.h. What the
 * guest-side code does is in arch/x86/boot/compressed/misc.c (parse_elf,
 * handle_relocations) and kaslr.c. */
#include "kernel_unpack.h"
#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <lz4.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include "../util/log.h"
#include "../util/bytes.h"

#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20) /* lz4 -l: each block unpacks to at most this */
#define ELF_MAX_PHDRS 64


enum kernel_compression kernel_compression_of(const uint8_t *p, size_t len)
{
	if (len >= 2 && p[0] == 0x1f && (p[1] == 0x8b || p[1] == 0x9e))
		return KC_GZIP;
	if (len >= 6 && !memcmp(p, "\xfd" "7zXZ\0", 6))
		return KC_XZ;
	if (len >= 4 && rd32(p) == LZ4_LEGACY_MAGIC)
		return KC_LZ4;
	if (len >= 4 && !memcmp(p, "\x28\xb5\x2f\xfd", 4))
		return KC_ZSTD;
	return KC_UNKNOWN;
}

const char *kernel_compression_name(enum kernel_compression c)
{
	static const char *const names[] = { "unknown", "gzip", "xz", "lz4", "zstd" };
	return c <= KC_ZSTD ? names[c] : "unknown";
}

uint64_t kernel_payload_size(const uint8_t *p, size_t len)
{
	return len >= 8 ? rd32(p + len - 4) : 0;
}

/* ---- the four decompressors, each from its Debian library ---- */

struct lib {
	void *h;
	char *why;
	size_t whylen;
};

static void *sym(struct lib *l, const char *name)
{
	void *p = dlsym(l->h, name);
	if (!p)
		snprintf(l->why, l->whylen, "%s missing from its library", name);
	return p;
}

static int lz4_legacy(struct lib *l, const uint8_t *in, size_t len, uint8_t *out, size_t size)
{
	__typeof__(LZ4_decompress_safe) *dec = sym(l, "LZ4_decompress_safe");
	if (!dec)
		return -1;
	const uint8_t *p = in + 4, *end = in + len;
	size_t pos = 0;
	while (pos < size) {
		if (end - p < 4)
			return errorf(l->why, l->whylen, "lz4: truncated at %zu of %zu bytes", pos, size);
		uint32_t n = rd32(p);
		p += 4;
		if (n == LZ4_LEGACY_MAGIC)
			continue; /* concatenated streams */
		if (n == 0 || n > (size_t)(end - p) || n > INT_MAX)
			return errorf(l->why, l->whylen, "lz4: bad block of %u bytes", n);
		size_t cap = size - pos < LZ4_LEGACY_BLOCK ? size - pos : LZ4_LEGACY_BLOCK;
		int r = dec((const char *)p, (char *)out + pos, (int)n, (int)cap);
		if (r <= 0)
			return errorf(l->why, l->whylen, "lz4: corrupt block at %zu", pos);
		pos += r;
		p += n;
	}
	return 0;
}

static int gzip(struct lib *l, const uint8_t *in, size_t len, uint8_t *out, size_t size)
{
	__typeof__(inflateInit2_) *init = sym(l, "inflateInit2_");
	__typeof__(inflate) *inf = init ? sym(l, "inflate") : NULL;
	__typeof__(inflateEnd) *end = inf ? sym(l, "inflateEnd") : NULL;
	if (!end)
		return -1;
	z_stream s;
	memset(&s, 0, sizeof(s));
	if (init(&s, 16 + MAX_WBITS, ZLIB_VERSION, (int)sizeof(s)) != Z_OK)
		return errorf(l->why, l->whylen, "gzip: cannot start zlib");
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)len;
	s.next_out = out;
	s.avail_out = (uInt)size;
	int r = inf(&s, Z_FINISH);
	size_t got = s.total_out;
	end(&s);
	if (r != Z_STREAM_END || got != size)
		return errorf(l->why, l->whylen, "gzip: corrupt data (zlib %d, %zu of %zu bytes)", r, got, size);
	return 0;
}

static int xz(struct lib *l, const uint8_t *in, size_t len, uint8_t *out, size_t size)
{
	__typeof__(lzma_stream_decoder) *init = sym(l, "lzma_stream_decoder");
	__typeof__(lzma_code) *code = init ? sym(l, "lzma_code") : NULL;
	__typeof__(lzma_end) *end = code ? sym(l, "lzma_end") : NULL;
	if (!end)
		return -1;
	lzma_stream s = LZMA_STREAM_INIT;
	if (init(&s, UINT64_MAX, 0) != LZMA_OK)
		return errorf(l->why, l->whylen, "xz: cannot start liblzma");
	s.next_in = in;
	s.avail_in = len;
	s.next_out = out;
	s.avail_out = size;
	lzma_ret r = code(&s, LZMA_FINISH);
	size_t got = s.total_out;
	end(&s);
	if (r != LZMA_STREAM_END || got != size)
		return errorf(l->why, l->whylen, "xz: corrupt data (liblzma %d, %zu of %zu bytes)", (int)r, got, size);
	return 0;
}

static int zstd(struct lib *l, const uint8_t *in, size_t len, uint8_t *out, size_t size)
{
	__typeof__(ZSTD_decompress) *dec = sym(l, "ZSTD_decompress");
	__typeof__(ZSTD_isError) *is_err = dec ? sym(l, "ZSTD_isError") : NULL;
	if (!is_err)
		return -1;
	size_t r = dec(out, size, in, len);
	if (is_err(r) || r != size)
		return errorf(l->why, l->whylen, "zstd: corrupt data (%zu of %zu bytes)", is_err(r) ? 0 : r, size);
	return 0;
}

int kernel_decompress(enum kernel_compression c, const uint8_t *payload, size_t len, uint8_t *out, size_t size,
		      char *why, size_t whylen)
{
	static const struct {
		const char *soname;
		int (*fn)(struct lib *, const uint8_t *, size_t, uint8_t *, size_t);
	} fmt[] = {
		[KC_GZIP] = { "libz.so.1", gzip },
		[KC_XZ] = { "liblzma.so.5", xz },
		[KC_LZ4] = { "liblz4.so.1", lz4_legacy },
		[KC_ZSTD] = { "libzstd.so.1", zstd },
	};
	if (c == KC_UNKNOWN || c > KC_ZSTD)
		return errorf(why, whylen, "unknown compression");
	if (len < 8 || len - 4 > UINT_MAX || size > UINT_MAX)
		return errorf(why, whylen, "%s payload of %zu bytes for %zu: out of range", kernel_compression_name(c), len, size);
	struct lib l = { dlopen(fmt[c].soname, RTLD_NOW | RTLD_LOCAL), why, whylen };
	if (!l.h)
		return errorf(why, whylen, "cannot load %s: %s", fmt[c].soname, dlerror());
	*why = 0;
	int r = fmt[c].fn(&l, payload, len - 4, out, size); /* without the appended size */
	dlclose(l.h); /* its pages are not worth keeping for one boot */
	return r;
}

/* ---- the ELF image and its relocations ---- */

static void phdr_at(const uint8_t *blob, uint64_t off, Elf64_Phdr *ph) { memcpy(ph, blob + off, sizeof(*ph)); }

/* The field a relocation entry names, as an offset from the load address;
 * false when it is not inside the file-backed image. */
static bool reloc_target(uint32_t entry, uint64_t link_phys, const struct vmlinux_layout *l, unsigned width,
			 uint64_t *off)
{
	uint64_t va = (uint64_t)(int64_t)(int32_t)entry;
	*off = va - START_KERNEL_MAP - link_phys;
	return *off < l->filespan && width <= l->filespan - *off;
}

/* Walk the table from its end: three runs (32-bit, inverse 32-bit, 64-bit),
 * each closed by a zero word, the last of which must be its first word.
 * With dst, apply them; without, only check them and count. */
static int walk_relocs(const uint8_t *blob, uint64_t link_phys, const struct vmlinux_layout *l, uint8_t *dst,
		       uint64_t delta, uint64_t *count, char *why, size_t whylen)
{
	static const unsigned width[3] = { 4, 4, 8 };
	const uint8_t *table = blob + l->elf_end;
	uint64_t i = l->reloc_words, n = 0;
	for (int run = 0; run < 3; run++) {
		for (;;) {
			if (i == 0)
				return errorf(why, whylen, "relocation table without its terminators");
			uint32_t e = rd32(table + 4 * --i);
			if (!e)
				break;
			uint64_t off;
			if (!reloc_target(e, link_phys, l, width[run], &off))
				return errorf(why, whylen, "relocation 0x%08x outside the kernel image", e);
			n++;
			if (!dst)
				continue;
			if (run == 2) {
				uint64_t v;
				memcpy(&v, dst + off, 8);
				v += delta;
				memcpy(dst + off, &v, 8);
			} else {
				uint32_t v;
				memcpy(&v, dst + off, 4);
				v = run == 0 ? v + (uint32_t)delta : v - (uint32_t)delta;
				memcpy(dst + off, &v, 4);
			}
		}
	}
	if (i != 0)
		return errorf(why, whylen, "%llu bytes between the ELF image and its relocation table",
			      (unsigned long long)i * 4);
	if (count)
		*count = n;
	return 0;
}

int vmlinux_inspect(const uint8_t *blob, size_t len, uint64_t link_phys, struct vmlinux_layout *l, char *why,
		    size_t whylen)
{
	Elf64_Ehdr eh;
	memset(l, 0, sizeof(*l));
	if (len < sizeof(eh))
		return errorf(why, whylen, "not an ELF image");
	memcpy(&eh, blob, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
		return errorf(why, whylen, "not an x86_64 ELF image");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHDRS ||
	    eh.e_phoff > len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return errorf(why, whylen, "bad ELF program headers");
	uint64_t end = eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr);
	if (eh.e_shnum && eh.e_shoff <= len && (uint64_t)eh.e_shnum * eh.e_shentsize <= len - eh.e_shoff &&
	    eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize > end)
		end = eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
	unsigned loads = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		phdr_at(blob, eh.e_phoff + i * sizeof(ph), &ph);
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > len || ph.p_filesz > len - ph.p_offset ||
		    ph.p_paddr < link_phys || ph.p_paddr - link_phys > KERNEL_IMAGE_SIZE ||
		    ph.p_memsz > KERNEL_IMAGE_SIZE - (ph.p_paddr - link_phys))
			return errorf(why, whylen, "ELF segment %u outside the kernel image", i);
		if (ph.p_paddr - link_phys > ph.p_offset)
			return errorf(why, whylen, "ELF segment %u lies in the file before its place in memory", i);
		loads++;
		uint64_t at = ph.p_paddr - link_phys;
		if (at + ph.p_memsz > l->span)
			l->span = at + ph.p_memsz;
		if (at + ph.p_filesz > l->filespan)
			l->filespan = at + ph.p_filesz;
		if (ph.p_offset + ph.p_filesz > end)
			end = ph.p_offset + ph.p_filesz;
	}
	if (!loads)
		return errorf(why, whylen, "no loadable ELF segment");
	if (eh.e_entry < link_phys || eh.e_entry - link_phys >= l->filespan)
		return errorf(why, whylen, "ELF entry point 0x%llx outside the kernel image", (unsigned long long)eh.e_entry);
	l->entry_off = eh.e_entry - link_phys;
	l->elf_end = end;
	uint64_t rest = len - end;
	if (rest % 4)
		return errorf(why, whylen, "%llu bytes after the ELF image: not a relocation table", (unsigned long long)rest);
	l->reloc_words = rest / 4;
	if (!rest)
		return 0;
	return walk_relocs(blob, link_phys, l, NULL, 0, &l->relocs, why, whylen);
}

int vmlinux_place(uint8_t *blob, size_t len, uint64_t link_phys, const struct vmlinux_layout *l, uint64_t virt_delta,
		  char *why, size_t whylen)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[ELF_MAX_PHDRS];
	(void)len;
	memcpy(&eh, blob, sizeof(eh));
	for (unsigned i = 0; i < eh.e_phnum; i++)
		phdr_at(blob, eh.e_phoff + i * sizeof(ph[0]), &ph[i]);
	/* each segment moves down (or stays): its source lies below the
	 * relocation table, so the table is read intact afterwards */
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD)
			memmove(blob + (ph[i].p_paddr - link_phys), blob + ph[i].p_offset, ph[i].p_filesz);
	if (virt_delta && !l->reloc_words)
		return errorf(why, whylen, "the kernel has no relocation table");
	if (virt_delta && walk_relocs(blob, link_phys, l, blob, virt_delta, NULL, why, whylen) < 0)
		return -1;
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD)
			memset(blob + (ph[i].p_paddr - link_phys) + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
	return 0;
}
