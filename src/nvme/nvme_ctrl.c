/* The NVMe controller model; see nvme_ctrl.h. References are to the NVMe
 * Base Specification 1.4 (registers 3.1, queues 4.1, PRPs 4.3, admin
 * commands 5, NVM commands 6). */
#include "nvme_ctrl.h"
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include "../block/backend.h"
#include "../util/log.h"
#include "../util/iov.h"
#include "../vmm/guest_mem.h"
#include "../util/bytes.h"

#define PAGE 4096u
#define MQES 1023u                 /* entries per queue, less one */
#define MDTS 8                     /* largest transfer: 2^8 pages, 1 MiB */
#define MAX_XFER (PAGE << MDTS)
#define AERL 3                     /* asynchronous event requests held, less one */
#define SQE_SIZE 64
#define CQE_SIZE 16
#define MAX_DSM_RANGES 256

/* registers (3.1) */
#define REG_CAP 0x00
#define REG_VS 0x08
#define REG_INTMS 0x0c
#define REG_INTMC 0x10
#define REG_CC 0x14
#define REG_CSTS 0x1c
#define REG_AQA 0x24
#define REG_ASQ 0x28
#define REG_ACQ 0x30
#define CC_EN 1u
#define CC_SHN(cc) (((cc) >> 14) & 3)
#define CSTS_RDY 1u
#define CSTS_CFS 2u
#define CSTS_SHST_MASK (3u << 2)
#define CSTS_SHST_BUSY (1u << 2)
#define CSTS_SHST_DONE (2u << 2)
#define NVME_VERSION 0x00010400 /* 1.4 */

/* status: type << 8 | code; DNR (do not retry) is bit 14 of the field */
#define SC_OK 0x000
#define SC_INVALID_OPCODE 0x001
#define SC_INVALID_FIELD 0x002
#define SC_CMD_SEQ_ERROR 0x00c
#define SC_DATA_XFER_ERROR 0x004
#define SC_INTERNAL 0x006
#define SC_INVALID_NS 0x00b
#define SC_PRP_OFFSET 0x013
#define SC_WRITE_PROTECTED 0x020
#define SC_LBA_RANGE 0x080
#define SC_CAP_EXCEEDED 0x081
#define SC_CQ_INVALID 0x100
#define SC_INVALID_QID 0x101
#define SC_INVALID_QSIZE 0x102
#define SC_AER_LIMIT 0x105
#define SC_INVALID_VECTOR 0x108
#define SC_INVALID_LOG_PAGE 0x109
#define SC_INVALID_QUEUE_DELETION 0x10c
#define SC_NOT_SAVEABLE 0x10d
#define SC_WRITE_FAULT 0x280
#define SC_READ_ERROR 0x281
#define SC_DNR 0x4000

/* admin opcodes (5) */
enum { ADM_DELETE_SQ = 0x00, ADM_CREATE_SQ = 0x01, ADM_GET_LOG = 0x02, ADM_DELETE_CQ = 0x04,
       ADM_CREATE_CQ = 0x05, ADM_IDENTIFY = 0x06, ADM_ABORT = 0x08, ADM_SET_FEATURES = 0x09,
       ADM_GET_FEATURES = 0x0a, ADM_AER = 0x0c, ADM_KEEP_ALIVE = 0x18, ADM_DBBUF = 0x7c };
/* NVM opcodes (6) */
enum { IO_FLUSH = 0x00, IO_WRITE = 0x01, IO_READ = 0x02, IO_WRITE_ZEROES = 0x08, IO_DSM = 0x09 };
/* features (5.21.1) */
enum { FEAT_ARBITRATION = 0x01, FEAT_POWER = 0x02, FEAT_TEMP = 0x04, FEAT_ERROR_RECOVERY = 0x05,
       FEAT_VWC = 0x06, FEAT_NUM_QUEUES = 0x07, FEAT_IRQ_COALESCE = 0x08, FEAT_IRQ_CONFIG = 0x09,
       FEAT_WRITE_ATOMIC = 0x0a, FEAT_ASYNC_EVENT = 0x0b };


struct sq {
	bool valid, deleting;
	uint16_t size, head, tail, cqid;
	uint16_t delete_cid; /* the Delete I/O SQ that waits for this queue to empty */
	uint32_t gen;        /* bumped when the queue goes: late answers are dropped */
	unsigned inflight;   /* fetched commands not yet answered */
	uint8_t *ring;
};

struct cq {
	bool valid, ien, phase, irq;
	uint16_t size, head, tail, vector;
	unsigned inflight; /* commands of its SQs fetched and not yet answered */
	unsigned nsq;      /* SQs feeding it */
	uint8_t *ring;
};

struct req;
struct sub {
	struct blk_io io;
	struct req *req;
};

struct req {
	uint16_t sqid, cid, status;
	uint32_t gen, sq_gen;
	bool flush_after;  /* FUA, or a write with the write cache off */
	unsigned pending;  /* subs still with the backend */
	unsigned nsub;
	struct req *next;  /* waiting for the flush that follows a write */
	struct iovec *iov; /* after sub[] */
	struct sub sub[];
};

struct nvme_ctrl {
	pthread_mutex_t lock;
	const struct gmem *mem;
	struct blk_backend *be;
	struct nvme_ctrl_ops ops;
	void *opaque;
	struct nvme_ctrl_params p;
	uint32_t lbs;   /* logical block size */
	uint8_t lbads;  /* its log2 */
	uint64_t nsze;  /* namespace size in blocks */
	/* registers */
	uint64_t cap, asq, acq;
	uint32_t cc, csts, aqa, intms;
	uint32_t gen; /* bumped at each controller reset */
	struct sq sq[NVME_MAX_IOQ + 1];
	struct cq cq[NVME_MAX_IOQ + 1];
	unsigned naer; /* asynchronous event requests held (never answered) */
	/* features */
	uint32_t arbitration, power, temp_threshold, error_recovery, irq_coalesce, async_event, nq_granted;
	bool vwc, queues_set;
	/* shadow doorbells (Doorbell Buffer Config, 5.8): the driver writes
	 * each I/O queue's tail and head here and rings the real doorbell only
	 * when it passes the index the controller left in eis */
	uint32_t *dbs, *eis;
	/* backend state */
	unsigned inflight;         /* requests with the backend, any generation */
	bool submitted;            /* a kick is due */
	struct req *flush_next;    /* writes whose flush is to be submitted */
	bool shutdown, shutdown_flushing;
	struct sub shutdown_flush;
	bool warned_doorbell, warned_enable;
};

