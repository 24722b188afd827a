/* Port I/O and MMIO dispatch. */
#include "bus.h"
#include <errno.h>
#include <string.h>
#include "../util/log.h"

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler fn, void *opaque)
{
	if (b->n >= BUS_MAX_RANGES)
		return -ENOSPC;
	for (unsigned i = 0; i < b->n; i++)
		if (base < b->r[i].base + b->r[i].len && b->r[i].base < base + len)
			return -EEXIST;
	b->r[b->n++] = (struct bus_range){ base, len, fn, opaque };
	return 0;
}

void bus_access(struct bus *b, uint64_t addr, uint8_t *data, unsigned len, bool is_write)
{
	for (unsigned i = 0; i < b->n; i++) {
		struct bus_range *r = &b->r[i];
		if (addr >= r->base && addr - r->base < r->len) {
			r->fn(r->opaque, addr - r->base, data, len, is_write);
			return;
		}
	}
	if (b->fallback && b->fallback(b->fallback_opaque, addr, data, len, is_write))
		return;
	if (!is_write)
		memset(data, 0xff, len);
	log_debug("%s: unclaimed %s at 0x%llx len %u", b->name, is_write ? "write" : "read",
		  (unsigned long long)addr, len);
}
