/* libFuzzer harness: hostile virtio-blk requests. The input is guest memory
 * holding a queue; every chain the engine pops goes through blk_parse, and
 * every byte the parser hands out as data or status is touched (ASan checks
 * it lies inside the chain's buffers). Reads and writes are merged as the
 * device merges them, and every merged I/O must stay inside the disk and
 * the merge limits. Build: make fuzz */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/virtio/blk_parse.h"
#include "../lib/fake_guest.h"

#define MEM 0x10000

static struct virtq_elem elem;
static struct blk_parsed parsed;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmem mem;
	struct virtq vq;
	if (fuzz_guest_with_queue(&mem, &vq, MEM, data, size) < 0)
		return 0;
	/* a small disk, read-only or not, so range checks are exercised */
	struct blk_disk_info disk = { .sectors = 64 + data[1], .readonly = data[2] & 1, .discard = data[2] & 2,
				      .max_discard_sectors = 32 };
	uint32_t m_type = 0;
	uint64_t m_off = 0, m_len = 0;
	unsigned m_iov = 0, m_reqs = 0;
	for (int i = 0; i < 256; i++) {
		if (virtq_pop(&vq, &elem) <= 0)
			break;
		int st = blk_parse(&elem, &disk, &parsed);
		volatile uint8_t sink = 0;
		if (parsed.status)
			*parsed.status = (uint8_t)st;
		if (st == VIRTIO_BLK_S_OK) {
			uint64_t total = 0;
			for (unsigned j = 0; j < parsed.ndata; j++) {
				total += parsed.data[j].iov_len;
				if (parsed.data[j].iov_len)
					sink ^= ((uint8_t *)parsed.data[j].iov_base)[parsed.data[j].iov_len - 1];
			}
			if (parsed.type <= VIRTIO_BLK_T_OUT) {
				/* what the backend would get: whole sectors, inside the disk */
				if (total != parsed.len || parsed.len % BLK_SECTOR ||
				    parsed.sector + parsed.len / BLK_SECTOR > disk.sectors)
					abort();
				if (parsed.type == VIRTIO_BLK_T_OUT && disk.readonly)
					abort();
			}
			if (m_reqs && blk_mergeable(m_type, m_off + m_len, m_iov, m_len, m_reqs, &parsed)) {
				m_len += parsed.len;
				m_iov += parsed.ndata;
				m_reqs++;
			} else if (parsed.type <= VIRTIO_BLK_T_OUT && parsed.len) {
				m_type = parsed.type;
				m_off = parsed.sector * BLK_SECTOR;
				m_len = parsed.len;
				m_iov = parsed.ndata;
				m_reqs = 1;
			} else {
				m_reqs = 0;
			}
			if (m_reqs && (m_off + m_len > disk.sectors * BLK_SECTOR || m_iov > BLK_MERGE_MAX_IOV ||
				       m_reqs > BLK_MERGE_MAX_REQS || (m_reqs > 1 && m_len > BLK_MERGE_MAX_BYTES)))
				abort();
			if ((parsed.type == VIRTIO_BLK_T_DISCARD || parsed.type == VIRTIO_BLK_T_WRITE_ZEROES) &&
			    (parsed.range_sector + parsed.range_sectors > disk.sectors || disk.readonly))
				abort();
		}
		(void)sink;
		virtq_push(&vq, elem.head, 1);
	}
	return 0;
}