/* ---------------- little helpers ---------------- */

static void put_str(uint8_t *dst, const char *s, size_t n) /* space-padded ASCII */
{
	size_t l = strlen(s);
	memset(dst, ' ', n);
	memcpy(dst, s, l < n ? l : n);
}


/* One segment of guest memory onto the iovec array, merged with the last
 * one when the host memory continues it. */
static int add_seg(const struct gmem *m, uint64_t gpa, uint32_t len, struct iovec *iov, unsigned *n, unsigned max)
{
	uint8_t *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -1;
	if (*n && (uint8_t *)iov[*n - 1].iov_base + iov[*n - 1].iov_len == p) {
		iov[*n - 1].iov_len += len;
		return 0;
	}
	if (*n >= max)
		return -1;
	iov[(*n)++] = (struct iovec){ p, len };
	return 0;
}

/* The data of a command (4.3): PRP1 may start inside a page (dword
 * aligned); then PRP2 is the second page, or a list of page addresses whose
 * last entry chains to the next list page when more follow. Each list entry
 * is read once. Returns the number of iovecs, or -status. */
static int prp_map(const struct gmem *m, uint64_t prp1, uint64_t prp2, uint32_t len, struct iovec *iov, unsigned max)
{
	unsigned n = 0;
	if (!len)
		return 0;
	if (prp1 & 3)
		return -(SC_PRP_OFFSET | SC_DNR);
	uint32_t first = PAGE - (uint32_t)(prp1 & (PAGE - 1));
	if (first > len)
		first = len;
	if (add_seg(m, prp1, first, iov, &n, max) < 0)
		return -SC_DATA_XFER_ERROR;
	len -= first;
	if (!len)
		return (int)n;
	if (len <= PAGE) {
		if (prp2 & (PAGE - 1))
			return -(SC_PRP_OFFSET | SC_DNR);
		return add_seg(m, prp2, len, iov, &n, max) < 0 ? -SC_DATA_XFER_ERROR : (int)n;
	}
	if (prp2 & 7)
		return -(SC_PRP_OFFSET | SC_DNR);
	uint64_t list = prp2;
	while (len) {
		unsigned entries = (PAGE - (unsigned)(list & (PAGE - 1))) / 8;
		const uint64_t *e = gmem_ptr(m, list, entries * 8ull);
		if (!e)
			return -SC_DATA_XFER_ERROR;
		uint64_t next = 0;
		for (unsigned i = 0; i < entries && len; i++) {
			uint64_t ent = __atomic_load_n(&e[i], __ATOMIC_RELAXED);
			if (ent & (PAGE - 1))
				return -(SC_PRP_OFFSET | SC_DNR);
			if (i == entries - 1 && len > PAGE) { /* the last entry chains */
				next = ent;
				break;
			}
			uint32_t l = len < PAGE ? len : PAGE;
			if (add_seg(m, ent, l, iov, &n, max) < 0)
				return -SC_DATA_XFER_ERROR;
			len -= l;
		}
		if (len && !next)
			return -SC_DATA_XFER_ERROR;
		list = next;
	}
	return (int)n;
}

/* Copy a controller-made buffer (identify data, a log page) to the
 * command's PRPs; returns a status. */
static uint16_t copy_out(struct nvme_ctrl *c, const struct nvme_sqe *e, const void *buf, uint32_t len)
{
	struct iovec iov[3];
	int n = prp_map(c->mem, e->prp1, e->prp2, len, iov, 3);
	if (n < 0)
		return (uint16_t)-n;
	iov_from_buf(iov, (unsigned)n, 0, buf, len);
	return SC_OK;
}

/* ---------------- completion queues and interrupts ---------------- */

static unsigned cq_room(const struct cq *q)
{
	unsigned posted = (unsigned)(q->tail + q->size - q->head) % q->size;
	unsigned used = posted + q->inflight;
	return used + 1 >= q->size ? 0 : q->size - 1 - used;
}

/* Post the answer of a fetched command (its slot was reserved at fetch). */
static void post(struct nvme_ctrl *c, struct sq *s, uint16_t cid, uint16_t status, uint32_t dw0)
{
	struct cq *q = &c->cq[s->cqid];
	s->inflight--;
	q->inflight--;
	uint8_t *slot = q->ring + (size_t)q->tail * CQE_SIZE;
	uint32_t dw[3] = { dw0, 0, (uint32_t)s->head | (uint32_t)(s - c->sq) << 16 };
	memcpy(slot, dw, sizeof(dw));
	/* the phase bit tells the driver the entry is new: it goes last */
	__atomic_store_n((uint32_t *)(slot + 12), cid | (uint32_t)q->phase << 16 | (uint32_t)status << 17,
			 __ATOMIC_RELEASE);
	if (++q->tail == q->size) {
		q->tail = 0;
		q->phase = !q->phase;
	}
	q->irq = true;
}

static void raise_irqs(struct nvme_ctrl *c)
{
	for (unsigned i = 0; i <= c->p.max_ioq; i++) {
		struct cq *q = &c->cq[i];
		if (q->valid && q->irq) {
			q->irq = false;
			if (q->ien)
				c->ops.irq(c->opaque, q->vector);
		}
	}
}

/* ---------------- controller state ---------------- */

static void drop_queues(struct nvme_ctrl *c)
{
	for (unsigned i = 0; i <= NVME_MAX_IOQ; i++) {
		c->sq[i].gen++;
		c->sq[i] = (struct sq){ .gen = c->sq[i].gen };
		c->cq[i] = (struct cq){ 0 };
	}
	c->naer = 0;
}

