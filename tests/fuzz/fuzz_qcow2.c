/* libFuzzer harness for qcow2 images, a file a user downloads: the input is
 * an image (seeds: small images qemu-img made, tests/fuzz/corpus/qcow2)
 * followed by a script of operations. The image goes to a memfd, is opened
 * read-only and then read-write, and the script's reads, writes, zeroes,
 * discards and flushes run on it, with checks that reads stay in their
 * buffers (ASan) and that nothing loops or allocates without bound.
 * Layout: [u16 image length][image][ops: 1 byte op, u32 offset, u16 length]... */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "../../src/block/qcow2.h"

static void run_ops(struct qcow2 *q, const uint8_t *ops, size_t n, uint8_t *buf)
{
	uint64_t size = qcow2_size(q);
	for (int k = 0; n >= 7 && k < 32; k++, ops += 7, n -= 7) {
		uint64_t off = ((uint64_t)ops[1] | ops[2] << 8 | ops[3] << 16 | (uint64_t)ops[4] << 24) * 512;
		uint64_t len = ((uint64_t)ops[5] | ops[6] << 8) + 1;
		if (!size)
			return;
		off %= size;
		if (len > size - off)
			len = size - off;
		struct iovec v[2] = { { buf, len / 2 }, { buf + len / 2, len - len / 2 } };
		switch (ops[0] % 5) {
		case 0: qcow2_readv(q, off, v, 2, len); break;
		case 1: memset(buf, ops[0], len); qcow2_writev(q, off, v, 2, len); break;
		case 2: qcow2_write_zeroes(q, off, len * 64, ops[0] & 8); break;
		case 3: qcow2_discard(q, off, len * 64); break;
		default: qcow2_flush(q); break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[65536];
	char err[256];
	if (size < 2)
		return 0;
	size_t ilen = (size_t)(data[0] | data[1] << 8);
	if (ilen > size - 2)
		ilen = size - 2;
	const uint8_t *ops = data + 2 + ilen;
	size_t nops = size - 2 - ilen;
	int fd = memfd_create("fuzz.qcow2", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data + 2, ilen) != (ssize_t)ilen)
		abort();
	for (int rw = 0; rw < 2; rw++) {
		struct qcow2 *q;
		int f = dup(fd);
		/* relative backing names resolve to a folder that does not exist */
		if (qcow2_open(f, "/nonexistent/fuzz.qcow2", !rw, &q, err, sizeof(err)) < 0)
			continue;
		run_ops(q, ops, nops, buf);
		qcow2_close(q);
	}
	close(fd);
	return 0;
}
