/* libFuzzer harness for the NVMe controller as a hostile guest drives it:
 * register writes, doorbells, bytes written anywhere in guest memory
 * (queue entries, PRP lists, DSM ranges), processing, and the backend
 * finishing its requests (or failing them). The controller starts enabled,
 * with its admin queues at ASQ/ACQ, so inputs reach the commands quickly.
 * Records: a kind byte, then its operands (see the switch). Checked: no
 * crash or out-of-bounds access (ASan, UBSan), every buffer handed to the
 * backend lies inside guest memory, and a read or write's buffers add up
 * to its length. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/block/backend.h"
#include "../../src/nvme/nvme_ctrl.h"
#include "../../src/vmm/guest_mem.h"
#include "../lib/fake_disk.h"

#define RAM (256u << 10)
#define DISK (64u << 10)
#define ASQ 0x1000
#define ACQ 0x2000

static uint8_t *ram, *disk;
static struct gmem mem;
static struct blk_backend be;
static struct blk_io *pending[4096];
static unsigned npending;

static void fake_submit(struct blk_backend *b, struct blk_io *io)
{
	(void)b;
	if (npending >= sizeof(pending) / sizeof(pending[0]))
		abort(); /* more requests out than any queue could hold */
	uint64_t sum = 0;
	for (unsigned i = 0; i < io->niov; i++) {
		uint8_t *p = io->iov[i].iov_base;
		if (p < ram || p + io->iov[i].iov_len > ram + RAM || !io->iov[i].iov_len)
			abort(); /* a buffer outside guest memory */
		sum += io->iov[i].iov_len;
	}
	if ((io->op == BLK_READ || io->op == BLK_WRITE) && sum != io->len)
		abort();
	if (io->op != BLK_FLUSH && (io->offset > DISK || io->len > DISK - io->offset))
		abort(); /* past the end of the disk */
	pending[npending++] = io;
}
static void fake_kick(struct blk_backend *b) { (void)b; }
static void fake_drain(struct blk_backend *b) { (void)b; }
static void fake_close(struct blk_backend *b) { (void)b; }
static const struct blk_backend_ops fake_ops = { "fake", fake_submit, fake_kick, fake_drain, fake_close };

static void finish_some(unsigned n, int result)
{
	if (n > npending)
		n = npending;
	for (unsigned i = 0; i < n; i++) {
		struct blk_io *io = pending[--npending];
		fake_disk_copy(disk, io);
		io->result = result;
		be.complete(be.opaque, io);
	}
	be.batch_done(be.opaque);
}

static void on_irq(void *o, unsigned v) { (void)o; if (v >= 3) abort(); }
static void on_wake(void *o) { (void)o; }

static void w32(struct nvme_ctrl *c, unsigned off, uint32_t v) { nvme_ctrl_mmio(c, off, (uint8_t *)&v, 4, true); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ram) {
		ram = aligned_alloc(4096, RAM);
		disk = calloc(1, DISK);
		gmem_add(&mem, 0, RAM, ram);
	}
	memset(ram, 0, RAM);
	npending = 0;
	be = (struct blk_backend){ .ops = &fake_ops, .size = DISK, .can_discard = size & 1,
				   .readonly = (size & 6) == 6, .logical_block = size & 8 ? 4096 : 512,
				   .physical_block = 4096 };
	struct nvme_ctrl_params p = { .serial = "FUZZ", .max_ioq = 2, .nvec = 3 };
	static const struct nvme_ctrl_ops ops = { .irq = on_irq, .wake = on_wake };
	struct nvme_ctrl *c = nvme_ctrl_new(&mem, &be, &p, &ops, NULL);
	if (!c)
		abort();
	w32(c, 0x24, 15u << 16 | 15);
	w32(c, 0x28, ASQ);
	w32(c, 0x30, ACQ);
	w32(c, 0x14, 1 | 6u << 16 | 4u << 20);

	size_t i = 0;
#define NEED(n) if (i + (n) > size) goto out
	while (i < size) {
		uint8_t kind = data[i++];
		uint32_t v = 0;
		switch (kind % 7) {
		case 0: /* register write: offset/4, value */
			NEED(5);
			memcpy(&v, data + i + 1, 4);
			w32(c, data[i] * 4u % 0x40, v);
			i += 5;
			break;
		case 1: { /* register or doorbell read, any width */
			NEED(3);
			uint8_t buf[8];
			unsigned off = (data[i] | data[i + 1] << 8) % 0x1100, len = 1u << (data[i + 2] % 4);
			nvme_ctrl_mmio(c, off, buf, len, false);
			i += 3;
			break;
		}
		case 2: /* doorbell: index, value */
			NEED(3);
			w32(c, 0x1000 + (data[i] % 8) * 4u, data[i + 1] | (uint32_t)data[i + 2] << 8);
			i += 3;
			break;
		case 3: { /* guest memory write: address/8 (16 bits), length, bytes */
			NEED(3);
			uint32_t addr = (uint32_t)(data[i] | data[i + 1] << 8) * 8 % RAM;
			size_t len = data[i + 2];
			i += 3;
			if (len > size - i)
				len = size - i;
			if (len > RAM - addr)
				len = RAM - addr;
			memcpy(ram + addr, data + i, len);
			i += len;
			break;
		}
		case 4: nvme_ctrl_process(c); break;
		case 5: /* the backend finishes some requests, maybe with an error */
			NEED(1);
			finish_some(data[i] & 0x7f, data[i] & 0x80 ? -5 : 0);
			i++;
			break;
		case 6: { /* an odd-width register write */
			NEED(2);
			uint8_t buf[2] = { data[i + 1], 0 };
			nvme_ctrl_mmio(c, data[i] % 0x40, buf, 1 + (kind & 1), true);
			i += 2;
			break;
		}
		}
	}
out:
	while (npending || nvme_ctrl_inflight(c))
		finish_some(npending ? npending : 1, 0);
	nvme_ctrl_free(c);
	return 0;
}