static void reset(struct nvme_ctrl *c)
{
	if (c->dbs && c->ops.shadow_doorbells)
		c->ops.shadow_doorbells(c->opaque, false);
	c->dbs = c->eis = NULL;
	c->gen++;
	drop_queues(c);
	c->csts = 0;
	c->queues_set = false;
	c->nq_granted = 0;
	c->shutdown = c->shutdown_flushing = false;
}

static uint8_t *ring_at(struct nvme_ctrl *c, uint64_t gpa, unsigned entries, unsigned esize)
{
	if (gpa & (PAGE - 1))
		return NULL;
	return gmem_ptr(c->mem, gpa, (uint64_t)entries * esize);
}

static void enable(struct nvme_ctrl *c)
{
	unsigned sqs = (c->aqa & 0xfff) + 1, cqs = ((c->aqa >> 16) & 0xfff) + 1;
	uint8_t *sring = ring_at(c, c->asq, sqs, SQE_SIZE), *cring = ring_at(c, c->acq, cqs, CQE_SIZE);
	const char *why = NULL;
	if (((c->cc >> 7) & 0xf) != 0)
		why = "a memory page size other than 4 KiB";
	else if (((c->cc >> 4) & 7) != 0)
		why = "a command set other than NVM";
	else if (sqs < 2 || cqs < 2)
		why = "an admin queue of fewer than 2 entries";
	else if (!sring || !cring)
		why = "admin queues outside guest RAM or not page aligned";
	if (why) {
		if (!c->warned_enable)
			log_warn("nvme %s: the guest enabled the controller with %s", c->p.serial, why);
		c->warned_enable = true;
		c->csts |= CSTS_CFS;
		return;
	}
	c->sq[0] = (struct sq){ .valid = true, .size = (uint16_t)sqs, .cqid = 0, .ring = sring, .gen = c->sq[0].gen };
	c->cq[0] = (struct cq){ .valid = true, .ien = true, .phase = true, .size = (uint16_t)cqs, .vector = 0,
				.nsq = 1, .ring = cring };
	c->csts = CSTS_RDY;
}

static void cc_write(struct nvme_ctrl *c, uint32_t v)
{
	uint32_t old = c->cc;
	c->cc = v;
	if ((v & CC_EN) && !(old & CC_EN))
		enable(c);
	else if (!(v & CC_EN) && (old & CC_EN))
		reset(c);
	if (CC_SHN(v) && !CC_SHN(old) && (c->csts & CSTS_RDY)) {
		/* answered on the I/O thread once the disk is flushed */
		c->csts = (c->csts & ~CSTS_SHST_MASK) | CSTS_SHST_BUSY;
		c->shutdown = true;
	}
}

static uint32_t reg_read32(const struct nvme_ctrl *c, unsigned off)
{
	switch (off) {
	case REG_CAP: return (uint32_t)c->cap;
	case REG_CAP + 4: return (uint32_t)(c->cap >> 32);
	case REG_VS: return NVME_VERSION;
	case REG_INTMS: case REG_INTMC: return c->intms;
	case REG_CC: return c->cc;
	case REG_CSTS: return c->csts;
	case REG_AQA: return c->aqa;
	case REG_ASQ: return (uint32_t)c->asq;
	case REG_ASQ + 4: return (uint32_t)(c->asq >> 32);
	case REG_ACQ: return (uint32_t)c->acq;
	case REG_ACQ + 4: return (uint32_t)(c->acq >> 32);
	}
	return 0;
}

/* Returns true when the I/O thread has work. */
static bool reg_write32(struct nvme_ctrl *c, unsigned off, uint32_t v)
{
	bool enabled = c->cc & CC_EN;
	switch (off) {
	case REG_INTMS: c->intms |= v; break;
	case REG_INTMC: c->intms &= ~v; break;
	case REG_CC: cc_write(c, v); return c->shutdown;
	/* the admin queue is set while the controller is off */
	case REG_AQA: if (!enabled) c->aqa = v & 0x0fff0fff; break;
	case REG_ASQ: if (!enabled) c->asq = (c->asq & ~0xffffffffull) | v; break;
	case REG_ASQ + 4: if (!enabled) c->asq = (c->asq & 0xffffffffull) | (uint64_t)v << 32; break;
	case REG_ACQ: if (!enabled) c->acq = (c->acq & ~0xffffffffull) | v; break;
	case REG_ACQ + 4: if (!enabled) c->acq = (c->acq & 0xffffffffull) | (uint64_t)v << 32; break;
	}
	return false;
}

/* A doorbell: even index = SQ tail, odd = CQ head (stride 4 bytes). */
static bool doorbell(struct nvme_ctrl *c, unsigned idx, uint32_t v)
{
	unsigned qid = idx / 2;
	bool is_cq = idx & 1;
	if (!(c->csts & CSTS_RDY) || qid > c->p.max_ioq)
		return false;
	uint16_t size = is_cq ? c->cq[qid].size : c->sq[qid].size;
	bool valid = is_cq ? c->cq[qid].valid : c->sq[qid].valid;
	if (!valid || v >= size) {
		if (!c->warned_doorbell)
			log_warn("nvme %s: the guest rang an invalid doorbell (queue %u, value %u); ignored", c->p.serial,
				 qid, v);
		c->warned_doorbell = true;
		return false;
	}
	if (is_cq)
		c->cq[qid].head = (uint16_t)v;
	else
		c->sq[qid].tail = (uint16_t)v;
	return true;
}

