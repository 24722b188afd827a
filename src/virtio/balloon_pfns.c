/* See balloon_pfns.h. The old reader copied each number with an iovec
 * lookup from the chain's start: quadratic in the number of pieces, which
 * let a guest hold the I/O thread for hours with one legal chain. */
#include "balloon_pfns.h"

size_t balloon_pfn_runs(const struct iovec *iov, unsigned n, size_t max,
			void (*run)(void *opaque, uint64_t first, uint64_t count), void *opaque)
{
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	total /= 4;
	uint64_t run_start = 0, run_len = 0;
	uint8_t b[4];
	unsigned have = 0;
	size_t done = 0;
	for (unsigned i = 0; i < n && done < max && done < total; i++) {
		const uint8_t *p = iov[i].iov_base;
		for (size_t k = 0; k < iov[i].iov_len && done < max && done < total; k++) {
			b[have++] = p[k];
			if (have < 4)
				continue;
			have = 0;
			done++;
			uint32_t pfn = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
			if (run_len && pfn == run_start + run_len) {
				run_len++;
				continue;
			}
			if (run_len)
				run(opaque, run_start, run_len);
			run_start = pfn;
			run_len = 1;
		}
	}
	if (run_len)
		run(opaque, run_start, run_len);
	return total;
}
