/* Unit tests for the host-side bzImage unpacking: the four payload formats,
 * the in-place ELF layout and the KASLR relocation table, and the malformed
 * images that must be refused (the guest's own decompressor then runs). */
#define _GNU_SOURCE
#include <elf.h>
#include <glob.h>
#include <lz4.h>
#include <lzma.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <cmocka.h>
#include "../../src/boot/kernel_unpack.h"
#include "../../src/util/bytes.h"

#define LINK 0x1000000ULL
#define DELTA 0x2600000ULL


/* the kernel virtual address of an image offset, as a relocation entry */
static uint32_t va(uint64_t off) { return (uint32_t)(START_KERNEL_MAP + LINK + off); }

/* A miniature vmlinux.bin + vmlinux.relocs: two segments, text at file
 * 0x1000 -> image 0 (with 0x1000 of bss), data at file 0x4000 -> image
 * 0x3000; one relocation of each kind. Returns the blob length. */
static size_t make_kernel(uint8_t *b, size_t cap)
{
	assert_true(cap >= 0x6000);
	memset(b, 0, cap);
	Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = 1, .e_entry = LINK + 0x10,
			  .e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
			  .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 2 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	Elf64_Phdr ph[2] = {
		{ .p_type = PT_LOAD, .p_offset = 0x1000, .p_paddr = LINK, .p_filesz = 0x2000, .p_memsz = 0x3000 },
		{ .p_type = PT_LOAD, .p_offset = 0x4000, .p_paddr = LINK + 0x3000, .p_filesz = 0x1000, .p_memsz = 0x1000 },
	};
	memcpy(b, &eh, sizeof(eh));
	memcpy(b + sizeof(eh), ph, sizeof(ph));
	memset(b + 0x1000, 0xaa, 0x2000); /* text */
	wr32(b + 0x1000 + 0x100, 0x81000500);           /* 32-bit: += delta */
	wr32(b + 0x1000 + 0x200, 0x00123456);           /* inverse 32-bit: -= delta */
	wr64(b + 0x1000 + 0x300, 0xffffffff81000600ULL); /* 64-bit: += delta */
	memset(b + 0x4000, 0xbb, 0x1000); /* data */
	wr64(b + 0x4000 + 0x8, 0xffffffff81003008ULL);  /* 64-bit, in the second segment */
	/* the table after the ELF file (0x5000): 0, 64-bit..., 0, inverse..., 0, 32-bit... */
	uint8_t *t = b + 0x5000;
	uint32_t words[] = { 0, va(0x300), va(0x3008), 0, va(0x200), 0, va(0x100) };
	for (unsigned i = 0; i < sizeof(words) / 4; i++)
		wr32(t + 4 * i, words[i]);
	return 0x5000 + sizeof(words);
}

/* make_kernel(), checked and laid out for a virtual offset */
static void laid_out(uint8_t *b, size_t cap, uint64_t delta, struct vmlinux_layout *l)
{
	char why[200];
	size_t len = make_kernel(b, cap);
	assert_int_equal(vmlinux_inspect(b, len, LINK, l, why, sizeof(why)), 0);
	assert_int_equal(vmlinux_place(b, len, LINK, l, delta, why, sizeof(why)), 0);
}

