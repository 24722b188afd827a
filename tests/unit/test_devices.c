/* Unit tests for the UEFI platform devices: CFI flash, fw_cfg, CMOS RTC,
 * PIIX4 PM, the variable-store check. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "kvkit/config.h"
#include "../../src/arch/x86/acpi.h"
#include "../../src/arch/x86/layout.h"
#include "../../src/arch/x86/smbios.h"
#include "../../src/boot/efi.h"
#include "../../src/devices/fw_cfg.h"
#include "../../src/devices/pflash.h"
#include "../../src/devices/piix4_pm.h"
#include "../../src/devices/rtc.h"
#include "../../src/pci/pci.h"

static void wr8(struct pflash *f, uint64_t off, uint8_t v) { pflash_access(f, off, &v, 1, true); }
static uint8_t rd8(struct pflash *f, uint64_t off)
{
	uint8_t v;
	pflash_access(f, off, &v, 1, false);
	return v;
}

static int direct_calls, direct_on = 1;
static void track_direct(struct pflash *f, bool on)
{
	(void)f;
	direct_calls++;
	direct_on = on;
}

/* OVMF's QemuFlashDetected, step by step: it must conclude "flash" */
static void flash_detected_like_ovmf(void **state)
{
	(void)state;
	uint8_t mem[8192];
	memset(mem, 0x5a, sizeof(mem));
	struct pflash f;
	pflash_init(&f, "t", mem, sizeof(mem), 4096, -1, false);
	f.set_direct = track_direct;
	direct_calls = 0;
	uint8_t orig = rd8(&f, 0);
	wr8(&f, 0, 0x50); /* clear status */
	uint8_t probe = rd8(&f, 0);
	assert_int_equal(probe, orig); /* not RAM: the 0x50 did not stick */
	wr8(&f, 0, 0x70);              /* read status */
	assert_false(direct_on);      /* reads must trap now */
	assert_int_equal(rd8(&f, 0), 0x00); /* CLEARED_ARRAY_STATUS: "flash" */
	wr8(&f, 0, 0xff);
	assert_true(direct_on);
	assert_int_equal(rd8(&f, 0), 0x5a);
	assert_int_equal(mem[0], 0x5a); /* the probe changed nothing */
}

static void flash_program_erase_reach_the_file(void **state)
{
	(void)state;
	char path[] = "/tmp/kvkit-pflash-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint8_t mem[8192], disk[8192];
	memset(mem, 0xff, sizeof(mem));
	assert_int_equal(pwrite(fd, mem, sizeof(mem), 0), (ssize_t)sizeof(mem));
	struct pflash f;
	pflash_init(&f, "t", mem, sizeof(mem), 4096, fd, false);
	/* program three bytes as OVMF's QemuFlashWrite does */
	const char *s = "abc";
	for (int i = 0; i < 3; i++) {
		wr8(&f, 4100 + i, 0x10);
		wr8(&f, 4100 + i, (uint8_t)s[i]);
	}
	assert_int_equal(rd8(&f, 4100) & 0x80, 0x80); /* status: ready */
	wr8(&f, 4100, 0xff);
	assert_memory_equal(mem + 4100, "abc", 3);
	assert_int_equal(pread(fd, disk, sizeof(disk), 0), (ssize_t)sizeof(disk));
	assert_memory_equal(disk + 4100, "abc", 3);
	/* erase the block at 4096: the whole block is 0xff again, block 0 kept */
	mem[10] = 0x11;
	wr8(&f, 4200, 0x20);
	wr8(&f, 4200, 0xd0);
	wr8(&f, 4200, 0xff);
	assert_int_equal(mem[4100], 0xff);
	assert_int_equal(mem[10], 0x11);
	assert_int_equal(pread(fd, disk, sizeof(disk), 0), (ssize_t)sizeof(disk));
	assert_int_equal(disk[4100], 0xff);
	/* an erase without its confirm erases nothing and flags an error */
	wr8(&f, 100, 0x10);
	wr8(&f, 100, 0x42);
	wr8(&f, 100, 0x20);
	wr8(&f, 100, 0x00);
	assert_int_equal(mem[100], 0x42);
	wr8(&f, 0, 0x70);
	assert_int_equal(rd8(&f, 0) & 0x30, 0x30);
	wr8(&f, 0, 0x50);
	wr8(&f, 0, 0x70);
	assert_int_equal(rd8(&f, 0), 0);
	wr8(&f, 0, 0xff);
	close(fd);
	unlink(path);
}

