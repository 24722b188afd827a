/* PCI bus 0 and its config space; see pci.h. */
#include "pci.h"
#include <errno.h>
#include <string.h>
#include "../arch/x86/layout.h"
#include "../util/log.h"
#include "../vmm/vm.h"
#include "../util/bytes.h"

#define PCI_SLOTS 32

static struct {
	struct pci_func *slot[PCI_SLOTS];
	struct pci_func *fixed[PCI_SLOTS][8]; /* functions at a place of their own (pci_register_at) */
	struct pci_func host;
	uint32_t conf_addr;
	uint64_t next_mmio;
	uint64_t mmio64_base, mmio64_size, next_mmio64;
	pthread_mutex_t lock;
} pb = { .lock = PTHREAD_MUTEX_INITIALIZER };


void pci_func_init(struct pci_func *f, uint16_t vendor, uint16_t device, uint32_t class_code,
		   uint16_t subsys_vendor, uint16_t subsys_id, uint8_t revision)
{
	memset(f->cfg, 0, sizeof(f->cfg));
	memset(f->wmask, 0, sizeof(f->wmask));
	wr16(f->cfg + 0x00, vendor);
	wr16(f->cfg + 0x02, device);
	f->cfg[0x08] = revision;
	f->cfg[0x09] = class_code & 0xff;
	f->cfg[0x0a] = (class_code >> 8) & 0xff;
	f->cfg[0x0b] = (class_code >> 16) & 0xff;
	wr16(f->cfg + 0x2c, subsys_vendor);
	wr16(f->cfg + 0x2e, subsys_id);
	/* command: I/O, memory, bus master, INTx disable are writable */
	wr16(f->wmask + 0x04, 0x0407);
	f->wmask[0x3c] = 0xff; /* interrupt line */
	f->last_cap = 0;
	f->cap_end = 0x40;
}

int pci_add_cap(struct pci_func *f, const void *data, unsigned len)
{
	unsigned at = (f->cap_end + 3) & ~3u;
	if (len < 2 || at + len > sizeof(f->cfg))
		return -ENOSPC;
	memcpy(f->cfg + at, data, len);
	f->cfg[at + 1] = 0;
	if (f->last_cap)
		f->cfg[f->last_cap + 1] = at;
	else
		f->cfg[0x34] = at;
	f->cfg[0x06] |= 0x10; /* status: capability list */
	f->last_cap = at;
	f->cap_end = at + len;
	return at;
}

int pci_add_bar(struct pci_func *f, int idx, uint64_t size, bus_handler fn, void *opaque)
{
	if (idx < 0 || idx > 5 || size < 4096 || (size & (size - 1)) || (idx > 0 && f->bar[idx - 1].mem64))
		return -EINVAL; /* (the upper half of a 64-bit BAR) */
	f->bar[idx] = (struct pci_bar){ .size = size, .fn = fn, .opaque = opaque };
	return 0;
}

int pci_add_bar64(struct pci_func *f, int idx, uint64_t size, bus_handler fn, void *opaque)
{
	if (idx < 0 || idx > 4 || f->bar[idx + 1].size)
		return -EINVAL;
	int r = pci_add_bar(f, idx, size, fn, opaque);
	if (!r)
		f->bar[idx].mem64 = true;
	return r;
}

void pci_set_mmio64(uint64_t base, uint64_t size)
{
	pthread_mutex_lock(&pb.lock);
	pb.mmio64_base = pb.next_mmio64 = base;
	pb.mmio64_size = size;
	pthread_mutex_unlock(&pb.lock);
}

void pci_get_mmio64(uint64_t *base, uint64_t *size)
{
	pthread_mutex_lock(&pb.lock);
	*base = pb.mmio64_base;
	*size = pb.mmio64_size;
	pthread_mutex_unlock(&pb.lock);
}

/* Next naturally aligned place for a BAR of size in [*next, end). */
static int take(uint64_t *next, uint64_t end, uint64_t size, uint64_t *addr)
{
	uint64_t a = (*next + size - 1) & ~(size - 1);
	if (a < *next || a > end || end - a < size)
		return -ENOSPC;
	*addr = a;
	*next = a + size;
	return 0;
}

static void put_bar(struct pci_func *f, int i)
{
	const struct pci_bar *b = &f->bar[i];
	if (!b->mem64) {
		wr32(f->cfg + 0x10 + 4 * i, (uint32_t)b->addr); /* 32-bit, non-prefetchable memory */
		return;
	}
	wr32(f->cfg + 0x10 + 4 * i, (uint32_t)b->addr | 0xc); /* 64-bit, prefetchable */
	wr32(f->cfg + 0x14 + 4 * i, (uint32_t)(b->addr >> 32));
}