static void inspect_and_place_with_kaslr(void **state)
{
	(void)state;
	static uint8_t b[0x8000];
	struct vmlinux_layout l;
	laid_out(b, sizeof(b), DELTA, &l);
	assert_int_equal(l.span, 0x4000);
	assert_int_equal(l.filespan, 0x4000);
	assert_int_equal(l.entry_off, 0x10);
	assert_int_equal(l.elf_end, 0x5000);
	assert_int_equal(l.reloc_words, 7);
	assert_int_equal(l.relocs, 4);
	/* text moved to the image start, its relocations applied */
	assert_int_equal(b[0], 0xaa);
	assert_int_equal(rd32(b + 0x100), (uint32_t)(0x81000500 + DELTA));
	assert_int_equal(rd32(b + 0x200), (uint32_t)(0x00123456 - DELTA));
	assert_int_equal(rd64(b + 0x300), 0xffffffff81000600ULL + DELTA);
	/* the bss after it zeroed, the data segment at 0x3000 */
	for (unsigned i = 0x2000; i < 0x3000; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(b[0x3000], 0xbb);
	assert_int_equal(rd64(b + 0x3008), 0xffffffff81003008ULL + DELTA);
}

static void place_without_kaslr_changes_nothing_but_layout(void **state)
{
	(void)state;
	static uint8_t b[0x8000];
	struct vmlinux_layout l;
	laid_out(b, sizeof(b), 0, &l);
	assert_int_equal(rd32(b + 0x100), 0x81000500);
	assert_int_equal(rd64(b + 0x300), 0xffffffff81000600ULL);
}

static void refuses(uint8_t *b, size_t len, const char *expect)
{
	struct vmlinux_layout l;
	char why[200] = "";
	assert_int_equal(vmlinux_inspect(b, len, LINK, &l, why, sizeof(why)), -1);
	if (!strstr(why, expect))
		fail_msg("reason \"%s\" lacks \"%s\"", why, expect);
}

static void malformed_images_refused(void **state)
{
	(void)state;
	static uint8_t b[0x8000];
	size_t len = make_kernel(b, sizeof(b));
	refuses(b, 10, "not an ELF");
	b[EI_CLASS] = ELFCLASS32;
	refuses(b, len, "not an x86_64");
	len = make_kernel(b, sizeof(b));
	/* a relocation pointing outside the image */
	wr32(b + 0x5000 + 4 * 6, va(0x10000));
	refuses(b, len, "outside the kernel image");
	/* the table loses its first terminator */
	len = make_kernel(b, sizeof(b));
	wr32(b + 0x5000, 0x81000000);
	refuses(b, len, "without its terminators");
	/* words between the ELF image and the table */
	len = make_kernel(b, sizeof(b));
	memmove(b + 0x5004, b + 0x5000, 28);
	wr32(b + 0x5000, 0);
	refuses(b, len + 4, "between the ELF image and its relocation table");
	/* an odd tail */
	len = make_kernel(b, sizeof(b));
	refuses(b, len + 2, "not a relocation table");
	/* a segment that would have to move up */
	len = make_kernel(b, sizeof(b));
	Elf64_Phdr ph;
	memcpy(&ph, b + sizeof(Elf64_Ehdr), sizeof(ph));
	ph.p_paddr = LINK + 0x2000;
	memcpy(b + sizeof(Elf64_Ehdr), &ph, sizeof(ph));
	refuses(b, len, "before its place in memory");
	/* below the link address, past the 1 GiB window, past the file */
	ph.p_paddr = LINK - 0x1000;
	memcpy(b + sizeof(Elf64_Ehdr), &ph, sizeof(ph));
	refuses(b, len, "outside the kernel image");
	ph.p_paddr = LINK;
	ph.p_memsz = KERNEL_IMAGE_SIZE + 1;
	memcpy(b + sizeof(Elf64_Ehdr), &ph, sizeof(ph));
	refuses(b, len, "outside the kernel image");
	ph.p_memsz = ph.p_filesz = 0x100000;
	memcpy(b + sizeof(Elf64_Ehdr), &ph, sizeof(ph));
	refuses(b, len, "outside the kernel image");
	/* the entry point outside */
	len = make_kernel(b, sizeof(b));
	Elf64_Ehdr eh;
	memcpy(&eh, b, sizeof(eh));
	eh.e_entry = LINK + 0x400000;
	memcpy(b, &eh, sizeof(eh));
	refuses(b, len, "entry point");
	eh.e_entry = LINK;
	eh.e_phnum = 0;
	memcpy(b, &eh, sizeof(eh));
	refuses(b, len, "program headers");
}

static void no_relocation_table_means_no_virtual_kaslr(void **state)
{
	(void)state;
	static uint8_t b[0x8000];
	char why[200];
	make_kernel(b, sizeof(b));
	struct vmlinux_layout l;
	assert_int_equal(vmlinux_inspect(b, 0x5000, LINK, &l, why, sizeof(why)), 0);
	assert_int_equal(l.reloc_words, 0);
	assert_int_equal(vmlinux_place(b, 0x5000, LINK, &l, DELTA, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "no relocation table"));
}

/* ---- payload formats: compressed here, with the size the kernel build appends ---- */

static uint8_t plain[300000], packed[400000], out[300000];

static void fill_plain(void)
{
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)((i * 7) ^ (i >> 9));
}