void nvme_ctrl_mmio(struct nvme_ctrl *c, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	bool wake = false;
	pthread_mutex_lock(&c->lock);
	if (off >= NVME_REG_SIZE) {
		/* doorbells are written as whole dwords and read as zero */
		if (is_write && len == 4 && !(off & 3) && off < NVME_DB_END) {
			uint32_t v;
			memcpy(&v, data, 4);
			wake = doorbell(c, (unsigned)(off - NVME_REG_SIZE) / 4, v);
		} else if (!is_write) {
			memset(data, 0, len);
		}
	} else if ((len == 4 || len == 8) && !(off & (len - 1))) {
		for (unsigned i = 0; i < len; i += 4) {
			if (is_write) {
				uint32_t v;
				memcpy(&v, data + i, 4);
				wake |= reg_write32(c, (unsigned)off + i, v);
			} else {
				uint32_t v = reg_read32(c, (unsigned)off + i);
				memcpy(data + i, &v, 4);
			}
		}
	} else if (!is_write) {
		/* narrower reads see the same registers */
		uint8_t buf[8];
		uint64_t base = off & ~7ull;
		uint32_t lo = reg_read32(c, (unsigned)base), hi = reg_read32(c, (unsigned)base + 4);
		memcpy(buf, &lo, 4);
		memcpy(buf + 4, &hi, 4);
		unsigned o = (unsigned)(off - base);
		memset(data, 0, len);
		memcpy(data, buf + o, len <= 8 - o ? len : 8 - o);
	}
	pthread_mutex_unlock(&c->lock);
	if (wake)
		c->ops.wake(c->opaque);
}

/* ---------------- admin commands ---------------- */

static void identify_ctrl(struct nvme_ctrl *c, uint8_t *d)
{
	wr16(d + 0, 0x1af4);               /* VID */
	wr16(d + 2, 0x1af4);               /* SSVID */
	put_str(d + 4, c->p.serial, 20);   /* SN */
	put_str(d + 24, "kvkit NVMe disk", 40); /* MN */
	put_str(d + 64, "1.0", 8);         /* FR */
	d[72] = 6;                         /* RAB */
	d[77] = MDTS;
	wr32(d + 80, NVME_VERSION);
	d[111] = 1;                        /* CNTRLTYPE: I/O controller */
	wr16(d + 256, 1u << 8);            /* OACS: Doorbell Buffer Config */
	d[258] = 3;                        /* ACL */
	d[259] = AERL;
	d[260] = 0x03;                     /* FRMW: one slot, read-only */
	d[261] = 0;                        /* LPA */
	d[262] = 0;                        /* ELPE: one error log entry */
	wr16(d + 266, 0x0157);             /* WCTEMP 343 K */
	wr16(d + 268, 0x0175);             /* CCTEMP 373 K */
	d[512] = 0x66;                     /* SQES: 64 bytes */
	d[513] = 0x44;                     /* CQES: 16 bytes */
	wr16(d + 514, MQES + 1);           /* MAXCMD */
	wr32(d + 516, 1);                  /* NN */
	uint16_t oncs = c->be->can_discard ? (1u << 2 | 1u << 3) : 0; /* DSM, WRITE ZEROES */
	wr16(d + 520, oncs);
	d[525] = 1;                        /* VWC present: FLUSH reaches the disk */
	char nqn[64];
	snprintf(nqn, sizeof(nqn), "nqn.2026-11.dev.kvkit:nvme:%s", c->p.serial); /* unique per disk */
	memcpy(d + 768, nqn, strlen(nqn));
}

static void identify_ns(struct nvme_ctrl *c, uint8_t *d)
{
	wr64(d + 0, c->nsze);  /* NSZE */
	wr64(d + 8, c->nsze);  /* NCAP */
	wr64(d + 16, c->nsze); /* NUSE */
	/* NSFEAT: deallocation (thin provisioning) if discard works; NPWG and
	 * NOWS give the physical block size */
	d[24] = (c->be->can_discard ? 1 : 0) | 1u << 4;
	d[25] = 0;             /* NLBAF: one format */
	d[26] = 0;             /* FLBAS: format 0 */
	d[33] = c->be->can_discard ? (1u << 3 | 1) : 0; /* DLFEAT: deallocated reads zero; WRITE ZEROES may deallocate */
	uint32_t per_phys = c->be->physical_block > c->lbs ? c->be->physical_block / c->lbs : 1;
	wr16(d + 64, (uint16_t)(per_phys - 1)); /* NPWG */
	wr16(d + 66, (uint16_t)(per_phys - 1)); /* NPWA */
	wr16(d + 72, (uint16_t)(per_phys - 1)); /* NOWS */
	d[99] = c->be->readonly ? 1 : 0;        /* NSATTR: write protected */
	memcpy(d + 104, c->p.uuid, 16);         /* NGUID */
	wr32(d + 128, (uint32_t)c->lbads << 16); /* LBAF0: LBADS, no metadata */
}

static uint16_t do_identify(struct nvme_ctrl *c, const struct nvme_sqe *e)
{
	uint8_t d[PAGE];
	memset(d, 0, sizeof(d));
	switch (e->cdw10 & 0xff) {
	case 0x00: /* namespace */
		if (e->nsid != 1)
			return SC_INVALID_NS | SC_DNR;
		identify_ns(c, d);
		break;
	case 0x01: identify_ctrl(c, d); break;
	case 0x02: /* active namespaces above nsid */
		if (e->nsid >= 0xfffffffe)
			return SC_INVALID_NS | SC_DNR;
		if (e->nsid < 1)
			wr32(d + 0, 1);
		break;
	case 0x03: /* namespace identification descriptors: a UUID */
		if (e->nsid != 1)
			return SC_INVALID_NS | SC_DNR;
		d[0] = 3;
		d[1] = 16;
		memcpy(d + 4, c->p.uuid, 16);
		break;
	default: return SC_INVALID_FIELD | SC_DNR;
	}
	return copy_out(c, e, d, PAGE);
}

