/* Unit tests for the NVMe controller model: the guest side is played here
 * (registers, queues in a fake guest memory, doorbells), the disk is a
 * buffer behind a backend whose requests the test completes by hand. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../src/block/backend.h"
#include "../../src/nvme/nvme_ctrl.h"
#include "../../src/vmm/guest_mem.h"
#include "../lib/fake_disk.h"

#define RAM (4u << 20)
#define DISK (4u << 20)
#define ASQ 0x1000
#define ACQ 0x2000
#define IOSQ 0x10000
#define IOCQ 0x20000
#define LIST 0x30000
#define DBS 0x40000
#define EIS 0x41000
#define DATA 0x100000


struct queue { uint64_t gpa; unsigned size, idx; bool phase; };

static uint8_t *ram, *disk;
static struct gmem mem;
static struct nvme_ctrl *c;
static struct blk_backend be;
static struct blk_io *pending[64];
static unsigned npending, irqs, wakes;
static enum blk_op ops_seen[64];
static unsigned nops;
static struct queue asq, acq, iosq, iocq;
static uint16_t next_cid = 1;

static void fake_submit(struct blk_backend *b, struct blk_io *io)
{
	(void)b;
	assert_true(npending < 64);
	pending[npending++] = io;
	if (nops < 64)
		ops_seen[nops++] = io->op;
}
static void fake_kick(struct blk_backend *b) { (void)b; }
static void fake_drain(struct blk_backend *b) { (void)b; }
static void fake_close(struct blk_backend *b) { (void)b; }
static const struct blk_backend_ops fake_ops = { "fake", fake_submit, fake_kick, fake_drain, fake_close };

/* The backend finishes everything it holds, as the I/O thread would. */
static void complete_all(void)
{
	while (npending) {
		unsigned n = npending;
		struct blk_io *batch[64];
		memcpy(batch, pending, n * sizeof(*batch));
		npending = 0;
		for (unsigned i = 0; i < n; i++) {
			struct blk_io *io = batch[i];
			fake_disk_copy(disk, io);
			if (io->op == BLK_DISCARD || io->op == BLK_WRITE_ZEROES)
				memset(disk + io->offset, 0, io->len);
			io->result = 0;
			be.complete(be.opaque, io);
		}
		be.batch_done(be.opaque);
	}
}

static void on_irq(void *o, unsigned v) { (void)o; (void)v; irqs++; }
static void on_wake(void *o) { (void)o; wakes++; }

static void w32(unsigned off, uint32_t v) { nvme_ctrl_mmio(c, off, (uint8_t *)&v, 4, true); }
static uint32_t r32(unsigned off)
{
	uint32_t v = 0;
	nvme_ctrl_mmio(c, off, (uint8_t *)&v, 4, false);
	return v;
}

static void make(bool readonly, bool discard)
{
	memset(ram, 0, RAM);
	memset(disk, 0, DISK);
	be = (struct blk_backend){ .ops = &fake_ops, .size = DISK, .readonly = readonly, .can_discard = discard,
				   .logical_block = 512, .physical_block = 4096 };
	struct nvme_ctrl_params p = { .serial = "TESTSERIAL", .max_ioq = 2, .nvec = 3 };
	memset(p.uuid, 0xab, 16);
	static const struct nvme_ctrl_ops ops = { .irq = on_irq, .wake = on_wake };
	nvme_ctrl_free(c);
	c = nvme_ctrl_new(&mem, &be, &p, &ops, NULL);
	assert_non_null(c);
	npending = nops = irqs = wakes = 0;
}

static void enable(void)
{
	asq = (struct queue){ ASQ, 32, 0, true };
	acq = (struct queue){ ACQ, 32, 0, true };
	memset(ram + ACQ, 0, 32 * 16);
	w32(0x24, 31u << 16 | 31); /* AQA */
	w32(0x28, ASQ);
	w32(0x2c, 0);
	w32(0x30, ACQ);
	w32(0x34, 0);
	w32(0x14, 1 | 6u << 16 | 4u << 20); /* CC: EN, 64-byte SQEs, 16-byte CQEs */
	assert_int_equal(r32(0x1c) & 3, 1);  /* RDY, no fatal status */
}