static size_t append_size(size_t n)
{
	wr32(packed + n, sizeof(plain));
	return n + 4;
}

static size_t pack(enum kernel_compression c)
{
	fill_plain();
	size_t n = 0;
	switch (c) {
	case KC_LZ4: { /* lz4 -l: magic, then [size][block] */
		wr32(packed, 0x184c2102);
		int r = LZ4_compress_default((char *)plain, (char *)packed + 8, sizeof(plain), sizeof(packed) - 12);
		assert_true(r > 0);
		wr32(packed + 4, r);
		n = 8 + r;
		break;
	}
	case KC_GZIP: {
		z_stream s = { 0 };
		assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
		s.next_in = plain;
		s.avail_in = sizeof(plain);
		s.next_out = packed;
		s.avail_out = sizeof(packed) - 4;
		assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
		n = s.total_out;
		deflateEnd(&s);
		break;
	}
	case KC_XZ:
		assert_int_equal(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, plain, sizeof(plain), packed, &n,
							 sizeof(packed) - 4), LZMA_OK);
		break;
	case KC_ZSTD:
		n = ZSTD_compress(packed, sizeof(packed) - 4, plain, sizeof(plain), 3);
		assert_false(ZSTD_isError(n));
		break;
	default:
		fail();
	}
	return append_size(n);
}

static void formats_round_trip(void **state)
{
	(void)state;
	static const enum kernel_compression all[] = { KC_LZ4, KC_GZIP, KC_XZ, KC_ZSTD };
	for (unsigned i = 0; i < 4; i++) {
		char why[200] = "";
		size_t n = pack(all[i]);
		assert_int_equal(kernel_compression_of(packed, n), all[i]);
		assert_int_equal(kernel_payload_size(packed, n), sizeof(plain));
		memset(out, 0, sizeof(out));
		if (kernel_decompress(all[i], packed, n, out, sizeof(out), why, sizeof(why)) != 0)
			fail_msg("%s: %s", kernel_compression_name(all[i]), why);
		assert_memory_equal(out, plain, sizeof(plain));
		/* the size the payload claims must be exact */
		assert_int_equal(kernel_decompress(all[i], packed, n, out, sizeof(out) - 1, why, sizeof(why)), -1);
		/* a truncated payload: refused with a reason, never a crash */
		wr32(packed + n / 2, sizeof(plain));
		why[0] = 0;
		assert_int_equal(kernel_decompress(all[i], packed, n / 2 + 4, out, sizeof(out), why, sizeof(why)), -1);
		assert_true(why[0]);
	}
}

static void lz4_framing_errors(void **state)
{
	(void)state;
	char why[200];
	size_t n = pack(KC_LZ4);
	/* a block longer than the payload */
	wr32(packed + 4, 0x7fffffff);
	assert_int_equal(kernel_decompress(KC_LZ4, packed, n, out, sizeof(out), why, sizeof(why)), -1);
	assert_non_null(strstr(why, "bad block"));
	/* truncated: the stream ends before the promised size */
	n = pack(KC_LZ4);
	assert_int_equal(kernel_decompress(KC_LZ4, packed, n, out, sizeof(out) + 0, why, sizeof(why)), 0);
	static uint8_t big[sizeof(out) * 2];
	assert_int_equal(kernel_decompress(KC_LZ4, packed, n, big, sizeof(big), why, sizeof(why)), -1);
	assert_non_null(strstr(why, "truncated"));
}

