/* Guest memory region table (see guest_mem.h for the accessor). */
#include "guest_mem.h"
#include <errno.h>

int gmem_add(struct gmem *m, uint64_t gpa, uint64_t size, void *hva)
{
	if (m->n >= GMEM_MAX_REGIONS || size == 0 || gpa + size < gpa)
		return -EINVAL;
	m->r[m->n++] = (struct gmem_region){ .gpa = gpa, .size = size, .hva = hva };
	return 0;
}