int pci_register(struct vm *vm, struct pci_func *f)
{
	(void)vm;
	pthread_mutex_lock(&pb.lock);
	int slot = -1;
	for (int s = 1; s < PCI_SLOTS; s++)
		if (!pb.slot[s] && !pb.fixed[s][0]) {
			slot = s;
			break;
		}
	if (slot < 0) {
		pthread_mutex_unlock(&pb.lock);
		return -ENOSPC;
	}
	/* nothing is taken until every BAR has its place */
	uint64_t next = pb.next_mmio, next64 = pb.next_mmio64, addr[6] = { 0 };
	for (int i = 0; i < 6; i++) {
		struct pci_bar *b = &f->bar[i];
		if (!b->size)
			continue;
		int r = b->mem64 && pb.mmio64_size ? take(&next64, pb.mmio64_base + pb.mmio64_size, b->size, &addr[i])
						   : take(&next, PCI_MMIO_START + PCI_MMIO_SIZE, b->size, &addr[i]);
		if (r < 0) {
			pthread_mutex_unlock(&pb.lock);
			return r;
		}
	}
	pb.next_mmio = next;
	pb.next_mmio64 = next64;
	for (int i = 0; i < 6; i++) {
		f->bar[i].addr = addr[i];
		if (f->bar[i].size)
			put_bar(f, i);
	}
	f->slot = slot;
	pb.slot[slot] = f;
	pthread_mutex_unlock(&pb.lock);
	return slot;
}

int pci_register_at(struct pci_func *f, int dev, int fn)
{
	if (dev <= 0 || dev >= PCI_SLOTS || fn < 0 || fn > 7)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		if (f->bar[i].size)
			return -EINVAL; /* no BARs: nothing decodes them here */
	pthread_mutex_lock(&pb.lock);
	int r = pb.fixed[dev][fn] || (fn == 0 && pb.slot[dev]) ? -EBUSY : 0;
	if (!r) {
		f->slot = dev;
		pb.fixed[dev][fn] = f;
	}
	pthread_mutex_unlock(&pb.lock);
	return r;
}

/* ---- config space access ---- */

static struct pci_func *func_at(unsigned bus, unsigned dev, unsigned fn)
{
	if (bus != 0 || dev >= PCI_SLOTS || fn > 7)
		return NULL;
	if (pb.fixed[dev][fn])
		return pb.fixed[dev][fn];
	if (fn != 0)
		return NULL;
	return dev == 0 ? &pb.host : pb.slot[dev];
}

static bool mem_decoding(const struct pci_func *f)
{
	return f->cfg[0x04] & 0x2;
}

/* Where the guest reaches BAR i now, as bar_moved reports it. */
static uint64_t bar_seen(const struct pci_func *f, int i)
{
	const struct pci_bar *b = &f->bar[i];
	return !b->mem64 || mem_decoding(f) ? b->addr : 0;
}

static void bar_place(struct pci_func *f, int i, uint64_t addr)
{
	uint64_t old = bar_seen(f, i);
	f->bar[i].addr = addr;
	uint64_t now = bar_seen(f, i);
	if (now != old && f->bar_moved)
		f->bar_moved(f, i, old, now);
}

/* All-ones is the sizing probe, not a placement: the register then reads
 * back the size mask (and the type bits) until it is written again. */
static void bar_write(struct pci_func *f, int i, uint32_t v)
{
	if (i > 0 && f->bar[i - 1].mem64) { /* the upper half of a 64-bit BAR */
		struct pci_bar *b = &f->bar[i - 1];
		uint32_t hi = v & (uint32_t)(~(b->size - 1) >> 32);
		wr32(f->cfg + 0x10 + 4 * i, hi);
		if (v != 0xffffffff)
			bar_place(f, i - 1, (uint64_t)hi << 32 | (uint32_t)b->addr);
		return;
	}
	struct pci_bar *b = &f->bar[i];
	if (!b->size)
		return; /* unimplemented BAR reads as 0 */
	uint32_t lo = v & ~(uint32_t)(b->size - 1) & ~0xfu;
	wr32(f->cfg + 0x10 + 4 * i, lo | (b->mem64 ? 0xc : 0));
	if (v != 0xffffffff)
		bar_place(f, i, b->mem64 ? (b->addr & ~0xffffffffull) | lo : lo);
}

/* A 64-bit BAR appears and disappears with memory decoding. */
static void decoding_changed(struct pci_func *f, bool was)
{
	if (was == mem_decoding(f) || !f->bar_moved)
		return;
	for (int i = 0; i < 6; i++)
		if (f->bar[i].mem64)
			f->bar_moved(f, i, was ? f->bar[i].addr : 0, was ? 0 : f->bar[i].addr);
}

