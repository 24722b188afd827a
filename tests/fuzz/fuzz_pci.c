/* libFuzzer harness for what the guest can do to PCI config space: any
 * sequence of accesses to the CF8/CFC ports, the ECAM window and memory
 * (where the BARs decode), on a bus holding one function with a 32-bit BAR
 * and a 64-bit prefetchable BAR. Each 12-byte record: kind, length, an
 * offset or address (32 bits; ECAM offsets reach past bus 0) and 4 data
 * bytes. Checked: no crash, no out-of-bounds access (ASan), BARs stay
 * naturally aligned, and a 64-bit BAR is only ever reported mapped while
 * memory decoding is on, at the address its registers hold. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/arch/x86/layout.h"
#include "../../src/pci/pci.h"
#include "../../src/vmm/vm.h"

static struct vm vm;
static struct pci_func f;
static uint64_t seen[6]; /* what bar_moved said last, per BAR */

static void moved(struct pci_func *fn, int bar, uint64_t from, uint64_t to)
{
	if (bar < 0 || bar > 5 || from != seen[bar])
		abort(); /* a move from somewhere the BAR was not */
	if (fn->bar[bar].mem64 && to && (!(fn->cfg[0x04] & 2) || to != fn->bar[bar].addr))
		abort(); /* mapped while not decoding, or not where it is */
	seen[bar] = to;
}

static void conf_write(unsigned reg, uint32_t v, unsigned len)
{
	uint32_t a = 0x80000000u | (uint32_t)f.slot << 11 | reg;
	bus_access(&vm.pio, PORT_PCI_CONF_ADDR, (uint8_t *)&a, 4, true);
	bus_access(&vm.pio, PORT_PCI_CONF_DATA, (uint8_t *)&v, len, true);
}

static void io(void *o, uint64_t off, uint8_t *d, unsigned len, bool w)
{
	if (off + len > *(const uint64_t *)o)
		abort(); /* the bus let an access run past the BAR */
	if (!w)
		memset(d, 0, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static uint32_t bar0, bar2, bar3;
	if (!ready) {
		if (pci_init(&vm, false) < 0)
			abort();
		pci_set_mmio64(0x100000000ULL, 1ULL << 36);
		pci_func_init(&f, 0x1af4, 0x105a, 0x018000, 0x1af4, 0x1100, 1);
		f.bar_moved = moved;
		static const uint64_t size0 = 0x4000, size2 = 1ULL << 30;
		if (pci_add_bar(&f, 0, size0, io, (void *)&size0) < 0 || pci_add_bar64(&f, 2, size2, io, (void *)&size2) < 0 ||
		    pci_register(&vm, &f) < 0)
			abort();
		seen[0] = f.bar[0].addr; /* a 32-bit BAR counts as placed from the start */
		memcpy(&bar0, f.cfg + 0x10, 4);
		memcpy(&bar2, f.cfg + 0x18, 4);
		memcpy(&bar3, f.cfg + 0x1c, 4);
		ready = 1;
	}
	/* every input starts from the function as registered */
	conf_write(0x04, 0, 2);
	conf_write(0x10, bar0, 4);
	conf_write(0x18, bar2, 4);
	conf_write(0x1c, bar3, 4);
	for (size_t i = 0; i + 12 <= size; i += 12) {
		const uint8_t *rec = data + i;
		unsigned len = 1u << (rec[1] % 3), w = rec[0] & 1;
		uint32_t a;
		memcpy(&a, rec + 2, 4);
		uint8_t buf[8] = { 0 };
		memcpy(buf, rec + 6, 4);
		switch ((rec[0] >> 1) % 4) {
		case 0: bus_access(&vm.pio, PORT_PCI_CONF_ADDR, buf, len, w); break;
		case 1: bus_access(&vm.pio, PORT_PCI_CONF_DATA + a % 4, buf, len, w); break;
		case 2: bus_access(&vm.mmio, PCI_ECAM_START + a % (16 << 20), buf, len, w); break;
		case 3: bus_access(&vm.mmio, (rec[0] & 0x80 ? 0x100000000ULL : PCI_MMIO_START) + a, buf, len, w); break;
		}
		for (int b = 0; b < 6; b++)
			if (f.bar[b].size && f.bar[b].addr % f.bar[b].size)
				abort();
	}
	return 0;
}
