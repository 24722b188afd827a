/* Guest-physical memory: the one checked accessor every device goes through.
 * Guest memory is hostile: an address/length pair is only usable if the whole
 * range lies inside one RAM region. */
#ifndef KVKIT_GUEST_MEM_H
#define KVKIT_GUEST_MEM_H
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 4

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct gmem {
	unsigned n;
	struct gmem_region r[GMEM_MAX_REGIONS];
};

/* Host pointer for [gpa, gpa+len) or NULL when any byte is outside RAM. */
static inline void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct gmem_region *r = &m->r[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off > r->size || len > r->size - off)
			continue;
		return r->hva + off;
	}
	return NULL;
}

int gmem_add(struct gmem *m, uint64_t gpa, uint64_t size, void *hva);

#endif
