/* Unit tests for PCI bus 0 as the guest programs it through ports CF8/CFC:
 * BAR placement by kvkit, the sizing probe, 64-bit BARs and when their
 * moves are reported. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "../../src/arch/x86/layout.h"
#include "../../src/pci/pci.h"
#include "../../src/vmm/vm.h"

static struct vm vm;

static void conf_select(int slot, unsigned reg)
{
	uint32_t a = 0x80000000u | (uint32_t)slot << 11 | reg;
	bus_access(&vm.pio, PORT_PCI_CONF_ADDR, (uint8_t *)&a, 4, true);
}

static uint32_t conf_read(int slot, unsigned reg)
{
	uint32_t v = 0;
	conf_select(slot, reg);
	bus_access(&vm.pio, PORT_PCI_CONF_DATA, (uint8_t *)&v, 4, false);
	return v;
}

static void conf_write(int slot, unsigned reg, uint32_t v)
{
	conf_select(slot, reg);
	bus_access(&vm.pio, PORT_PCI_CONF_DATA, (uint8_t *)&v, 4, true);
}

static void conf_write16(int slot, unsigned reg, uint16_t v)
{
	conf_select(slot, reg);
	bus_access(&vm.pio, PORT_PCI_CONF_DATA, (uint8_t *)&v, 2, true);
}

/* every bar_moved call, in order */
static struct { int bar; uint64_t from, to; } moves[8];
static unsigned nmoves;

static void record_move(struct pci_func *f, int bar, uint64_t from, uint64_t to)
{
	(void)f;
	assert_true(nmoves < 8);
	moves[nmoves].bar = bar;
	moves[nmoves].from = from;
	moves[nmoves++].to = to;
}

static void nop_io(void *o, uint64_t off, uint8_t *d, unsigned len, bool w) { (void)o; (void)off; (void)d; (void)len; (void)w; }

static void func(struct pci_func *f)
{
	pci_func_init(f, 0x1af4, 0x105a, 0x018000, 0x1af4, 0x1100, 1);
	f->bar_moved = record_move;
}

#define WIN64 0x200000000ULL /* 8 GiB */
#define MIB (1ULL << 20)

static int setup(void **state)
{
	(void)state;
	assert_int_equal(pci_init(&vm, false), 0);
	return 0;
}

