/* virtio-blk (1af4:1042): one queue per vCPU, requests handed to a block
 * backend (src/block/) and completed out of order as the backend finishes
 * them. The guest is only told a write is done once the backend says so,
 * and only told a flush is done once the data is on stable storage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../block/backend.h"
#include "../util/log.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "blk_parse.h"
#include "devices.h"
#include "virtio_pci.h"

extern const struct device_type virtio_blk_device, nbd_device;

#define F(bit) (1ULL << VIRTIO_BLK_F_##bit)
#define BLK_QUEUE_SIZE 256
/* the config as far as write_zeroes_may_unmap and its padding: kvkit offers
 * no secure erase, whose fields follow */
#define BLK_CONFIG_SIZE offsetof(struct virtio_blk_config, max_secure_erase_sectors)
_Static_assert(BLK_CONFIG_SIZE == 60, "virtio 1.2 5.2.4: the config through write_zeroes_may_unmap");
#define MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per request */

struct blk_dev;

/* One guest request, or several adjacent ones merged into one I/O. */
struct blk_sub {
	uint16_t head;
	uint8_t *status;
	uint32_t used_len;
};

struct blk_req {
	struct blk_io io;
	struct blk_dev *dev;
	uint16_t q;
	uint32_t gen;
	unsigned nsub, cap_iov;
	struct blk_sub sub[BLK_MERGE_MAX_REQS];
	struct iovec iov[];
};

struct blk_dev {
	struct virtio_dev dev;
	struct virtio_ops ops;
	struct blk_backend *be;
	struct blk_disk_info info;
	char label[256];
	uint8_t serial[VIRTIO_BLK_ID_BYTES];
	uint32_t gen[VIRTIO_MAX_QUEUES]; /* bumped on reset: late completions are dropped */
	uint64_t to_notify;              /* queues with used entries not yet signalled */
	unsigned errors_logged;
	struct virtq_elem elem;
	struct blk_parsed parsed;
};

static void log_io_error(struct blk_dev *b, const struct blk_io *io)
{
	/* a failing disk would flood the log: the first few, then a summary line */
	if (b->errors_logged < 5)
		log_error("%s: %s at offset %llu failed: %s", b->label,
			  io->op == BLK_READ ? "read" : io->op == BLK_WRITE ? "write" : io->op == BLK_FLUSH ? "flush" : "zeroing",
			  (unsigned long long)io->offset, strerror(-io->result));
	else if (b->errors_logged == 5)
		log_error("%s: more I/O errors; not logging them any more", b->label);
	b->errors_logged++;
}

/* Answer a request at once (device lock held). */
static void answer(struct blk_dev *b, unsigned q, uint16_t head, uint8_t *status, uint8_t st, uint32_t data_len)
{
	if (status)
		*status = st;
	virtq_push(&b->dev.q[q].vq, head, status ? data_len + 1 : 0);
	b->to_notify |= 1ULL << q;
}

static void flush_notifications(struct blk_dev *b)
{
	uint64_t m = b->to_notify;
	b->to_notify = 0;
	for (unsigned q = 0; m; q++, m >>= 1)
		if (m & 1)
			virtio_notify(&b->dev, q);
}

static void req_complete(void *opaque, struct blk_io *io)
{
	struct blk_req *r = (struct blk_req *)io;
	struct blk_dev *b = opaque;
	pthread_mutex_lock(&b->dev.lock);
	if (r->gen == b->gen[r->q] && b->dev.q[r->q].enabled) {
		uint8_t st = VIRTIO_BLK_S_OK;
		if (io->result == -EOPNOTSUPP) {
			st = VIRTIO_BLK_S_UNSUPP;
		} else if (io->result < 0) {
			st = VIRTIO_BLK_S_IOERR;
			log_io_error(b, io);
		}
		for (unsigned i = 0; i < r->nsub; i++)
			answer(b, r->q, r->sub[i].head, r->sub[i].status, st, st == VIRTIO_BLK_S_OK ? r->sub[i].used_len : 0);
	}
	pthread_mutex_unlock(&b->dev.lock);
	free(r);
}

static void batch_done(void *opaque)
{
	struct blk_dev *b = opaque;
	pthread_mutex_lock(&b->dev.lock);
	flush_notifications(b);
	pthread_mutex_unlock(&b->dev.lock);
}

/* The answer-to-be of guest request p (a read answers its data length). */
static struct blk_sub sub_of(const struct blk_parsed *p, uint16_t head)
{
	return (struct blk_sub){ .head = head, .status = p->status,
				 .used_len = p->type == VIRTIO_BLK_T_IN ? (uint32_t)p->len : 0 };
}