static void flash_readonly_and_bounds(void **state)
{
	(void)state;
	uint8_t mem[4096];
	memset(mem, 0x33, sizeof(mem));
	struct pflash f;
	pflash_init(&f, "code", mem, sizeof(mem), 4096, -1, true);
	wr8(&f, 0, 0x20);
	wr8(&f, 0, 0xd0);
	assert_int_equal(mem[0], 0x33);
	assert_int_equal(rd8(&f, 0), 0x33);
	uint8_t buf[8] = { 0 };
	pflash_access(&f, 4092, buf, 8, false); /* crosses the end */
	assert_int_equal(buf[0], 0xff);
	pflash_access(&f, UINT64_MAX - 2, buf, 4, false);
	assert_int_equal(buf[0], 0xff);
	/* CFI query and ID modes */
	struct pflash g;
	uint8_t mem2[8192];
	pflash_init(&g, "vars", mem2, sizeof(mem2), 4096, -1, false);
	wr8(&g, 0, 0x98);
	assert_int_equal(rd8(&g, 0x10), 'Q');
	assert_int_equal(rd8(&g, 0x11), 'R');
	assert_int_equal(rd8(&g, 0x12), 'Y');
	assert_int_equal(rd8(&g, 0x2d), 1); /* two blocks */
	wr8(&g, 0, 0x90);
	assert_int_equal(rd8(&g, 0), 0x89);
	wr8(&g, 0, 0xff);
}

static void fw_read(struct fw_cfg *c, uint16_t key, void *out, unsigned len)
{
	uint8_t sel[2] = { key & 0xff, key >> 8 };
	fw_cfg_io(c, 0, sel, 2, true);
	uint8_t *o = out;
	for (unsigned i = 0; i < len; i++)
		fw_cfg_io(c, 1, o + i, 1, false);
}

static void fw_cfg_items_and_directory(void **state)
{
	(void)state;
	struct fw_cfg c;
	fw_cfg_init(&c);
	uint16_t n = 3;
	assert_int_equal(fw_cfg_add(&c, FW_CFG_SIGNATURE, "QEMU", 4), 0);
	assert_int_equal(fw_cfg_add(&c, FW_CFG_NB_CPUS, &n, 2), 0);
	assert_int_equal(fw_cfg_add_file(&c, "etc/zeta", "zz", 2), 0);
	assert_int_equal(fw_cfg_add_file(&c, "etc/alpha", "aaaa", 4), 0);
	char longname[80];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[79] = 0;
	assert_int_equal(fw_cfg_add_file(&c, longname, "", 0), -1);
	assert_int_equal(fw_cfg_finish(&c), 0);

	char sig[5] = { 0 };
	fw_read(&c, FW_CFG_SIGNATURE, sig, 4);
	assert_string_equal(sig, "QEMU");
	uint8_t dir[4 + 2 * 64];
	fw_read(&c, FW_CFG_FILE_DIR, dir, sizeof(dir));
	assert_int_equal(dir[3], 2);
	assert_string_equal((char *)dir + 4 + 8, "etc/alpha"); /* sorted */
	assert_int_equal(dir[4 + 3], 4);                      /* big-endian size */
	uint16_t key = (uint16_t)(dir[4 + 4] << 8 | dir[4 + 5]);
	assert_string_equal((char *)dir + 4 + 64 + 8, "etc/zeta");
	char data[6] = { 0 };
	fw_read(&c, key, data, 5); /* past the end reads zeros */
	assert_string_equal(data, "aaaa");
	/* an unknown key reads zeros; the data port ignores writes */
	uint8_t z = 0x77;
	fw_read(&c, 0x1234, &z, 1);
	assert_int_equal(z, 0);
	fw_cfg_io(&c, 1, &z, 1, true);
	fw_cfg_free(&c);
}