static void magic_detection(void **state)
{
	(void)state;
	assert_int_equal(kernel_compression_of((const uint8_t *)"\x1f\x8b\x08", 3), KC_GZIP);
	assert_int_equal(kernel_compression_of((const uint8_t *)"\xfd" "7zXZ\0", 6), KC_XZ);
	assert_int_equal(kernel_compression_of((const uint8_t *)"\x02\x21\x4c\x18", 4), KC_LZ4);
	assert_int_equal(kernel_compression_of((const uint8_t *)"\x28\xb5\x2f\xfd", 4), KC_ZSTD);
	assert_int_equal(kernel_compression_of((const uint8_t *)"BZh91AY", 7), KC_UNKNOWN); /* bzip2: left to the guest */
	assert_int_equal(kernel_compression_of((const uint8_t *)"\x89LZO", 4), KC_UNKNOWN);
	assert_int_equal(kernel_compression_of(NULL, 0), KC_UNKNOWN);
	assert_int_equal(kernel_payload_size((const uint8_t *)"abc", 3), 0);
	char why[100];
	assert_int_equal(kernel_decompress(KC_UNKNOWN, packed, 100, out, 100, why, sizeof(why)), -1);
}

/* Debian's own kernels (the cloud one is LZ4, the generic one xz): unpacked
 * here, their ELF image and relocation table pass the checks */
static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	rewind(f);
	uint8_t *b = malloc(*len);
	if (fread(b, 1, *len, f) != *len) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

static void real_debian_kernels(void **state)
{
	(void)state;
	glob_t g;
	if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0 || g.gl_pathc == 0) {
		printf("SKIPPED: no kernel in /boot (scripts/setup.sh installs Debian's)\n");
		return;
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		size_t len;
		uint8_t *k = read_all(g.gl_pathv[i], &len);
		assert_non_null(k);
		assert_true(len > 0x268);
		size_t setup = ((k[0x1f1] ? k[0x1f1] : 4) + 1) * 512;
		uint32_t poff = rd32(k + 0x248), plen = rd32(k + 0x24c);
		uint64_t link = rd64(k + 0x258);
		assert_true(setup + poff + plen <= len);
		const uint8_t *payload = k + setup + poff;
		enum kernel_compression c = kernel_compression_of(payload, plen);
		uint64_t size = kernel_payload_size(payload, plen);
		printf("%s: %s, %u -> %llu bytes\n", g.gl_pathv[i], kernel_compression_name(c), plen,
		       (unsigned long long)size);
		assert_int_not_equal(c, KC_UNKNOWN);
		uint8_t *blob = malloc(size);
		char why[200];
		if (kernel_decompress(c, payload, plen, blob, size, why, sizeof(why)) != 0)
			fail_msg("%s: %s", g.gl_pathv[i], why);
		struct vmlinux_layout l;
		if (vmlinux_inspect(blob, size, link, &l, why, sizeof(why)) != 0)
			fail_msg("%s: %s", g.gl_pathv[i], why);
		assert_true(l.relocs > 10000);
		assert_true(l.span > (8u << 20) && l.span <= rd32(k + 0x260)); /* within init_size */
		assert_int_equal(l.entry_off, 0); /* startup_64 opens the image */
		free(blob);
		free(k);
	}
	globfree(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(inspect_and_place_with_kaslr),
		cmocka_unit_test(place_without_kaslr_changes_nothing_but_layout),
		cmocka_unit_test(malformed_images_refused),
		cmocka_unit_test(no_relocation_table_means_no_virtual_kaslr),
		cmocka_unit_test(formats_round_trip),
		cmocka_unit_test(lz4_framing_errors),
		cmocka_unit_test(magic_detection),
		cmocka_unit_test(real_debian_kernels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