static struct blk_req *req_new(struct blk_dev *b, unsigned q, struct blk_parsed *p, uint16_t head,
			       unsigned cap_iov)
{
	struct blk_req *r = malloc(sizeof(*r) + cap_iov * sizeof(struct iovec));
	if (!r) {
		answer(b, q, head, p->status, VIRTIO_BLK_S_IOERR, 0);
		return NULL;
	}
	memset(&r->io, 0, sizeof(r->io));
	memcpy(r->iov, p->data, p->ndata * sizeof(struct iovec));
	r->dev = b;
	r->q = (uint16_t)q;
	r->gen = b->gen[q];
	r->cap_iov = cap_iov;
	r->nsub = 1;
	r->sub[0] = sub_of(p, head);
	r->io.iov = r->iov;
	r->io.niov = p->ndata;
	switch (p->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		r->io.op = p->type == VIRTIO_BLK_T_IN ? BLK_READ : BLK_WRITE;
		r->io.offset = p->sector * BLK_SECTOR;
		r->io.len = p->len;
		break;
	case VIRTIO_BLK_T_FLUSH:
		r->io.op = BLK_FLUSH;
		break;
	default: /* DISCARD, WRITE_ZEROES */
		r->io.op = p->type == VIRTIO_BLK_T_DISCARD ? BLK_DISCARD : BLK_WRITE_ZEROES;
		r->io.unmap = p->unmap;
		r->io.offset = p->range_sector * BLK_SECTOR;
		r->io.len = (uint64_t)p->range_sectors * BLK_SECTOR;
		break;
	}
	return r;
}

/* Append p to the read or write r if it continues it (see blk_mergeable)
 * and r has room for its iovecs. */
static bool req_merge(struct blk_req *r, const struct blk_parsed *p, uint16_t head)
{
	uint32_t type = r->io.op == BLK_READ ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	if (!blk_mergeable(type, r->io.offset + r->io.len, r->io.niov, r->io.len, r->nsub, p) ||
	    r->io.niov + p->ndata > r->cap_iov)
		return false;
	memcpy(r->iov + r->io.niov, p->data, p->ndata * sizeof(struct iovec));
	r->io.niov += p->ndata;
	r->io.len += p->len;
	r->sub[r->nsub++] = sub_of(p, head);
	return true;
}

static void blk_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct blk_dev *b = d->priv;
	struct virtq *vq = &d->q[q].vq;
	struct blk_parsed *p = &b->parsed;
	struct blk_req *rw = NULL; /* the read or write later ones may join */
	int got;
	bool submitted = false;

	while ((got = virtq_pop(vq, &b->elem)) > 0) {
		uint16_t head = b->elem.head;
		int st = blk_parse(&b->elem, &b->info, p);
		if (st != VIRTIO_BLK_S_OK) {
			answer(b, q, head, p->status, (uint8_t)st, 0);
			continue;
		}
		if (rw && req_merge(rw, p, head))
			continue;
		if (rw) { /* this one does not continue it: what was gathered goes first */
			b->be->ops->submit(b->be, &rw->io);
			submitted = true;
			rw = NULL;
		}
		if (p->type == VIRTIO_BLK_T_GET_ID) {
			iov_from_buf(p->data, p->ndata, 0, b->serial, p->len);
			answer(b, q, head, p->status, VIRTIO_BLK_S_OK, (uint32_t)p->len);
		} else if (p->type == VIRTIO_BLK_T_FLUSH && b->be->flush_is_noop) {
			answer(b, q, head, p->status, VIRTIO_BLK_S_OK, 0);
		} else if (p->type != VIRTIO_BLK_T_FLUSH && !p->len && p->type <= VIRTIO_BLK_T_OUT) {
			answer(b, q, head, p->status, VIRTIO_BLK_S_OK, 0); /* empty transfer */
		} else if (p->type <= VIRTIO_BLK_T_OUT) {
			/* room for more iovecs only while more requests wait in the ring */
			rw = req_new(b, q, p, head, virtq_has_avail(vq) ? BLK_MERGE_MAX_IOV : p->ndata);
		} else {
			struct blk_req *r = req_new(b, q, p, head, p->ndata);
			if (r) {
				b->be->ops->submit(b->be, &r->io);
				submitted = true;
			}
		}
	}
	if (rw) {
		b->be->ops->submit(b->be, &rw->io);
		submitted = true;
	}
	if (submitted)
		b->be->ops->kick(b->be);
	flush_notifications(b);
}

static void blk_reset(struct virtio_dev *d)
{
	struct blk_dev *b = d->priv;
	for (unsigned i = 0; i < d->num_queues; i++)
		b->gen[i]++;
	b->to_notify = 0;
}