/* Queue a command on sq (doorbell db); nothing is processed. */
static void queue_cmd(struct queue *sq, unsigned db, struct nvme_sqe *e)
{
	e->cid = next_cid++;
	memcpy(ram + sq->gpa + sq->idx * 64, e, 64);
	sq->idx = (sq->idx + 1) % sq->size;
	w32(db, sq->idx);
}

/* The next completion on cq, if its phase says it is new: status (with
 * DNR), or -1 when there is none. */
static int reap(struct queue *cq, unsigned db, uint32_t *dw0, uint16_t *cid)
{
	uint8_t *e = ram + cq->gpa + cq->idx * 16;
	uint32_t dw3;
	memcpy(&dw3, e + 12, 4);
	if (((dw3 >> 16) & 1) != cq->phase)
		return -1;
	if (dw0)
		memcpy(dw0, e, 4);
	if (cid)
		*cid = dw3 & 0xffff;
	if (++cq->idx == cq->size) {
		cq->idx = 0;
		cq->phase = !cq->phase;
	}
	if (db) /* 0: the driver uses a shadow doorbell */
		w32(db, cq->idx);
	return (int)(dw3 >> 17);
}

static int admin(struct nvme_sqe e, uint32_t *dw0)
{
	queue_cmd(&asq, 0x1000, &e);
	nvme_ctrl_process(c);
	return reap(&acq, 0x1004, dw0, NULL);
}

static int io(struct nvme_sqe e)
{
	queue_cmd(&iosq, 0x1008, &e);
	nvme_ctrl_process(c);
	complete_all();
	return reap(&iocq, 0x100c, NULL, NULL);
}

static void io_queues(unsigned cq_size, unsigned sq_size)
{
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x05, .prp1 = IOCQ, .cdw10 = (cq_size - 1) << 16 | 1,
					     .cdw11 = 1u << 16 | 3 }, NULL), 0);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x01, .prp1 = IOSQ, .cdw10 = (sq_size - 1) << 16 | 1,
					     .cdw11 = 1u << 16 | 1 }, NULL), 0);
	iosq = (struct queue){ IOSQ, sq_size, 0, true };
	iocq = (struct queue){ IOCQ, cq_size, 0, true };
}

static struct nvme_sqe rw(uint8_t opc, uint64_t slba, unsigned nblocks, uint64_t prp1, uint64_t prp2)
{
	return (struct nvme_sqe){ .opc = opc, .nsid = 1, .prp1 = prp1, .prp2 = prp2, .cdw10 = (uint32_t)slba,
			     .cdw11 = (uint32_t)(slba >> 32), .cdw12 = nblocks - 1 };
}

#define DNR 0x4000

static void enable_and_identify(void **state)
{
	(void)state;
	make(false, true);
	uint64_t cap = r32(0) | (uint64_t)r32(4) << 32;
	assert_int_equal(cap & 0xffff, 1023);           /* MQES */
	assert_true(cap >> 16 & 1);                      /* contiguous queues */
	assert_true(cap >> 37 & 1);                      /* NVM command set */
	assert_int_equal(r32(8), 0x00010400);
	enable();
	uint8_t *id = ram + DATA;
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .prp1 = DATA, .cdw10 = 1 }, NULL), 0);
	assert_int_equal(id[0] | id[1] << 8, 0x1af4);
	assert_memory_equal(id + 4, "TESTSERIAL          ", 20);
	assert_int_equal(id[77], 8);                     /* MDTS: 1 MiB */
	assert_int_equal(id[512], 0x66);
	assert_int_equal(id[516], 1);                    /* one namespace */
	assert_int_equal(id[520] & 0x0c, 0x0c);          /* DSM and WRITE ZEROES */
	assert_non_null(strstr((char *)id + 768, "TESTSERIAL"));
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .nsid = 1, .prp1 = DATA, .cdw10 = 0 }, NULL), 0);
	uint64_t nsze;
	memcpy(&nsze, id, 8);
	assert_int_equal(nsze, DISK / 512);
	assert_int_equal(id[130], 9);                    /* LBADS: 512 bytes */
	assert_int_equal(id[64], 7);                     /* NPWG: 4 KiB physical blocks */
	assert_int_equal(id[99], 0);                     /* not write protected */
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .nsid = 0, .prp1 = DATA, .cdw10 = 2 }, NULL), 0);
	assert_int_equal(id[0], 1);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .nsid = 1, .prp1 = DATA, .cdw10 = 3 }, NULL), 0);
	assert_int_equal(id[0], 3);
	assert_int_equal(id[4], 0xab);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .nsid = 2, .prp1 = DATA, .cdw10 = 0 }, NULL), 0x00b | DNR);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .prp1 = DATA, .cdw10 = 0x55 }, NULL), 0x002 | DNR);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x7f }, NULL), 0x001 | DNR);
	/* identify data into memory the guest does not have */
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .prp1 = RAM - 0x800, .prp2 = RAM, .cdw10 = 1 }, NULL), 0x004);
	uint32_t dw0;
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x09, .cdw10 = 7, .cdw11 = 15u << 16 | 15 }, &dw0), 0);
	assert_int_equal(dw0, 1u << 16 | 1);             /* two queue pairs granted */
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x02, .prp1 = DATA, .cdw10 = 127u << 16 | 2 }, NULL), 0);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x02, .prp1 = DATA, .cdw10 = 127u << 16 | 0x42 }, NULL),
			 0x109 | DNR);
	assert_true(irqs > 0);
}