static time_t fixed_now(void) { return 1700000000; } /* 2023-11-14 22:13:20 UTC */

static uint8_t cmos(struct rtc *r, uint8_t idx)
{
	uint8_t v;
	rtc_io(r, 0, &idx, 1, true);
	rtc_io(r, 1, &v, 1, false);
	return v;
}
static void cmos_w(struct rtc *r, uint8_t idx, uint8_t v)
{
	rtc_io(r, 0, &idx, 1, true);
	rtc_io(r, 1, &v, 1, true);
}

static void rtc_time_bcd_binary_and_set(void **state)
{
	(void)state;
	struct rtc r;
	rtc_init(&r, 3ULL << 30, 1ULL << 30, 2);
	r.now = fixed_now;
	assert_int_equal(cmos(&r, 0x00), 0x20); /* seconds, BCD */
	assert_int_equal(cmos(&r, 0x02), 0x13);
	assert_int_equal(cmos(&r, 0x04), 0x22);
	assert_int_equal(cmos(&r, 0x07), 0x14);
	assert_int_equal(cmos(&r, 0x08), 0x11);
	assert_int_equal(cmos(&r, 0x09), 0x23);
	assert_int_equal(cmos(&r, 0x32), 0x20);
	assert_int_equal(cmos(&r, 0x0a) & 0x80, 0); /* no update in progress */
	/* memory: 3 GiB below 4G -> (3G - 16M) / 64K; 1 GiB above -> 0x4000 */
	assert_int_equal(cmos(&r, 0x34) | cmos(&r, 0x35) << 8, ((3u << 30) - (16u << 20)) >> 16);
	assert_int_equal(cmos(&r, 0x5b) | cmos(&r, 0x5c) << 8, 0x4000);
	/* binary mode */
	cmos_w(&r, 0x0b, 0x02 | 0x04);
	assert_int_equal(cmos(&r, 0x00), 20);
	/* set 2024-02-29 12:00:00 with SET on: nothing moves until SET clears,
	 * and the day is not normalised against the old month */
	cmos_w(&r, 0x0b, 0x80 | 0x02 | 0x04);
	cmos_w(&r, 0x09, 24);
	cmos_w(&r, 0x07, 29);
	cmos_w(&r, 0x08, 2);
	cmos_w(&r, 0x04, 12);
	cmos_w(&r, 0x02, 0);
	cmos_w(&r, 0x00, 0);
	assert_int_equal(r.offset, 0);
	cmos_w(&r, 0x0b, 0x02 | 0x04);
	assert_int_equal(cmos(&r, 0x07), 29);
	assert_int_equal(cmos(&r, 0x08), 2);
	assert_int_equal(cmos(&r, 0x09), 24);
	assert_int_equal(cmos(&r, 0x04), 12);
	/* out-of-range values are ignored; CMOS RAM keeps bytes */
	cmos_w(&r, 0x04, 99);
	assert_int_equal(cmos(&r, 0x04), 12);
	cmos_w(&r, 0x40, 0xab);
	assert_int_equal(cmos(&r, 0x40), 0xab);
	/* 12-hour BCD: 12:xx is 12 PM */
	cmos_w(&r, 0x0b, 0x00);
	assert_int_equal(cmos(&r, 0x04), 0x92);
}

static int powered_off;
static void pm_off(void *o) { (void)o; powered_off++; }

static void pm_timer_runs_and_s5_powers_off(void **state)
{
	(void)state;
	struct piix4_pm p;
	piix4_pm_setup(&p, pm_off, NULL);
	assert_int_equal(p.f.cfg[0x02] | p.f.cfg[0x03] << 8, 0x7113);
	uint32_t t1 = 0, t2 = 0;
	piix4_pm_io(&p, 8, (uint8_t *)&t1, 4, false);
	usleep(20000);
	piix4_pm_io(&p, 8, (uint8_t *)&t2, 4, false);
	uint32_t d = (t2 - t1) & 0xffffff;
	assert_true(d > 3579545 / 100 && d < 3579545 / 2); /* 20 ms, generously */
	uint16_t v = (uint16_t)(5 << 10); /* SLP_TYP without SLP_EN: nothing */
	piix4_pm_io(&p, 4, (uint8_t *)&v, 2, true);
	assert_int_equal(powered_off, 0);
	v = (uint16_t)(1 << 13); /* SLP_EN, type 0: the PIIX4's S5 */
	piix4_pm_io(&p, 4, (uint8_t *)&v, 2, true);
	assert_int_equal(powered_off, 1);
}

