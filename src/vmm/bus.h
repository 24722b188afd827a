/* Trap registry for port I/O and MMIO exits: one handler signature for both.
 * Ranges are registered before the vCPUs start; PCI BARs are dispatched by the
 * PCI layer through a fallback handler because the guest can move them. */
#ifndef KVKIT_BUS_H
#define KVKIT_BUS_H
#include <stdbool.h>
#include <stdint.h>

typedef void (*bus_handler)(void *opaque, uint64_t offset, uint8_t *data, unsigned len, bool is_write);

struct bus_range {
	uint64_t base, len;
	bus_handler fn;
	void *opaque;
};

#define BUS_MAX_RANGES 64

struct bus {
	unsigned n;
	struct bus_range r[BUS_MAX_RANGES];
	/* consulted when no range matches (PCI BARs); returns true if handled */
	bool (*fallback)(void *opaque, uint64_t addr, uint8_t *data, unsigned len, bool is_write);
	void *fallback_opaque;
	const char *name;
};

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler fn, void *opaque);
/* Dispatch one access; unclaimed reads return all-ones, unclaimed writes are dropped. */
void bus_access(struct bus *b, uint64_t addr, uint8_t *data, unsigned len, bool is_write);

#endif