static void bad_enable_is_fatal(void **state)
{
	(void)state;
	make(false, false);
	w32(0x24, 31u << 16 | 31);
	w32(0x28, RAM); /* outside guest RAM */
	w32(0x30, ACQ);
	w32(0x14, 1 | 6u << 16 | 4u << 20);
	assert_int_equal(r32(0x1c) & 3, 2); /* CFS, not ready */
	w32(0x14, 0);
	assert_int_equal(r32(0x1c), 0);
	w32(0x28, ASQ);
	w32(0x14, 1 | 1u << 7); /* 8 KiB pages */
	assert_int_equal(r32(0x1c) & 3, 2);
	w32(0x14, 0);
	enable();
}

static void read_write_through_prp_lists(void **state)
{
	(void)state;
	make(false, true);
	enable();
	io_queues(16, 16);
	/* 64 KiB from 16 scattered pages: PRP1 and a list in PRP2 */
	uint64_t *list = (uint64_t *)(ram + LIST);
	for (unsigned i = 0; i < 16; i++) {
		memset(ram + DATA + i * 0x2000, 'a' + i, 4096);
		if (i)
			list[i - 1] = DATA + i * 0x2000;
	}
	assert_int_equal(io(rw(0x01, 8, 128, DATA, LIST)), 0);
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(disk[4096 + i * 4096 + 17], 'a' + i);
	/* read 8 KiB back into a buffer that starts 0x200 into a page: three
	 * pages, so PRP2 is a list again */
	list[0] = DATA + 0x40000;
	list[1] = DATA + 0x50000;
	assert_int_equal(io(rw(0x02, 8, 16, DATA + 0x30200, LIST)), 0);
	assert_int_equal(ram[DATA + 0x30200], 'a');
	assert_int_equal(ram[DATA + 0x30fff], 'a');
	assert_int_equal(ram[DATA + 0x40000], 'a');
	assert_int_equal(ram[DATA + 0x401ff], 'a');
	assert_int_equal(ram[DATA + 0x40200], 'b');
	assert_int_equal(ram[DATA + 0x50000], 'b');
	assert_int_equal(ram[DATA + 0x501ff], 'b');
	assert_int_equal(ram[DATA + 0x50200], 0);
	/* a flush reaches the backend */
	nops = 0;
	assert_int_equal(io((struct nvme_sqe){ .opc = 0x00, .nsid = 1 }), 0);
	assert_int_equal(nops, 1);
	assert_int_equal(ops_seen[0], BLK_FLUSH);
}