static void fv_header(uint8_t *b, size_t len)
{
	memset(b, 0xff, len);
	memset(b, 0, 0x48);
	memcpy(b + 0x10, "0123456789abcdef", 16);
	uint64_t l = len;
	memcpy(b + 0x20, &l, 8);
	memcpy(b + 0x28, "_FVH", 4);
	uint16_t hl = 0x48;
	memcpy(b + 0x30, &hl, 2);
	memcpy(b + 0x48, "VARSTOREGUID....", 16);
	uint16_t sum = 0;
	for (unsigned i = 0; i < 0x48; i += 2) {
		uint16_t w;
		memcpy(&w, b + i, 2);
		sum = (uint16_t)(sum + w);
	}
	sum = (uint16_t)-sum;
	memcpy(b + 0x32, &sum, 2);
}

static void store_check(void **state)
{
	(void)state;
	static uint8_t tmpl[8192], store[8192];
	fv_header(tmpl, sizeof(tmpl));
	memcpy(store, tmpl, sizeof(store));
	store[5000] = 0x12; /* variables differ: still this firmware's store */
	assert_int_equal(efi_store_matches(store, sizeof(store), tmpl, sizeof(tmpl)), 1);
	assert_int_equal(efi_store_matches(store, 4096, tmpl, sizeof(tmpl)), 0);
	store[0x31] ^= 1; /* header checksum broken */
	assert_int_equal(efi_store_matches(store, sizeof(store), tmpl, sizeof(tmpl)), 0);
	store[0x31] ^= 1;
	store[0x48] = 'X'; /* another variable format */
	assert_int_equal(efi_store_matches(store, sizeof(store), tmpl, sizeof(tmpl)), 0);
	store[0x48] = 'V';
	memset(store + 0x28, 0, 4);
	assert_int_equal(efi_store_matches(store, sizeof(store), tmpl, sizeof(tmpl)), 0);
}

static const struct fw_cfg_item *file_item(const struct fw_cfg *c, const char *name)
{
	for (unsigned i = 0; i < c->n; i++)
		if (!strcmp(c->item[i].name, name))
			return &c->item[i];
	return NULL;
}

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

/* Run the table loader the way OVMF does (blobs at made-up addresses,
 * pointers relocated, checksums set), then walk RSDP -> XSDT -> tables,
 * each of which must pass OVMF's checksum test to be installed. */