static void fill_config(struct blk_dev *b, unsigned nq)
{
	const struct blk_backend *be = b->be;
	uint32_t lbs = be->logical_block;
	unsigned exp = 0;
	while ((lbs << exp) < be->physical_block && exp < 7)
		exp++;
	struct virtio_blk_config c = {
		.capacity = htole64(be->size / BLK_SECTOR),
		.seg_max = htole32(BLK_MAX_SEGS),
		.blk_size = htole32(lbs),
		.physical_block_exp = (uint8_t)exp,
		.min_io_size = htole16(1), /* logical blocks */
		.num_queues = htole16((uint16_t)nq),
		.max_discard_sectors = htole32(MAX_DISCARD_SECTORS),
		.max_discard_seg = htole32(1),
		.discard_sector_alignment = htole32(be->physical_block / BLK_SECTOR),
		.max_write_zeroes_sectors = htole32(MAX_DISCARD_SECTORS),
		.max_write_zeroes_seg = htole32(1),
		.write_zeroes_may_unmap = 1,
	};
	memcpy(b->dev.config, &c, BLK_CONFIG_SIZE);
}

/* A virtio-blk device over an open backend (the device takes it over,
 * even on failure); serial may be NULL; label names the disk in log lines. */
static int blk_create(struct vm *vm, const struct device_type *type, struct blk_backend *be, const char *serial,
		      const char *label, char *err, size_t errlen)
{
	struct blk_dev *b = calloc(1, sizeof(*b));
	if (!b) {
		be->ops->close(be);
		snprintf(err, errlen, "virtio-blk: out of memory");
		return -ENOMEM;
	}
	unsigned nq = vm->ncpus < VIRTIO_MAX_QUEUES ? vm->ncpus : VIRTIO_MAX_QUEUES;
	b->be = be;
	snprintf(b->label, sizeof(b->label), "%s", label);
	if (serial)
		memcpy(b->serial, serial, strnlen(serial, VIRTIO_BLK_ID_BYTES));
	b->info.sectors = be->size / BLK_SECTOR;
	b->info.readonly = be->readonly;
	b->info.discard = be->can_discard;
	b->info.max_discard_sectors = MAX_DISCARD_SECTORS;
	b->ops = (struct virtio_ops){
		.name = "virtio-blk",
		.device_id = VIRTIO_ID_BLOCK,
		.class_code = 0x010000,
		.num_queues = nq,
		.queue_max = BLK_QUEUE_SIZE,
		.features = F(SEG_MAX) | F(BLK_SIZE) | F(FLUSH) | F(TOPOLOGY) | F(MQ) | (be->readonly ? F(RO) : 0) |
			    (be->can_discard ? F(DISCARD) | F(WRITE_ZEROES) : 0),
		.config_size = BLK_CONFIG_SIZE,
		.queue_notify = blk_queue_notify,
		.reset = blk_reset,
	};
	be->complete = req_complete;
	be->batch_done = batch_done;
	be->opaque = b;
	fill_config(b, nq);
	int rc = virtio_dev_init(&b->dev, vm, &b->ops, b);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-blk: cannot create device: %s", strerror(-rc));
		be->ops->close(be);
		return rc; /* b stays allocated: the device may be half on the bus */
	}
	if (device_add(vm, type, &b->dev, err, errlen) < 0) {
		be->ops->close(be);
		return -ENOMEM;
	}
	return 0;
}

static void blk_drain(struct device *d)
{
	struct blk_dev *b = virtio_device_model(d);
	b->be->ops->drain(b->be);
}

static void blk_destroy(struct device *d)
{
	struct blk_dev *b = virtio_device_model(d);
	b->be->ops->close(b->be);
}

/* --device virtio-blk,path=...: a file or a block device */
static int disk_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	const struct kv_disk *k = &c->devices[i].u.disk;
	struct blk_backend *be;
	if (blk_disk_open(c, i, "virtio-blk", &vm->ev, &be, err, errlen) < 0)
		return -1;
	return blk_create(vm, &virtio_blk_device, be, k->device_id, k->path, err, errlen);
}

const struct device_type virtio_blk_device = {
	.kind = KV_DEV_VIRTIO_BLK, .check = blk_disk_check, .create = disk_create,
	.resume = virtio_device_resume, .drain = blk_drain, .destroy = blk_destroy,
};

/* --device nbd,uri=...: the same device over an NBD client */
static int nbd_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	const struct kv_nbd *k = &c->devices[i].u.nbd;
	struct blk_backend *be;
	if (blk_nbd_open(k, &vm->ev, &be, err, errlen) < 0)
		return -1;
	return blk_create(vm, &nbd_device, be, k->device_id, k->uri, err, errlen);
}

const struct device_type nbd_device = {
	.kind = KV_DEV_NBD, .create = nbd_create, .resume = virtio_device_resume, .drain = blk_drain,
	.destroy = blk_destroy,
};