static uint16_t do_get_log(struct nvme_ctrl *c, const struct nvme_sqe *e)
{
	uint8_t lid = e->cdw10 & 0xff;
	uint64_t len = (((uint64_t)(e->cdw11 & 0xffff) << 16 | e->cdw10 >> 16) + 1) * 4;
	uint64_t off = (uint64_t)e->cdw13 << 32 | e->cdw12;
	uint8_t page[PAGE];
	uint32_t size;
	memset(page, 0, sizeof(page));
	switch (lid) {
	case 0x01: size = 64; break;  /* error information: no errors */
	case 0x02:                    /* SMART / health */
		size = 512;
		wr16(page + 1, 0x0143); /* composite temperature 323 K */
		page[3] = 100;          /* available spare */
		page[4] = 10;           /* its threshold */
		break;
	case 0x03: /* firmware slots: slot 1 active */
		size = 512;
		page[0] = 1;
		put_str(page + 8, "1.0", 8);
		break;
	default: return SC_INVALID_LOG_PAGE | SC_DNR;
	}
	if (off & 3 || off >= size || len > size - off)
		return SC_INVALID_FIELD | SC_DNR;
	return copy_out(c, e, page + off, (uint32_t)len);
}

static uint16_t create_cq(struct nvme_ctrl *c, const struct nvme_sqe *e)
{
	unsigned qid = e->cdw10 & 0xffff, size = (e->cdw10 >> 16) + 1, vector = e->cdw11 >> 16;
	if (!qid || qid > c->p.max_ioq || c->cq[qid].valid)
		return SC_INVALID_QID | SC_DNR;
	if (size < 2 || size > MQES + 1)
		return SC_INVALID_QSIZE | SC_DNR;
	if (!(e->cdw11 & 1)) /* CAP.CQR: queues must be one contiguous buffer */
		return SC_INVALID_FIELD | SC_DNR;
	if (vector >= c->p.nvec)
		return SC_INVALID_VECTOR | SC_DNR;
	uint8_t *ring = ring_at(c, e->prp1, size, CQE_SIZE);
	if (!ring)
		return SC_INVALID_FIELD | SC_DNR;
	c->cq[qid] = (struct cq){ .valid = true, .ien = e->cdw11 & 2, .phase = true, .size = (uint16_t)size,
				  .vector = (uint16_t)vector, .ring = ring };
	return SC_OK;
}

static uint16_t create_sq(struct nvme_ctrl *c, const struct nvme_sqe *e)
{
	unsigned qid = e->cdw10 & 0xffff, size = (e->cdw10 >> 16) + 1, cqid = e->cdw11 >> 16;
	if (!qid || qid > c->p.max_ioq || c->sq[qid].valid)
		return SC_INVALID_QID | SC_DNR;
	if (!cqid || cqid > c->p.max_ioq || !c->cq[cqid].valid)
		return SC_CQ_INVALID | SC_DNR;
	if (size < 2 || size > MQES + 1)
		return SC_INVALID_QSIZE | SC_DNR;
	if (!(e->cdw11 & 1))
		return SC_INVALID_FIELD | SC_DNR;
	uint8_t *ring = ring_at(c, e->prp1, size, SQE_SIZE);
	if (!ring)
		return SC_INVALID_FIELD | SC_DNR;
	c->sq[qid] = (struct sq){ .valid = true, .size = (uint16_t)size, .cqid = (uint16_t)cqid, .ring = ring,
				  .gen = c->sq[qid].gen };
	c->cq[cqid].nsq++;
	return SC_OK;
}

static void sq_delete(struct nvme_ctrl *c, unsigned qid)
{
	struct sq *s = &c->sq[qid];
	c->cq[s->cqid].nsq--;
	*s = (struct sq){ .gen = s->gen + 1 };
}

/* Returns true when the answer comes later (the queue still has commands
 * with the backend: they are answered first, then the deletion). */
static bool delete_sq(struct nvme_ctrl *c, const struct nvme_sqe *e, uint16_t *status)
{
	unsigned qid = e->cdw10 & 0xffff;
	if (!qid || qid > c->p.max_ioq || !c->sq[qid].valid || c->sq[qid].deleting) {
		*status = SC_INVALID_QID | SC_DNR;
		return false;
	}
	struct sq *s = &c->sq[qid];
	if (s->inflight) {
		s->deleting = true;
		s->delete_cid = e->cid;
		return true;
	}
	sq_delete(c, qid);
	*status = SC_OK;
	return false;
}

static uint16_t delete_cq(struct nvme_ctrl *c, const struct nvme_sqe *e)
{
	unsigned qid = e->cdw10 & 0xffff;
	if (!qid || qid > c->p.max_ioq || !c->cq[qid].valid)
		return SC_INVALID_QID | SC_DNR;
	if (c->cq[qid].nsq)
		return SC_INVALID_QUEUE_DELETION | SC_DNR;
	c->cq[qid] = (struct cq){ 0 };
	return SC_OK;
}

static uint16_t features(struct nvme_ctrl *c, const struct nvme_sqe *e, bool set, uint32_t *dw0)
{
	uint8_t fid = e->cdw10 & 0xff;
	uint32_t v = e->cdw11;
	if (set && (e->cdw10 >> 31))
		return SC_NOT_SAVEABLE | SC_DNR;
	if (!set && ((e->cdw10 >> 8) & 7) == 3) { /* supported capabilities: changeable, not saveable */
		if (fid < FEAT_ARBITRATION || fid > FEAT_ASYNC_EVENT || fid == 0x03)
			return SC_INVALID_FIELD | SC_DNR;
		*dw0 = 1u << 2;
		return SC_OK;
	}
	uint32_t *slot = NULL;
	switch (fid) {
	case FEAT_ARBITRATION: slot = &c->arbitration; break;
	case FEAT_POWER: slot = &c->power; break;
	case FEAT_TEMP: slot = &c->temp_threshold; break;
	case FEAT_ERROR_RECOVERY: slot = &c->error_recovery; break;
	case FEAT_IRQ_COALESCE: slot = &c->irq_coalesce; break; /* accepted; interrupts are not coalesced */
	case FEAT_ASYNC_EVENT: slot = &c->async_event; break;
	case FEAT_WRITE_ATOMIC: *dw0 = 0; return SC_OK;
	case FEAT_IRQ_CONFIG:
		if ((v & 0xffff) >= c->p.nvec)
			return SC_INVALID_FIELD | SC_DNR;
		*dw0 = v & 0xffff;
		return SC_OK;
	case FEAT_VWC:
		if (set)
			c->vwc = v & 1;
		*dw0 = c->vwc;
		return SC_OK;
	case FEAT_NUM_QUEUES:
		if (set) {
			if ((v & 0xffff) == 0xffff || (v >> 16) == 0xffff)
				return SC_INVALID_FIELD | SC_DNR;
			if (c->queues_set) /* once per controller reset */
				return SC_CMD_SEQ_ERROR | SC_DNR;
			unsigned n = c->p.max_ioq - 1;
			c->nq_granted = n | n << 16;
			c->queues_set = true;
		}
		*dw0 = c->queues_set ? c->nq_granted : ((c->p.max_ioq - 1) | (c->p.max_ioq - 1) << 16);
		return SC_OK;
	default: return SC_INVALID_FIELD | SC_DNR;
	}
	if (set)
		*slot = v;
	*dw0 = *slot;
	return SC_OK;
}

