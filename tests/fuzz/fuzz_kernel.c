/* libFuzzer harness for a bzImage's unpacked kernel, a file the user names:
 * the ELF layout and KASLR relocation table (vmlinux_inspect, then
 * vmlinux_place in place), and the payload decompressors. The first byte
 * picks which. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/boot/kernel_unpack.h"

#define LINK 0x1000000ULL
#define MAX_IMAGE (16u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[200];
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	if (mode & 1) {
		/* a payload: as kvkit would, trust its size only up to a bound */
		enum kernel_compression c = kernel_compression_of(data, size);
		uint64_t n = kernel_payload_size(data, size);
		if (c == KC_UNKNOWN || n == 0 || n > (1u << 20))
			return 0;
		uint8_t *out = malloc(n);
		kernel_decompress(c, data, size, out, n, why, sizeof(why));
		free(out);
		return 0;
	}
	struct vmlinux_layout l;
	if (vmlinux_inspect(data, size, LINK, &l, why, sizeof(why)) < 0 || l.span > MAX_IMAGE)
		return 0;
	/* in place, in a buffer of max(size, span) bytes as kvkit reserves */
	size_t cap = size > l.span ? size : l.span;
	uint8_t *buf = calloc(1, cap);
	memcpy(buf, data, size);
	vmlinux_place(buf, size, LINK, &l, (mode >> 1) ? 0x200000ULL * (mode >> 1) : 0, why, sizeof(why));
	free(buf);
	return 0;
}
