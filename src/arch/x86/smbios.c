/* SMBIOS 3.0 structure table (DMTF DSP0134): see smbios.h. The layout of
 * each structure is the spec's, field by field; strings follow each one,
 * numbered from 1, the set closed by an extra NUL. */
#include "smbios.h"
#include "../../util/bytes.h"
#include "../../vmm/vm.h"
#include "layout.h"
#include <cpuid.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifndef KVKIT_VERSION
#define KVKIT_VERSION "0.1.0"
#endif

#define HANDLE_ARRAY 0x1000 /* the memory array; others follow their type */
#define NO_HANDLE 0xffff    /* "not provided" for cache handles */
#define NO_ERROR_INFO 0xfffe

struct builder {
	uint8_t *buf;
	size_t len, cap;
	bool overflow;
};

static void put(struct builder *b, const void *p, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}


/* One structure: its formatted part (s[1] is its length; the header is
 * filled here), then its strings, NULL-terminated list (empty: none). */
static void structure(struct builder *b, uint8_t *s, uint8_t type, uint16_t handle, const char *const *strings)
{
	s[0] = type;
	wr16(s + 2, handle);
	put(b, s, s[1]);
	if (!strings[0])
		put(b, "", 1); /* no strings: the set is the closing NUL alone */
	for (unsigned i = 0; strings[i]; i++)
		put(b, strings[i], strlen(strings[i]) + 1);
	put(b, "", 1);
}

size_t smbios_build(const struct smbios_machine *m, uint8_t *buf, size_t cap)
{
	struct builder b = { .buf = buf, .cap = cap };
	uint8_t s[0x30];

	/* Type 1, system information. The UUID stays zero ("not present"),
	 * as with QEMU when none is given: vfkit's command line has none. */
	memset(s, 0, sizeof(s));
	s[1] = 0x1b;
	s[4] = 1, s[5] = 2, s[6] = 3; /* manufacturer, product, version */
	s[0x18] = 6;                  /* woken by the power switch */
	s[0x1a] = 4;                  /* family */
	structure(&b, s, 1, 0x100, (const char *const[]){ "kvkit", "kvkit virtual machine", KVKIT_VERSION,
						       "Virtual Machine", NULL });

	/* Type 3, chassis: "other", all states safe */
	memset(s, 0, sizeof(s));
	s[1] = 0x16;
	s[4] = 1, s[5] = 0x01, s[6] = 2;
	s[9] = s[0xa] = s[0xb] = 3;
	s[0xc] = 2; /* security status unknown */
	structure(&b, s, 3, 0x300, (const char *const[]){ "kvkit", KVKIT_VERSION, NULL });

	/* Type 4, one processor per vCPU (one socket each, like QEMU's default
	 * topology); the ID is CPUID leaf 1, which the guest also sees */
	unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
	__get_cpuid(1, &eax, &ebx, &ecx, &edx);
	for (unsigned i = 0; i < m->ncpus; i++) {
		char socket[16];
		snprintf(socket, sizeof(socket), "CPU %u", i);
		memset(s, 0, sizeof(s));
		s[1] = 0x2a;
		s[4] = 1;    /* socket designation */
		s[5] = 3;    /* central processor */
		s[6] = 0x01; /* family: other */
		s[7] = 2;    /* manufacturer */
		wr32(s + 8, eax);
		wr32(s + 12, edx);
		s[0x10] = 3;            /* version */
		wr16(s + 0x14, 0);       /* max speed unknown */
		s[0x18] = 0x41;         /* socket populated, CPU enabled */
		s[0x19] = 0x01;         /* upgrade: other */
		wr16(s + 0x1a, NO_HANDLE);
		wr16(s + 0x1c, NO_HANDLE);
		wr16(s + 0x1e, NO_HANDLE);
		s[0x23] = s[0x24] = s[0x25] = 1; /* cores, enabled, threads */
		wr16(s + 0x26, 0x02);             /* characteristics unknown */
		wr16(s + 0x28, 0x01);             /* family 2: other */
		structure(&b, s, 4, (uint16_t)(0x400 + i),
			  (const char *const[]){ socket, "kvkit", "kvkit virtual CPU", NULL });
	}

	/* Type 16, the memory array: system memory, no error correction */
	uint64_t total_kib = (m->low_ram + m->high_ram) >> 10;
	memset(s, 0, sizeof(s));
	s[1] = 0x17;
	s[4] = 0x01; /* location: other */
	s[5] = 0x03; /* use: system memory */
	s[6] = 0x03; /* error correction: none */
	if (total_kib < 0x80000000ULL) {
		wr32(s + 7, (uint32_t)total_kib);
	} else {
		wr32(s + 7, 0x80000000u); /* see the extended field */
		wr64(s + 0xf, total_kib << 10);
	}
	wr16(s + 0xb, NO_ERROR_INFO);
	wr16(s + 0xd, 1);
	structure(&b, s, 16, HANDLE_ARRAY, (const char *const[]){ NULL });

	/* Type 17, one device holding all of it */
	uint64_t total_mib = total_kib >> 10;
	memset(s, 0, sizeof(s));
	s[1] = 0x28;
	wr16(s + 4, HANDLE_ARRAY);
	wr16(s + 6, NO_ERROR_INFO);
	wr16(s + 8, 0xffff); /* widths unknown */
	wr16(s + 0xa, 0xffff);
	if (total_mib < 0x7fff) {
		wr16(s + 0xc, (uint16_t)total_mib);
	} else {
		wr16(s + 0xc, 0x7fff); /* see the extended size */
		wr32(s + 0x1c, (uint32_t)total_mib);
	}
	s[0xe] = 0x09;       /* form factor: DIMM */
	s[0x10] = 1;         /* device locator */
	s[0x12] = 0x07;      /* type: RAM */
	wr16(s + 0x13, 0x02); /* detail: other */
	s[0x17] = 2;         /* manufacturer */
	structure(&b, s, 17, 0x1100, (const char *const[]){ "DIMM 0", "kvkit", NULL });

	/* Type 19, where the array is mapped: below 4 GiB, and above it */
	const struct { uint64_t start, len; } map[2] = { { 0, m->low_ram }, { RAM_ABOVE_4G, m->high_ram } };
	for (unsigned i = 0; i < 2; i++) {
		if (!map[i].len)
			continue;
		uint64_t start_kib = map[i].start >> 10, end_kib = ((map[i].start + map[i].len) >> 10) - 1;
		memset(s, 0, sizeof(s));
		s[1] = 0x1f;
		if (end_kib < 0xffffffffULL) {
			wr32(s + 4, (uint32_t)start_kib);
			wr32(s + 8, (uint32_t)end_kib);
		} else {
			wr32(s + 4, 0xffffffffu); /* see the extended addresses */
			wr32(s + 8, 0xffffffffu);
			wr64(s + 0xf, map[i].start);
			wr64(s + 0x17, map[i].start + map[i].len - 1);
		}
		wr16(s + 0xc, HANDLE_ARRAY);
		s[0xe] = 1; /* partition width: one device */
		structure(&b, s, 19, (uint16_t)(0x1300 + i), (const char *const[]){ NULL });
	}

	/* Type 32, boot information: no errors; then the end of the table */
	memset(s, 0, sizeof(s));
	s[1] = 0x0b;
	structure(&b, s, 32, 0x2000, (const char *const[]){ NULL });
	memset(s, 0, sizeof(s));
	s[1] = 4;
	structure(&b, s, 127, 0x7f00, (const char *const[]){ NULL });
	return b.overflow ? 0 : b.len;
}