static void hostile_commands_fail_with_their_status(void **state)
{
	(void)state;
	make(false, true);
	enable();
	io_queues(16, 16);
	assert_int_equal(io(rw(0x02, 0, 8, RAM, 0)), 0x004);                      /* buffer outside RAM */
	assert_int_equal(io(rw(0x02, 0, 8, DATA + 1, 0)), 0x013 | DNR);            /* not dword aligned */
	assert_int_equal(io(rw(0x02, 0, 16, DATA, DATA + 0x1100)), 0x013 | DNR);   /* PRP2 not a page */
	assert_int_equal(io(rw(0x02, DISK / 512 - 1, 2, DATA, 0)), 0x080 | DNR);   /* past the end */
	assert_int_equal(io(rw(0x02, ~0ull, 1, DATA, 0)), 0x080 | DNR);            /* overflowing */
	assert_int_equal(io(rw(0x02, 0, 4096, DATA, LIST)), 0x002 | DNR);          /* over MDTS */
	struct nvme_sqe e = rw(0x02, 0, 8, DATA, 0);
	e.nsid = 2;
	assert_int_equal(io(e), 0x00b | DNR);
	assert_int_equal(io((struct nvme_sqe){ .opc = 0x7e, .nsid = 1 }), 0x001 | DNR);
	e = rw(0x02, 0, 8, DATA, 0);
	e.flags = 0x40; /* SGL */
	assert_int_equal(io(e), 0x002 | DNR);
	uint64_t *list = (uint64_t *)(ram + LIST);
	list[0] = DATA + 0x1000;
	list[1] = DATA + 0x2004; /* a list entry inside a page */
	assert_int_equal(io(rw(0x02, 0, 24, DATA, LIST)), 0x013 | DNR);
	list[1] = RAM; /* a list entry outside RAM */
	assert_int_equal(io(rw(0x02, 0, 24, DATA, LIST)), 0x004);
	assert_int_equal(io(rw(0x02, 0, 24, DATA, RAM - 8)), 0x004);              /* the list itself */
	assert_int_equal(npending, 0);
	/* queue management */
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x01, .prp1 = IOSQ + 0x8000, .cdw10 = 15u << 16 | 2,
					     .cdw11 = 9u << 16 | 1 }, NULL), 0x100 | DNR);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x05, .prp1 = IOCQ + 0x8000, .cdw10 = 15u << 16 | 2,
					     .cdw11 = 3u << 16 | 3 }, NULL), 0x108 | DNR);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x05, .prp1 = IOCQ + 0x8000, .cdw10 = 15u << 16 | 3,
					     .cdw11 = 3 }, NULL), 0x101 | DNR);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x05, .prp1 = IOCQ + 0x8100, .cdw10 = 15u << 16 | 2,
					     .cdw11 = 3 }, NULL), 0x002 | DNR);              /* not page aligned */
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x04, .cdw10 = 1 }, NULL), 0x10c | DNR); /* an SQ uses it */
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x00, .cdw10 = 0 }, NULL), 0x101 | DNR); /* the admin SQ */
	/* a doorbell past the queue's size is ignored */
	w32(0x1008, 16);
	nvme_ctrl_process(c);
	assert_int_equal(npending, 0);
	assert_int_equal(io(rw(0x02, 0, 8, DATA, 0)), 0);
}

static void the_completion_queue_never_overflows(void **state)
{
	(void)state;
	make(false, true);
	enable();
	io_queues(2, 8); /* room for one answer at a time */
	for (unsigned i = 0; i < 4; i++)
		queue_cmd(&iosq, 0x1008, &(struct nvme_sqe){ .opc = 0x02, .nsid = 1, .prp1 = DATA, .cdw12 = 7 });
	nvme_ctrl_process(c);
	assert_int_equal(npending, 1);
	complete_all();
	nvme_ctrl_process(c);
	assert_int_equal(npending, 0); /* the answer is not consumed yet */
	assert_int_equal(reap(&iocq, 0x100c, NULL, NULL), 0);
	for (unsigned i = 0; i < 3; i++) {
		nvme_ctrl_process(c);
		assert_int_equal(npending, 1);
		complete_all();
		assert_int_equal(reap(&iocq, 0x100c, NULL, NULL), 0);
	}
	assert_int_equal(reap(&iocq, 0x100c, NULL, NULL), -1);
}