static void acpi_loader_script_links_valid_tables(void **state)
{
	(void)state;
	struct fw_cfg c;
	fw_cfg_init(&c);
	pci_set_mmio64(0x140000000ULL, (1ULL << 40) - 0x140000000ULL);
	assert_int_equal(acpi_firmware_files(4, fw_cfg_add_file_to, &c), 0);
	const struct fw_cfg_item *rsdp_i = file_item(&c, "etc/acpi/rsdp"), *tab_i = file_item(&c, "etc/acpi/tables"),
				 *ld = file_item(&c, "etc/table-loader");
	assert_non_null(rsdp_i);
	assert_non_null(tab_i);
	assert_non_null(ld);
	assert_int_equal(ld->len % 128, 0);
	/* "guest memory": rsdp at 0x1000, tables at 0x10000 */
	static uint8_t mem[0x40000];
	memcpy(mem + 0x1000, rsdp_i->data, rsdp_i->len);
	memcpy(mem + 0x10000, tab_i->data, tab_i->len);
	for (uint32_t o = 0; o < ld->len; o += 128) {
		const uint8_t *cmd = ld->data + o;
		uint32_t kind;
		memcpy(&kind, cmd, 4);
		const char *f1 = (const char *)cmd + 4;
		uint64_t base1 = !strcmp(f1, "etc/acpi/rsdp") ? 0x1000 : 0x10000;
		if (kind == 2) {
			const char *f2 = (const char *)cmd + 4 + 56;
			uint32_t off;
			memcpy(&off, cmd + 4 + 112, 4);
			uint8_t size = cmd[4 + 116];
			uint64_t v = 0, base2 = !strcmp(f2, "etc/acpi/rsdp") ? 0x1000 : 0x10000;
			memcpy(&v, mem + base1 + off, size);
			v += base2;
			memcpy(mem + base1 + off, &v, size);
		} else if (kind == 3) {
			uint32_t at, start, len;
			memcpy(&at, cmd + 4 + 56, 4);
			memcpy(&start, cmd + 4 + 60, 4);
			memcpy(&len, cmd + 4 + 64, 4);
			/* OVMF's ProcessCmdAddChecksum: the byte is assigned
			 * 0 - sum(range), its own old value included */
			mem[base1 + at] = (uint8_t)-sum8(mem + base1 + start, len);
		} else {
			assert_int_equal(kind, 1);
		}
	}
	uint8_t *rsdp = mem + 0x1000;
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum8(rsdp, 20), 0);
	assert_int_equal(sum8(rsdp, 36), 0);
	uint64_t xsdt;
	memcpy(&xsdt, rsdp + 24, 8);
	assert_true(xsdt >= 0x10000 && xsdt < 0x10000 + tab_i->len);
	uint8_t *x = mem + xsdt;
	assert_memory_equal(x, "XSDT", 4);
	uint32_t xlen;
	memcpy(&xlen, x + 4, 4);
	assert_int_equal(sum8(x, xlen), 0);
	int seen_dsdt = 0;
	for (uint32_t i = 36; i < xlen; i += 8) {
		uint64_t t;
		memcpy(&t, x + i, 8);
		assert_true(t >= 0x10000 && t < 0x10000 + tab_i->len);
		uint32_t tl;
		memcpy(&tl, mem + t + 4, 4);
		assert_int_equal(sum8(mem + t, tl), 0);
		if (!memcmp(mem + t, "FACP", 4)) {
			uint64_t d;
			memcpy(&d, mem + t + 140, 8); /* X_DSDT */
			uint32_t d32;
			memcpy(&d32, mem + t + 40, 4);
			assert_int_equal(d, d32);
			assert_memory_equal(mem + d, "DSDT", 4);
			uint32_t dl;
			memcpy(&dl, mem + d + 4, 4);
			assert_int_equal(sum8(mem + d, dl), 0);
			/* the PCI host bridge's 64-bit window is the one kvkit set */
			static const uint64_t window[] = { 0x140000000ULL, (1ULL << 40) - 1, 0,
							   (1ULL << 40) - 0x140000000ULL };
			assert_non_null(memmem(mem + d, dl, window, sizeof(window)));
			assert_int_equal(*((uint8_t *)memmem(mem + d, dl, window, sizeof(window)) - 14), 0x8a);
			seen_dsdt = 1;
		}
	}
	assert_true(seen_dsdt);
	fw_cfg_free(&c);
}

/* Walk an SMBIOS structure table the way dmidecode and OVMF do: each
 * structure's formatted part, then strings up to a double NUL. Returns
 * the types in order; checks handles are unique and string numbers exist. */
