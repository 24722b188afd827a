/* virtio-blk request parsing (virtio 1.x, 5.2.6), kept apart from the device
 * so the unit tests and the fuzzer drive exactly the code the guest does.
 * Everything here distrusts the guest: the header may be split across
 * descriptors, lengths must be whole sectors, ranges must fit the disk. */
#ifndef KVKIT_VIRTIO_BLK_PARSE_H
#define KVKIT_VIRTIO_BLK_PARSE_H
#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_blk.h> /* request types, status codes, the config layout */
#include <sys/uio.h>
#include "virtq.h"

#define BLK_SECTOR 512
#define BLK_MAX_SEGS 254 /* data descriptors per request (seg_max) */

struct blk_disk_info {
	uint64_t sectors;     /* capacity in 512-byte sectors */
	bool readonly;
	bool discard;         /* DISCARD / WRITE_ZEROES offered */
	uint32_t max_discard_sectors;
};

struct blk_parsed {
	uint32_t type;
	uint64_t sector;
	uint8_t *status;      /* guest byte for the status; NULL = no room for one */
	struct iovec data[BLK_MAX_SEGS];
	unsigned ndata;
	uint64_t len;         /* data bytes (IN/OUT/GET_ID) */
	/* DISCARD / WRITE_ZEROES: the one range */
	uint64_t range_sector;
	uint32_t range_sectors;
	bool unmap;
};

/* Parse one popped chain. Returns VIRTIO_BLK_S_OK when the request should be
 * carried out, or the status to answer with at once (IOERR for a malformed
 * or out-of-range request, UNSUPP for an unknown type). p->status is set
 * whenever the chain has a writable byte for it. */
int blk_parse(const struct virtq_elem *e, const struct blk_disk_info *disk, struct blk_parsed *p);

/* Adjacent reads (or writes) popped in one batch go to the backend as one
 * I/O, as QEMU's virtio-blk does: fewer system calls and completions, and
 * larger transfers for the host's block layer. At most this many requests,
 * iovecs (the kernel's IOV_MAX) and bytes per merged I/O. */
#define BLK_MERGE_MAX_REQS 32
#define BLK_MERGE_MAX_IOV 1024
#define BLK_MERGE_MAX_BYTES (4u << 20)

/* Whether parsed request p can be appended to a merged I/O of `type` that
 * so far ends at byte `end`, has niov iovecs, len bytes and nreqs requests. */
bool blk_mergeable(uint32_t type, uint64_t end, unsigned niov, uint64_t len, unsigned nreqs,
		   const struct blk_parsed *p);

#endif