static void fua_and_write_cache_off_flush_before_the_answer(void **state)
{
	(void)state;
	make(false, true);
	enable();
	io_queues(16, 16);
	struct nvme_sqe e = rw(0x01, 0, 8, DATA, 0);
	e.cdw12 |= 1u << 30; /* FUA */
	queue_cmd(&iosq, 0x1008, &e);
	nvme_ctrl_process(c);
	assert_int_equal(npending, 1);
	pending[0]->result = 0;
	be.complete(be.opaque, pending[0]);
	npending = 0;
	be.batch_done(be.opaque);
	assert_int_equal(reap(&iocq, 0x100c, NULL, NULL), -1); /* not before the flush */
	assert_int_equal(npending, 1);
	assert_int_equal(pending[0]->op, BLK_FLUSH);
	complete_all();
	assert_int_equal(reap(&iocq, 0x100c, NULL, NULL), 0);
	/* with the volatile write cache turned off every write flushes */
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x09, .cdw10 = 6, .cdw11 = 0 }, NULL), 0);
	nops = 0;
	assert_int_equal(io(rw(0x01, 0, 8, DATA, 0)), 0);
	assert_int_equal(nops, 2);
	assert_int_equal(ops_seen[1], BLK_FLUSH);
}

static void discard_and_write_zeroes(void **state)
{
	(void)state;
	make(false, true);
	enable();
	io_queues(16, 16);
	memset(disk, 0x5a, DISK);
	struct { uint32_t attr, nlb; uint64_t slba; } ranges[2] = { { 0, 8, 0 }, { 0, 16, 64 } };
	memcpy(ram + DATA, ranges, sizeof(ranges));
	nops = 0;
	assert_int_equal(io((struct nvme_sqe){ .opc = 0x09, .nsid = 1, .prp1 = DATA, .cdw10 = 1, .cdw11 = 4 }), 0);
	assert_int_equal(nops, 2);
	assert_int_equal(disk[0], 0);
	assert_int_equal(disk[8 * 512], 0x5a);
	assert_int_equal(disk[64 * 512], 0);
	ranges[1].slba = DISK / 512; /* past the end: nothing is discarded */
	memcpy(ram + DATA, ranges, sizeof(ranges));
	nops = 0;
	assert_int_equal(io((struct nvme_sqe){ .opc = 0x09, .nsid = 1, .prp1 = DATA, .cdw10 = 1, .cdw11 = 4 }), 0x080 | DNR);
	assert_int_equal(nops, 0);
	struct nvme_sqe e = rw(0x08, 128, 8, 0, 0);
	e.cdw12 |= 1u << 25; /* deallocate */
	nops = 0;
	assert_int_equal(io(e), 0);
	assert_int_equal(ops_seen[0], BLK_WRITE_ZEROES);
	assert_int_equal(disk[128 * 512], 0);
}

static void readonly_namespace(void **state)
{
	(void)state;
	make(true, false);
	enable();
	io_queues(16, 16);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .nsid = 1, .prp1 = DATA, .cdw10 = 0 }, NULL), 0);
	assert_int_equal(ram[DATA + 99], 1); /* write protected */
	assert_int_equal(io(rw(0x01, 0, 8, DATA, 0)), 0x020 | DNR);
	assert_int_equal(io(rw(0x08, 0, 8, 0, 0)), 0x020 | DNR);
	assert_int_equal(io(rw(0x02, 0, 8, DATA, 0)), 0);
	assert_int_equal(npending, 0);
}

static void shutdown_flushes_first(void **state)
{
	(void)state;
	make(false, true);
	enable();
	io_queues(16, 16);
	queue_cmd(&iosq, 0x1008, &(struct nvme_sqe){ .opc = 0x01, .nsid = 1, .prp1 = DATA, .cdw12 = 7 });
	nvme_ctrl_process(c);
	assert_int_equal(npending, 1);
	w32(0x14, r32(0x14) | 1u << 14); /* SHN: normal */
	assert_int_equal(r32(0x1c) >> 2 & 3, 1); /* shutting down */
	nvme_ctrl_process(c);
	assert_int_equal(npending, 1); /* the write first */
	nops = 0;
	complete_all();
	assert_int_equal(nops, 1);
	assert_int_equal(ops_seen[0], BLK_FLUSH);
	assert_int_equal(r32(0x1c) >> 2 & 3, 2); /* done */
}