static void bar64_is_placed_above_ram_and_sized_like_hardware(void **state)
{
	(void)state;
	static struct pci_func f;
	func(&f);
	assert_int_equal(pci_add_bar(&f, 0, 0x4000, nop_io, NULL), 0);
	assert_int_equal(pci_add_bar64(&f, 2, 256 * MIB, nop_io, NULL), 0);
	assert_int_equal(pci_add_bar64(&f, 5, 4096, nop_io, NULL), -EINVAL); /* no register 6 */
	assert_int_equal(pci_add_bar(&f, 3, 4096, nop_io, NULL), -EINVAL); /* BAR 2's upper half */
	static struct pci_func g;
	func(&g);
	assert_int_equal(pci_add_bar(&g, 3, 4096, nop_io, NULL), 0);
	assert_int_equal(pci_add_bar64(&g, 2, 256 * MIB, nop_io, NULL), -EINVAL); /* register 3 taken */
	pci_set_mmio64(WIN64, 1ULL << 39);
	int s = pci_register(&vm, &f);
	assert_true(s > 0);

	assert_int_equal(conf_read(s, 0x10), PCI_MMIO_START); /* 32-bit, below 4 GiB */
	assert_int_equal(conf_read(s, 0x18), 0x0000000c);    /* 64-bit prefetchable, low half */
	assert_int_equal(conf_read(s, 0x1c), 0x2);            /* 0x2_0000_0000 */
	assert_int_equal(nmoves, 0);                           /* decoding is off: nothing mapped yet */

	conf_write16(s, 0x04, 0x0002); /* memory decoding on: the 64-bit BAR appears */
	assert_int_equal(nmoves, 1);
	assert_int_equal(moves[0].bar, 2);
	assert_int_equal(moves[0].from, 0);
	assert_int_equal(moves[0].to, WIN64);

	/* the sizing probe: each half reads back its mask, nothing moves */
	conf_write(s, 0x18, 0xffffffff);
	assert_int_equal(conf_read(s, 0x18), 0xf000000c);
	conf_write(s, 0x1c, 0xffffffff);
	assert_int_equal(conf_read(s, 0x1c), 0xffffffff);
	conf_write(s, 0x18, 0x0000000c);
	conf_write(s, 0x1c, 0x2);
	assert_int_equal(nmoves, 1);

	/* a move the way Linux makes one: decoding off, low half, high half, on */
	conf_write16(s, 0x04, 0x0000);
	conf_write(s, 0x18, 0x10000000);
	conf_write(s, 0x1c, 0x3);
	conf_write16(s, 0x04, 0x0002);
	assert_int_equal(nmoves, 3);
	assert_int_equal(moves[1].from, WIN64);
	assert_int_equal(moves[1].to, 0);
	assert_int_equal(moves[2].from, 0);
	assert_int_equal(moves[2].to, 0x310000000ULL);
	assert_int_equal(conf_read(s, 0x18), 0x1000000c);
	assert_int_equal(f.bar[2].addr, 0x310000000ULL);

	/* a 32-bit BAR moves whatever the decoding, as before */
	conf_write(s, 0x10, 0xc8000000);
	assert_int_equal(nmoves, 4);
	assert_int_equal(moves[3].bar, 0);
	assert_int_equal(moves[3].to, 0xc8000000);
}

static void a_bar_that_does_not_fit_takes_nothing(void **state)
{
	(void)state;
	static struct pci_func big, next;
	pci_set_mmio64(WIN64, 512 * MIB);
	func(&big);
	assert_int_equal(pci_add_bar(&big, 0, 0x4000, nop_io, NULL), 0);
	assert_int_equal(pci_add_bar64(&big, 2, 1024 * MIB, nop_io, NULL), 0);
	assert_int_equal(pci_register(&vm, &big), -ENOSPC);
	/* the BAR 0 it would have had goes to the next function */
	func(&next);
	assert_int_equal(pci_add_bar(&next, 0, 0x4000, nop_io, NULL), 0);
	assert_int_equal(pci_add_bar64(&next, 2, 512 * MIB, nop_io, NULL), 0);
	int s = pci_register(&vm, &next);
	assert_true(s > 0);
	assert_int_equal(conf_read(s, 0x10), PCI_MMIO_START + 0x4000);
	assert_int_equal(conf_read(s, 0x1c), 0x2);
}

static void without_a_64bit_window_the_bar_goes_below_4g(void **state)
{
	(void)state;
	static struct pci_func f;
	pci_set_mmio64(0, 0);
	func(&f);
	assert_int_equal(pci_add_bar64(&f, 2, 16 * MIB, nop_io, NULL), 0);
	int s = pci_register(&vm, &f);
	assert_true(s > 0);
	uint32_t lo = conf_read(s, 0x18);
	assert_int_equal(lo & 0xf, 0xc);
	assert_true((lo & ~0xfu) >= PCI_MMIO_START && (lo & ~0xfu) < PCI_MMIO_START + PCI_MMIO_SIZE);
	assert_int_equal(lo & (16 * MIB - 1) & ~0xfu, 0); /* naturally aligned */
	assert_int_equal(conf_read(s, 0x1c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bar64_is_placed_above_ram_and_sized_like_hardware),
		cmocka_unit_test(a_bar_that_does_not_fit_takes_nothing),
		cmocka_unit_test(without_a_64bit_window_the_bar_goes_below_4g),
	};
	return cmocka_run_group_tests_name("pci", tests, setup, NULL);
}