static void cfg_access(struct pci_func *f, unsigned reg, uint8_t *data, unsigned len, bool is_write)
{
	if (reg >= 256 || len > 4 || reg + len > 256) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (!is_write) {
		memcpy(data, f->cfg + reg, len);
		/* a BAR being sized reads back its size mask */
		return;
	}
	if (reg >= 0x10 && reg < 0x28) {
		if (len == 4 && (reg & 3) == 0)
			bar_write(f, (reg - 0x10) / 4, rd32(data));
		return;
	}
	bool was_decoding = mem_decoding(f);
	for (unsigned i = 0; i < len; i++) {
		uint8_t m = f->wmask[reg + i];
		f->cfg[reg + i] = (f->cfg[reg + i] & ~m) | (data[i] & m);
	}
	decoding_changed(f, was_decoding);
	if (f->cfg_written)
		f->cfg_written(f, reg, len);
}

static void conf_locked(unsigned bus, unsigned dev, unsigned fn, unsigned reg, uint8_t *data, unsigned len,
			bool is_write)
{
	struct pci_func *f = func_at(bus, dev, fn);
	if (!f) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	cfg_access(f, reg, data, len, is_write);
}

static void conf_addr_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque; (void)off;
	pthread_mutex_lock(&pb.lock);
	if (len == 4) {
		if (is_write)
			pb.conf_addr = rd32(data) & 0x80fffffc;
		else
			wr32(data, pb.conf_addr);
	} else if (!is_write) {
		memset(data, 0xff, len);
	}
	pthread_mutex_unlock(&pb.lock);
}

static void conf_data_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque;
	pthread_mutex_lock(&pb.lock);
	uint32_t a = pb.conf_addr;
	if (!(a & 0x80000000)) {
		if (!is_write)
			memset(data, 0xff, len);
	} else {
		conf_locked((a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 7, (a & 0xfc) + off, data, len, is_write);
	}
	pthread_mutex_unlock(&pb.lock);
}

static void ecam_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque;
	pthread_mutex_lock(&pb.lock);
	conf_locked((off >> 20) & 0xff, (off >> 15) & 0x1f, (off >> 12) & 7, off & 0xfff, data, len, is_write);
	pthread_mutex_unlock(&pb.lock);
}

/* MMIO that no fixed range claims: look for a BAR. BARs only move while
 * the guest programs config space, under pb.lock. */
static bool bar_dispatch(void *opaque, uint64_t addr, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque;
	struct pci_bar hit = { 0 };
	uint64_t off = 0;
	pthread_mutex_lock(&pb.lock);
	for (int s = 1; s < PCI_SLOTS && !hit.fn; s++) {
		struct pci_func *f = pb.slot[s];
		if (!f || !(f->cfg[0x04] & 0x2)) /* memory decoding off */
			continue;
		for (int i = 0; i < 6; i++) {
			struct pci_bar *b = &f->bar[i];
			if (b->size && addr >= b->addr && addr - b->addr < b->size) {
				hit = *b;
				off = addr - b->addr;
				break;
			}
		}
	}
	pthread_mutex_unlock(&pb.lock);
	if (!hit.fn)
		return false;
	if (off + len > hit.size) {
		if (!is_write)
			memset(data, 0xff, len);
		return true;
	}
	hit.fn(hit.opaque, off, data, len, is_write);
	return true;
}

int pci_init(struct vm *vm, bool i440fx)
{
	/* OVMF knows its platform by this ID: the i440FX's (it then looks for
	 * the PIIX4 power management function at 00:01.3). Direct boot keeps
	 * the ID kvkit always had. */
	if (i440fx)
		pci_func_init(&pb.host, 0x8086, 0x1237, 0x060000, 0, 0, 2);
	else
		pci_func_init(&pb.host, 0x8086, 0x0d57, 0x060000, 0, 0, 0);
	pb.next_mmio = PCI_MMIO_START;
	pb.mmio64_base = pb.mmio64_size = pb.next_mmio64 = 0;
	int r = bus_register(&vm->pio, PORT_PCI_CONF_ADDR, 1, conf_addr_io, NULL);
	if (!r)
		r = bus_register(&vm->pio, PORT_PCI_CONF_DATA, 4, conf_data_io, NULL);
	if (!r)
		r = bus_register(&vm->mmio, PCI_ECAM_START, PCI_ECAM_SIZE, ecam_io, NULL);
	vm->mmio.fallback = bar_dispatch;
	return r;
}