static uint16_t dbbuf_config(struct nvme_ctrl *c, const struct nvme_sqe *e)
{
	if ((e->prp1 | e->prp2) & (PAGE - 1))
		return SC_INVALID_FIELD | SC_DNR;
	uint32_t *dbs = gmem_ptr(c->mem, e->prp1, PAGE), *eis = gmem_ptr(c->mem, e->prp2, PAGE);
	if (!dbs || !eis)
		return SC_INVALID_FIELD | SC_DNR;
	bool was = c->dbs;
	c->dbs = dbs;
	c->eis = eis;
	/* queues made before: ask for a doorbell at their next move */
	for (unsigned q = 1; q <= c->p.max_ioq; q++) {
		if (c->sq[q].valid)
			__atomic_store_n(&eis[2 * q], c->sq[q].tail, __ATOMIC_RELAXED);
		if (c->cq[q].valid)
			__atomic_store_n(&eis[2 * q + 1], c->cq[q].head, __ATOMIC_RELAXED);
	}
	if (!was && c->ops.shadow_doorbells)
		c->ops.shadow_doorbells(c->opaque, true);
	return SC_OK;
}

/* Run one admin command; returns false when its answer comes later. */
static bool admin(struct nvme_ctrl *c, const struct nvme_sqe *e, uint16_t *status, uint32_t *dw0)
{
	*dw0 = 0;
	if (e->flags & 0xc3) { /* fused commands and SGLs are not supported */
		*status = SC_INVALID_FIELD | SC_DNR;
		return true;
	}
	switch (e->opc) {
	case ADM_IDENTIFY: *status = do_identify(c, e); return true;
	case ADM_GET_LOG: *status = do_get_log(c, e); return true;
	case ADM_CREATE_CQ: *status = create_cq(c, e); return true;
	case ADM_CREATE_SQ: *status = create_sq(c, e); return true;
	case ADM_DELETE_CQ: *status = delete_cq(c, e); return true;
	case ADM_DELETE_SQ: return !delete_sq(c, e, status);
	case ADM_SET_FEATURES: *status = features(c, e, true, dw0); return true;
	case ADM_GET_FEATURES: *status = features(c, e, false, dw0); return true;
	case ADM_ABORT: *dw0 = 1; *status = SC_OK; return true; /* nothing is aborted */
	case ADM_DBBUF: *status = dbbuf_config(c, e); return true;
	case ADM_AER:
		if (c->naer > AERL) {
			*status = SC_AER_LIMIT | SC_DNR;
			return true;
		}
		c->naer++; /* held: kvkit raises no events */
		return false;
	}
	*status = SC_INVALID_OPCODE | SC_DNR;
	return true;
}

/* ---------------- NVM commands ---------------- */

static struct req *req_new(struct nvme_ctrl *c, unsigned sqid, const struct nvme_sqe *e, unsigned nsub, unsigned niov)
{
	struct req *r = calloc(1, sizeof(*r) + nsub * sizeof(struct sub) + niov * sizeof(struct iovec));
	if (!r)
		return NULL;
	r->sqid = (uint16_t)sqid;
	r->cid = e->cid;
	r->gen = c->gen;
	r->sq_gen = c->sq[sqid].gen;
	r->nsub = nsub;
	r->iov = (struct iovec *)&r->sub[nsub];
	for (unsigned i = 0; i < nsub; i++)
		r->sub[i].req = r;
	return r;
}

static void submit(struct nvme_ctrl *c, struct req *r)
{
	r->pending = r->nsub;
	for (unsigned i = 0; i < r->nsub; i++) {
		c->inflight++;
		c->be->ops->submit(c->be, &r->sub[i].io);
	}
	c->submitted = true;
}

/* The block range of a read, write or write-zeroes; returns a status. */
static uint16_t lba_range(const struct nvme_ctrl *c, const struct nvme_sqe *e, uint64_t *off, uint64_t *len)
{
	uint64_t slba = (uint64_t)e->cdw11 << 32 | e->cdw10, nlb = (e->cdw12 & 0xffff) + 1ull;
	if (slba >= c->nsze || nlb > c->nsze - slba)
		return SC_LBA_RANGE | SC_DNR;
	*off = slba << c->lbads;
	*len = nlb << c->lbads;
	return SC_OK;
}

