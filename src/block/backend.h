/* Block backends: where a virtio-blk disk's sectors live. The device turns
 * guest requests into struct blk_io and submits them; a backend completes
 * them asynchronously, always on the I/O thread and never inside submit(),
 * so the device can hold its lock while submitting.
 *   file.c  raw/ISO image files and host block devices (io_uring, or a
 *           worker-thread pool where io_uring is not available)
 *   nbd.c   an NBD server through libnbd, with reconnect */
#ifndef KVKIT_BLOCK_BACKEND_H
#define KVKIT_BLOCK_BACKEND_H
#include <kvkit/config.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct eventloop;

enum blk_op { BLK_READ, BLK_WRITE, BLK_FLUSH, BLK_DISCARD, BLK_WRITE_ZEROES };

struct blk_io {
	enum blk_op op;
	bool unmap;        /* WRITE_ZEROES may deallocate */
	uint64_t offset;   /* bytes */
	uint64_t len;      /* bytes; for READ/WRITE the sum of iov */
	struct iovec *iov; /* READ/WRITE: guest buffers; the backend may advance it */
	unsigned niov;
	int result;        /* set by the backend: 0 or -errno */
	uint64_t done;     /* bytes transferred so far (short-transfer resubmission) */
	struct blk_io *next; /* backend-private queueing */
};

struct blk_backend;

struct blk_backend_ops {
	const char *name;
	/* queue io; completion comes later through b->complete */
	void (*submit)(struct blk_backend *b, struct blk_io *io);
	/* end of a batch of submits: push them to the kernel/server */
	void (*kick)(struct blk_backend *b);
	/* wait until nothing is in flight (completions are delivered) */
	void (*drain)(struct blk_backend *b);
	void (*close)(struct blk_backend *b);
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	uint64_t size;           /* bytes */
	bool readonly;
	bool can_discard;        /* punching holes / discard works */
	bool flush_is_noop;      /* sync=none: FLUSH completes without syncing */
	uint32_t logical_block;  /* 512 or the host's O_DIRECT/device granularity */
	uint32_t physical_block;
	unsigned inflight;
	/* set by the device before the first submit */
	void (*complete)(void *opaque, struct blk_io *io);
	void (*batch_done)(void *opaque);
	void *opaque;
};

struct stat;
/* The checks alone (file opens, header readable, not qcow2, block device
 * when type=dev), so bad disks are refused before anything is created. */
int blk_file_check(const struct kv_disk *disk, struct stat *st, char *err, size_t errlen);
/* Open a disk image or block device as kv_disk says, checking it the way
 * the spec asks (exact one-line errors in err). */
int blk_file_open(const struct kv_disk *disk, struct eventloop *ev, struct blk_backend **out, char *err,
		  size_t errlen);
/* The same two for c->devices[i], a virtio-blk or NVMe disk, in the device
 * registry's shape (src/vmm/device.h); the open logs "Adding <model>
 * device (imagePath: ..., type: ...)". */
int blk_disk_check(const struct kv_config *c, size_t i, char *err, size_t errlen);
int blk_disk_open(const struct kv_config *c, size_t i, const char *model, struct eventloop *ev,
		  struct blk_backend **out, char *err, size_t errlen);
/* Connect to an NBD export (first connection made here, within timeout). */
int blk_nbd_open(const struct kv_nbd *nbd, struct eventloop *ev, struct blk_backend **out, char *err,
		 size_t errlen);

/* Only for tests: refuse io_uring so the worker-thread fallback runs. */
#define BLK_ENV_NO_IO_URING "KVKIT_NO_IO_URING"

#endif