void smbios_entry_point(uint8_t ep[24], uint32_t len, uint64_t gpa)
{
	memset(ep, 0, 24);
	memcpy(ep, "_SM3_", 5);
	ep[6] = 24;  /* entry point length */
	ep[7] = 3;   /* SMBIOS 3.0.0 */
	ep[10] = 1;  /* entry point revision */
	wr32(ep + 12, len);
	wr64(ep + 16, gpa);
	uint8_t sum = 0;
	for (unsigned i = 0; i < 24; i++)
		sum += ep[i];
	ep[5] = (uint8_t)-sum;
}

int smbios_firmware_files(const struct smbios_machine *m, firmware_file_fn add, void *opaque)
{
	static uint8_t table[SMBIOS_SIZE - 32];
	uint8_t ep[24];
	size_t len = smbios_build(m, table, sizeof(table));
	if (!len)
		return -1;
	/* OVMF takes the version from the anchor and the structures one by one;
	 * it publishes its own entry point, so the address is left 0 */
	smbios_entry_point(ep, (uint32_t)len, 0);
	if (add(opaque, "etc/smbios/smbios-anchor", ep, sizeof(ep)) < 0 ||
	    add(opaque, "etc/smbios/smbios-tables", table, (uint32_t)len) < 0)
		return -1;
	return 0;
}

int smbios_write_legacy(struct vm *vm)
{
	/* the entry point on a 16-byte boundary in the F segment, the table
	 * right after it */
	uint8_t *area = gmem_ptr(&vm->mem, SMBIOS_ADDR, SMBIOS_SIZE);
	if (!area)
		return -1;
	struct smbios_machine m = { .ncpus = vm->ncpus, .low_ram = vm->low_ram, .high_ram = vm->high_ram };
	size_t len = smbios_build(&m, area + 32, SMBIOS_SIZE - 32);
	if (!len)
		return -1;
	smbios_entry_point(area, (uint32_t)len, SMBIOS_ADDR + 32);
	return 0;
}
