/* libFuzzer: a virtio-balloon inflate buffer as a hostile guest lays it
 * out. The first byte picks the piece size; the runs reported must add up
 * to the page numbers read, within the buffer and the per-chain cap. */
#include <stdint.h>
#include <stdlib.h>
#include "../../src/virtio/balloon_pfns.h"

static void count(void *o, uint64_t first, uint64_t n)
{
	(void)first;
	if (!n)
		abort();
	*(uint64_t *)o += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t piece = data[0] % 16 + 1, max = data[1] % 64 + 1;
	data += 2;
	size -= 2;
	struct iovec iov[1024];
	unsigned n = 0;
	for (size_t off = 0; off < size && n < 1024; off += piece)
		iov[n++] = (struct iovec){ (void *)(data + off), off + piece <= size ? piece : size - off };
	uint64_t pages = 0;
	size_t held = balloon_pfn_runs(iov, n, max, count, &pages);
	size_t bytes = 0;
	for (unsigned i = 0; i < n; i++)
		bytes += iov[i].iov_len;
	if (held != bytes / 4 || pages != (held < max ? held : max))
		abort();
	return 0;
}