static void deleting_a_busy_queue_answers_its_commands_first(void **state)
{
	(void)state;
	make(false, true);
	enable();
	io_queues(16, 16);
	queue_cmd(&iosq, 0x1008, &(struct nvme_sqe){ .opc = 0x02, .nsid = 1, .prp1 = DATA, .cdw12 = 7 });
	nvme_ctrl_process(c);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x00, .cdw10 = 1 }, NULL), -1); /* waits */
	complete_all();
	assert_int_equal(reap(&iocq, 0x100c, NULL, NULL), 0);
	assert_int_equal(reap(&acq, 0x1004, NULL, NULL), 0);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x04, .cdw10 = 1 }, NULL), 0);
	/* a controller reset while a read is out: its late answer is dropped */
	io_queues(16, 16);
	queue_cmd(&iosq, 0x1008, &(struct nvme_sqe){ .opc = 0x02, .nsid = 1, .prp1 = DATA, .cdw12 = 7 });
	nvme_ctrl_process(c);
	assert_int_equal(nvme_ctrl_inflight(c), 1);
	w32(0x14, 0);
	assert_int_equal(r32(0x1c), 0);
	uint8_t before[16];
	memcpy(before, ram + IOCQ, 16);
	complete_all();
	assert_memory_equal(before, ram + IOCQ, 16);
	assert_int_equal(nvme_ctrl_inflight(c), 0);
}

static void shadow_doorbells_replace_mmio_ones(void **state)
{
	(void)state;
	make(false, true);
	enable();
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x06, .prp1 = DATA, .cdw10 = 1 }, NULL), 0);
	assert_true(ram[DATA + 256] == 0 && ram[DATA + 257] == 1); /* OACS: doorbell buffer config */
	io_queues(2, 8);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x7c, .prp1 = DBS + 8, .prp2 = EIS }, NULL), 0x002 | DNR);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x7c, .prp1 = DBS, .prp2 = RAM }, NULL), 0x002 | DNR);
	assert_int_equal(admin((struct nvme_sqe){ .opc = 0x7c, .prp1 = DBS, .prp2 = EIS }, NULL), 0);
	uint32_t *dbs = (uint32_t *)(ram + DBS), *eis = (uint32_t *)(ram + EIS);
	/* three reads queued through the shadow tail alone, no MMIO doorbell */
	for (unsigned i = 0; i < 3; i++)
		memcpy(ram + IOSQ + i * 64, &(struct nvme_sqe){ .opc = 0x02, .nsid = 1, .cid = (uint16_t)(100 + i),
								  .prp1 = DATA, .cdw12 = 7 }, 64);
	dbs[2] = 3;
	nvme_ctrl_process(c);
	assert_int_equal(npending, 1); /* the two-entry completion queue has room for one */
	complete_all();
	assert_int_equal(eis[2], 3);  /* the tail it saw */
	assert_int_equal(eis[3], 0);  /* blocked: wants to hear when the head moves */
	uint16_t cid;
	assert_int_equal(reap(&iocq, 0, NULL, &cid), 0);
	assert_int_equal(cid, 100);
	dbs[3] = 1; /* the head moves in the shadow only */
	nvme_ctrl_process(c);
	assert_int_equal(npending, 1);
	complete_all();
	assert_int_equal(eis[3], 1);
	/* an impossible shadow value is ignored */
	dbs[2] = 99;
	nvme_ctrl_process(c);
	assert_int_equal(npending, 0);
	/* a controller reset forgets the shadow doorbells */
	w32(0x14, 0);
	memset(ram + IOCQ, 0, 16 * 16);
	enable();
	io_queues(16, 16);
	dbs[2] = 7; /* stale: the MMIO doorbell counts again */
	assert_int_equal(io(rw(0x02, 0, 8, DATA, 0)), 0);
}

int main(void)
{
	ram = aligned_alloc(4096, RAM);
	disk = malloc(DISK);
	gmem_add(&mem, 0, RAM, ram);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(enable_and_identify),
		cmocka_unit_test(bad_enable_is_fatal),
		cmocka_unit_test(read_write_through_prp_lists),
		cmocka_unit_test(hostile_commands_fail_with_their_status),
		cmocka_unit_test(the_completion_queue_never_overflows),
		cmocka_unit_test(fua_and_write_cache_off_flush_before_the_answer),
		cmocka_unit_test(discard_and_write_zeroes),
		cmocka_unit_test(readonly_namespace),
		cmocka_unit_test(shutdown_flushes_first),
		cmocka_unit_test(deleting_a_busy_queue_answers_its_commands_first),
		cmocka_unit_test(shadow_doorbells_replace_mmio_ones),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	nvme_ctrl_free(c);
	free(ram);
	free(disk);
	return r;
}