/* Dataset Management with the deallocate attribute: one discard per range. */
static uint16_t dsm(struct nvme_ctrl *c, unsigned sqid, const struct nvme_sqe *e, struct req **out)
{
	unsigned nr = (e->cdw10 & 0xff) + 1;
	*out = NULL;
	if (!(e->cdw11 & 4) || !c->be->can_discard)
		return SC_OK; /* only hints: nothing to do */
	struct __attribute__((packed)) range { uint32_t attr, nlb; uint64_t slba; } ranges[MAX_DSM_RANGES];
	struct iovec iov[3];
	int n = prp_map(c->mem, e->prp1, e->prp2, nr * (uint32_t)sizeof(struct range), iov, 3);
	if (n < 0)
		return (uint16_t)-n;
	/* copied once: the guest may change it meanwhile */
	iov_to_buf(iov, (unsigned)n, 0, ranges, nr * sizeof(struct range));
	unsigned used = 0;
	for (unsigned i = 0; i < nr; i++) {
		if (!ranges[i].nlb)
			continue;
		if (ranges[i].slba >= c->nsze || ranges[i].nlb > c->nsze - ranges[i].slba)
			return SC_LBA_RANGE | SC_DNR;
		used++;
	}
	if (!used)
		return SC_OK;
	struct req *r = req_new(c, sqid, e, used, 0);
	if (!r)
		return SC_INTERNAL;
	for (unsigned i = 0, k = 0; i < nr; i++) {
		if (!ranges[i].nlb)
			continue;
		r->sub[k++].io = (struct blk_io){ .op = BLK_DISCARD, .offset = ranges[i].slba << c->lbads,
						  .len = (uint64_t)ranges[i].nlb << c->lbads };
	}
	*out = r;
	return SC_OK;
}

/* Turn an NVM command into a request; returns a status, and *out is the
 * request when the backend has work (else the command is answered now). */
static uint16_t io_command(struct nvme_ctrl *c, unsigned sqid, const struct nvme_sqe *e, struct req **out)
{
	*out = NULL;
	if (e->flags & 0xc3)
		return SC_INVALID_FIELD | SC_DNR;
	if (e->opc == IO_FLUSH ? e->nsid != 1 && e->nsid != 0xffffffff : e->nsid != 1)
		return SC_INVALID_NS | SC_DNR;
	bool writes = e->opc == IO_WRITE || e->opc == IO_WRITE_ZEROES || e->opc == IO_DSM;
	if (writes && c->be->readonly)
		return SC_WRITE_PROTECTED | SC_DNR;
	uint64_t off, len;
	uint16_t st;
	struct req *r;
	switch (e->opc) {
	case IO_FLUSH:
		if (c->be->flush_is_noop)
			return SC_OK;
		if (!(r = req_new(c, sqid, e, 1, 0)))
			return SC_INTERNAL;
		r->sub[0].io.op = BLK_FLUSH;
		break;
	case IO_READ:
	case IO_WRITE:
		if ((st = lba_range(c, e, &off, &len)))
			return st;
		if (len > MAX_XFER)
			return SC_INVALID_FIELD | SC_DNR;
		/* pages touched: one more than whole pages when PRP1 has an offset */
		unsigned niov = (unsigned)(len / PAGE) + 2;
		if (!(r = req_new(c, sqid, e, 1, niov)))
			return SC_INTERNAL;
		int n = prp_map(c->mem, e->prp1, e->prp2, (uint32_t)len, r->iov, niov);
		if (n < 0) {
			free(r);
			return (uint16_t)-n;
		}
		r->sub[0].io = (struct blk_io){ .op = e->opc == IO_READ ? BLK_READ : BLK_WRITE, .offset = off, .len = len,
						.iov = r->iov, .niov = (unsigned)n };
		/* FUA, or no write cache: the data is on disk before the answer */
		r->flush_after = e->opc == IO_WRITE && ((e->cdw12 >> 30 & 1) || !c->vwc) && !c->be->flush_is_noop;
		break;
	case IO_WRITE_ZEROES:
		if ((st = lba_range(c, e, &off, &len)))
			return st;
		if (!c->be->can_discard)
			return SC_INVALID_OPCODE | SC_DNR; /* not offered in ONCS */
		if (!(r = req_new(c, sqid, e, 1, 0)))
			return SC_INTERNAL;
		r->sub[0].io = (struct blk_io){ .op = BLK_WRITE_ZEROES, .unmap = e->cdw12 >> 25 & 1, .offset = off,
						.len = len };
		break;
	case IO_DSM:
		st = dsm(c, sqid, e, &r);
		if (st || !r)
			return st;
		break;
	default: return SC_INVALID_OPCODE | SC_DNR;
	}
	*out = r;
	return SC_OK;
}

static uint16_t errno_status(const struct blk_io *io)
{
	if (io->result == -ENOSPC)
		return SC_CAP_EXCEEDED;
	switch (io->op) {
	case BLK_READ: return SC_READ_ERROR;
	case BLK_FLUSH: return SC_INTERNAL;
	default: return SC_WRITE_FAULT;
	}
}

/* A request is done: answer it, unless its queue or the controller went
 * away meanwhile. */
static void finish(struct nvme_ctrl *c, struct req *r)
{
	struct sq *s = &c->sq[r->sqid];
	if (r->gen == c->gen && s->gen == r->sq_gen && s->valid) {
		post(c, s, r->cid, r->status, 0);
		if (s->deleting && !s->inflight) {
			uint16_t cid = s->delete_cid;
			sq_delete(c, r->sqid);
			post(c, &c->sq[0], cid, SC_OK, 0);
		}
	}
	free(r);
}