static unsigned smbios_walk(const uint8_t *t, size_t len, uint8_t *types, unsigned max)
{
	unsigned n = 0;
	uint16_t handles[64];
	size_t at = 0;
	while (at < len) {
		assert_true(len - at >= 4);
		uint8_t type = t[at], flen = t[at + 1];
		uint16_t h;
		memcpy(&h, t + at + 2, 2);
		assert_true(flen >= 4 && at + flen + 2 <= len);
		for (unsigned i = 0; i < n; i++)
			assert_int_not_equal(handles[i], h);
		/* the strings: count them, find the double NUL */
		size_t p = at + flen;
		unsigned nstr = 0;
		if (t[p] == 0) {
			assert_int_equal(t[p + 1], 0);
			p += 2;
		} else {
			while (t[p]) {
				nstr++;
				p += strlen((const char *)t + p) + 1;
				assert_true(p < len);
			}
			p++;
		}
		/* every string reference in the formatted part of the types
		 * built here points at a string that exists */
		static const struct { uint8_t type, off; } refs[] = {
			{ 1, 4 }, { 1, 5 }, { 1, 6 }, { 1, 0x1a }, { 3, 4 }, { 3, 6 }, { 4, 4 }, { 4, 7 }, { 4, 0x10 },
			{ 17, 0x10 }, { 17, 0x17 },
		};
		for (unsigned i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
			if (refs[i].type == type) {
				assert_true(t[at + refs[i].off] >= 1);
				assert_true(t[at + refs[i].off] <= nstr);
			}
		assert_true(n < max && n < 64);
		handles[n] = h;
		types[n++] = type;
		at = p;
		if (type == 127)
			break;
	}
	assert_int_equal(at, len); /* nothing after the end structure */
	return n;
}

static void smbios_tables_walk_and_anchor_matches(void **state)
{
	(void)state;
	/* 2 vCPUs, 3 GiB below 4 GiB and 61 GiB above: extended sizes */
	struct smbios_machine m = { .ncpus = 2, .low_ram = 3ULL << 30, .high_ram = 61ULL << 30 };
	struct fw_cfg c;
	fw_cfg_init(&c);
	assert_int_equal(smbios_firmware_files(&m, fw_cfg_add_file_to, &c), 0);
	const struct fw_cfg_item *anchor = file_item(&c, "etc/smbios/smbios-anchor"),
				 *tables = file_item(&c, "etc/smbios/smbios-tables");
	assert_non_null(anchor);
	assert_non_null(tables);
	/* what OVMF's DetectSmbiosVersion checks before it uses the tables */
	assert_int_equal(anchor->len, 24);
	assert_memory_equal(anchor->data, "_SM3_", 5);
	assert_int_equal(anchor->data[7], 3);
	uint32_t max;
	memcpy(&max, anchor->data + 12, 4);
	assert_int_equal(max, tables->len);
	uint8_t sum = 0;
	for (unsigned i = 0; i < 24; i++)
		sum += anchor->data[i];
	assert_int_equal(sum, 0);

	uint8_t types[32];
	unsigned n = smbios_walk(tables->data, tables->len, types, 32);
	static const uint8_t want[] = { 1, 3, 4, 4, 16, 17, 19, 19, 32, 127 };
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(types, want, sizeof(want));
	/* the memory device holds all 64 GiB (extended size, in MiB) and the
	 * high mapping ends at 4 GiB + 61 GiB - 1 KiB (in KiB) */
	const uint8_t *t = tables->data;
	size_t at = 0;
	unsigned seen19 = 0;
	while (t[at] != 127) {
		if (t[at] == 17) {
			uint16_t sz;
			uint32_t ext;
			memcpy(&sz, t + at + 0xc, 2);
			memcpy(&ext, t + at + 0x1c, 4);
			assert_int_equal(sz, 0x7fff);
			assert_int_equal(ext, 64 * 1024);
		}
		if (t[at] == 19 && seen19++ == 1) {
			uint32_t start, end;
			memcpy(&start, t + at + 4, 4);
			memcpy(&end, t + at + 8, 4);
			assert_int_equal(start, 4u << 20);
			assert_int_equal(end, (65u << 20) - 1);
		}
		size_t p = at + t[at + 1];
		while (t[p] || t[p + 1])
			p++;
		at = p + 2;
	}
	fw_cfg_free(&c);

	/* 255 vCPUs still fit the legacy area; a too-small buffer is refused */
	static uint8_t buf[SMBIOS_SIZE];
	m.ncpus = 255;
	assert_true(smbios_build(&m, buf, SMBIOS_SIZE - 32) > 0);
	assert_int_equal(smbios_build(&m, buf, 100), 0);
}

/* Debian's own template passes the store check (when ovmf is installed) */
static void ovmf_template_is_a_store(void **state)
{
	(void)state;
	FILE *f = fopen(OVMF_VARS_DEFAULT, "rb");
	if (!f) {
		printf("SKIP: %s not installed\n", OVMF_VARS_DEFAULT);
		return;
	}
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	assert_int_equal(efi_store_matches(buf, n, buf, n), 1);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

/* The store's life with a made-up firmware (firmware= and vars-template=):
 * created when missing, kept when valid, replaced (old one kept aside) when
 * foreign, locked against a second VM, refused without create. */
static void store_created_kept_replaced_and_locked(void **state)
{
	(void)state;
	char dir[] = "/tmp/kvkit-efi-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char code[128], vars[128], store[128], invalid[160];
	snprintf(code, sizeof(code), "%s/T_CODE.fd", dir);
	snprintf(vars, sizeof(vars), "%s/T_VARS.fd", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(invalid, sizeof(invalid), "%s.invalid", store);
	static uint8_t tmpl[8192], buf[16384], codebuf[4096];
	fv_header(tmpl, sizeof(tmpl));
	memset(codebuf, 0x90, sizeof(codebuf));
	write_file(code, codebuf, sizeof(codebuf));
	write_file(vars, tmpl, sizeof(tmpl));
	struct kv_bootloader b = { .kind = KV_BOOT_EFI, .efi_store = store, .efi_firmware = code };
	char err[512];

	/* missing, no create: refused, nothing made */
	assert_int_equal(efi_boot_validate(&b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not exist"));
	assert_int_equal(access(store, F_OK), -1);
	/* create: made from the template (the VARS name derived from CODE) */
	b.efi_create = true;
	assert_int_equal(efi_boot_validate(&b, err, sizeof(err)), 0);
	int fd = efi_store_prepare(&b, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(read_file(store, buf, sizeof(buf)), sizeof(tmpl));
	assert_memory_equal(buf, tmpl, sizeof(tmpl));
	/* a second VM on the same store is refused while the first holds it */
	assert_int_equal(efi_store_prepare(&b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "in use by another VM"));
	/* the guest's variables (a change past the headers) are kept by create */
	assert_int_equal(pwrite(fd, "VARIABLE", 8, 5000), 8);
	close(fd);
	fd = efi_store_prepare(&b, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(read_file(store, buf, sizeof(buf)), sizeof(tmpl));
	assert_memory_equal(buf + 5000, "VARIABLE", 8);
	assert_int_equal(access(invalid, F_OK), -1);
	/* wrong size without create: refused, untouched */
	write_file(store, "short", 5);
	b.efi_create = false;
	assert_int_equal(efi_boot_validate(&b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "wrong size"));
	assert_int_equal(read_file(store, buf, sizeof(buf)), 5);
	/* with create: replaced, the old one kept as .invalid */
	b.efi_create = true;
	fd = efi_store_prepare(&b, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(read_file(store, buf, sizeof(buf)), sizeof(tmpl));
	assert_int_equal(read_file(invalid, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "short", 5);
	/* empty with create: made, nothing to keep aside */
	unlink(invalid);
	write_file(store, "", 0);
	fd = efi_store_prepare(&b, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(access(invalid, F_OK), -1);
	/* a firmware name without CODE needs vars-template= */
	b.efi_firmware = vars;
	assert_int_equal(efi_boot_validate(&b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "vars-template="));
	b.efi_vars_template = vars;
	assert_int_equal(efi_boot_validate(&b, err, sizeof(err)), 0);
	/* no temporary files left behind */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test $(ls %s | wc -l) -eq 3 && rm -rf %s", dir, dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(flash_detected_like_ovmf),
		cmocka_unit_test(smbios_tables_walk_and_anchor_matches),
		cmocka_unit_test(flash_program_erase_reach_the_file),
		cmocka_unit_test(flash_readonly_and_bounds),
		cmocka_unit_test(fw_cfg_items_and_directory),
		cmocka_unit_test(rtc_time_bcd_binary_and_set),
		cmocka_unit_test(pm_timer_runs_and_s5_powers_off),
		cmocka_unit_test(store_check),
		cmocka_unit_test(acpi_loader_script_links_valid_tables),
		cmocka_unit_test(ovmf_template_is_a_store),
		cmocka_unit_test(store_created_kept_replaced_and_locked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