static void on_complete(void *opaque, struct blk_io *io)
{
	struct nvme_ctrl *c = opaque;
	pthread_mutex_lock(&c->lock);
	c->inflight--;
	if (io == &c->shutdown_flush.io) {
		if (io->result < 0)
			log_error("nvme %s: flush at shutdown failed: %s", c->p.serial, strerror(-io->result));
		if (c->shutdown_flushing) {
			c->shutdown_flushing = c->shutdown = false;
			c->csts = (c->csts & ~CSTS_SHST_MASK) | CSTS_SHST_DONE;
		}
		pthread_mutex_unlock(&c->lock);
		return;
	}
	struct req *r = ((struct sub *)io)->req;
	if (io->result < 0 && !r->status)
		r->status = errno_status(io);
	if (--r->pending == 0) {
		if (r->flush_after && !r->status) {
			r->flush_after = false; /* submitted after this batch of completions */
			r->next = c->flush_next;
			c->flush_next = r;
		} else {
			finish(c, r);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---------------- the I/O thread's loop ---------------- */

/* Shutdown (CC.SHN): once nothing is in flight, flush, then report done. */
static void shutdown_step(struct nvme_ctrl *c)
{
	if (!c->shutdown || c->shutdown_flushing || c->inflight)
		return;
	if (c->be->flush_is_noop || c->be->readonly) {
		c->shutdown = false;
		c->csts = (c->csts & ~CSTS_SHST_MASK) | CSTS_SHST_DONE;
		return;
	}
	c->shutdown_flushing = true;
	c->shutdown_flush.io = (struct blk_io){ .op = BLK_FLUSH };
	c->inflight++;
	c->be->ops->submit(c->be, &c->shutdown_flush.io);
	c->submitted = true;
}

/* A shadow doorbell's value (I/O queues, once configured), if it is one
 * the queue can take. */
static bool shadow(struct nvme_ctrl *c, unsigned idx, uint16_t size, uint16_t *v)
{
	uint32_t x = __atomic_load_n(&c->dbs[idx], __ATOMIC_ACQUIRE);
	if (x >= size) {
		if (!c->warned_doorbell)
			log_warn("nvme %s: the guest wrote an invalid shadow doorbell (queue %u, value %u); ignored",
				 c->p.serial, idx / 2, x);
		c->warned_doorbell = true;
		return false;
	}
	*v = (uint16_t)x;
	return true;
}

/* With shadow doorbells, the newest tail and head before fetching; then
 * after it, tell the driver where we stopped and look once more (the same
 * dance as a virtqueue's avail_event: without the full fence the driver
 * could miss our index and skip the doorbell we wait for). Returns true if
 * there is more to fetch. */
static bool shadow_sync(struct nvme_ctrl *c, unsigned qid, bool after)
{
	struct sq *s = &c->sq[qid];
	struct cq *q = &c->cq[s->cqid];
	if (!c->dbs || !qid || !s->valid || !q->valid)
		return false;
	if (after) {
		__atomic_store_n(&c->eis[2 * qid], s->tail, __ATOMIC_RELAXED);
		if (!cq_room(q)) /* waiting for the driver to take answers */
			__atomic_store_n(&c->eis[2 * s->cqid + 1], q->head, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	uint16_t old_tail = s->tail, old_head = q->head;
	shadow(c, 2 * qid, s->size, &s->tail);
	shadow(c, 2 * s->cqid + 1, q->size, &q->head);
	return after && (s->tail != old_tail || q->head != old_head);
}

static void fetch_some(struct nvme_ctrl *c, unsigned qid, struct sq *s, struct cq *q)
{
	while (s->valid && !s->deleting && s->head != s->tail && q->valid && cq_room(q)) {
		struct nvme_sqe e;
		memcpy(&e, s->ring + (size_t)s->head * SQE_SIZE, sizeof(e)); /* read once */
		s->head = (uint16_t)((s->head + 1) % s->size);
		s->inflight++;
		q->inflight++;
		uint16_t status;
		if (qid == 0) {
			uint32_t dw0;
			if (admin(c, &e, &status, &dw0))
				post(c, s, e.cid, status, dw0);
			continue;
		}
		struct req *r;
		status = io_command(c, qid, &e, &r);
		if (r)
			submit(c, r);
		else
			post(c, s, e.cid, status, 0);
	}
}

static void fetch(struct nvme_ctrl *c, unsigned qid)
{
	struct sq *s = &c->sq[qid];
	struct cq *q = &c->cq[s->cqid];
	shadow_sync(c, qid, false);
	do
		fetch_some(c, qid, s, q);
	while (shadow_sync(c, qid, true));
}

void nvme_ctrl_process(struct nvme_ctrl *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->csts & CSTS_RDY) {
		for (unsigned i = 0; i <= c->p.max_ioq; i++)
			fetch(c, i);
		shutdown_step(c);
	}
	if (c->submitted) {
		c->submitted = false;
		c->be->ops->kick(c->be);
	}
	raise_irqs(c);
	pthread_mutex_unlock(&c->lock);
}

static void on_batch_done(void *opaque)
{
	struct nvme_ctrl *c = opaque;
	pthread_mutex_lock(&c->lock);
	while (c->flush_next) { /* writes that wait for their flush */
		struct req *r = c->flush_next;
		c->flush_next = r->next;
		r->nsub = 1;
		r->sub[0].io = (struct blk_io){ .op = BLK_FLUSH };
		submit(c, r);
	}
	pthread_mutex_unlock(&c->lock);
	nvme_ctrl_process(c); /* kicks, shutdown, interrupts */
}

unsigned nvme_ctrl_inflight(struct nvme_ctrl *c)
{
	pthread_mutex_lock(&c->lock);
	unsigned n = c->inflight + (c->flush_next != NULL);
	pthread_mutex_unlock(&c->lock);
	return n;
}

struct nvme_ctrl *nvme_ctrl_new(const struct gmem *mem, struct blk_backend *be, const struct nvme_ctrl_params *p,
				const struct nvme_ctrl_ops *ops, void *opaque)
{
	if (!p->max_ioq || p->max_ioq > NVME_MAX_IOQ || p->nvec < 1)
		return NULL;
	struct nvme_ctrl *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->mem = mem;
	c->be = be;
	c->ops = *ops;
	c->opaque = opaque;
	c->p = *p;
	c->lbs = be->logical_block >= 512 ? be->logical_block : 512;
	while ((1u << c->lbads) < c->lbs)
		c->lbads++;
	c->nsze = be->size >> c->lbads;
	c->vwc = true;
	/* CAP: MQES, CQR (contiguous queues), TO 7.5 s, doorbell stride 4,
	 * NVM command set, 4 KiB pages only */
	c->cap = MQES | 1ull << 16 | 15ull << 24 | 1ull << 37;
	be->complete = on_complete;
	be->batch_done = on_batch_done;
	be->opaque = c;
	return c;
}

void nvme_ctrl_free(struct nvme_ctrl *c)
{
	if (!c)
		return;
	while (c->flush_next) {
		struct req *r = c->flush_next;
		c->flush_next = r->next;
		free(r);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}
