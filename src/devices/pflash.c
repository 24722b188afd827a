/* CFI flash, Intel command set; see pflash.h. The command values are the
 * ones OVMF's QemuFlashFvbServicesRuntimeDxe sends (and QEMU's pflash_cfi01
 * answers): program 0x10/0x40, erase 0x20+0xd0, clear status 0x50, read
 * status 0x70, read array 0xff, plus read ID 0x90 and CFI query 0x98. */
#define _GNU_SOURCE
#include "pflash.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "../util/log.h"

#define ST_READY 0x80
#define ST_ERASE_ERR 0x20
#define ST_PROGRAM_ERR 0x10

void pflash_init(struct pflash *f, const char *name, uint8_t *mem, uint64_t size, uint32_t block, int fd,
		 bool readonly)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->name = name;
	f->mem = mem;
	f->size = size;
	f->block = block;
	f->fd = fd;
	f->readonly = readonly;
	f->status = ST_READY;
	f->mode = PFLASH_ARRAY;
}

static void set_mode(struct pflash *f, enum pflash_mode m)
{
	if ((f->mode == PFLASH_ARRAY) != (m == PFLASH_ARRAY) && f->set_direct)
		f->set_direct(f, m == PFLASH_ARRAY);
	f->mode = m;
}

static void sync_locked(struct pflash *f)
{
	if (f->dirty && f->fd >= 0 && fdatasync(f->fd) < 0 && !f->io_error) {
		f->io_error = true;
		log_error("%s: cannot sync the variable store: %m; later changes may be lost", f->name);
	}
	f->dirty = false;
}

/* Write mem[off, off+len) through to the file. */
static bool persist(struct pflash *f, uint64_t off, uint64_t len)
{
	f->dirty = true;
	if (f->fd < 0)
		return true;
	ssize_t n = pwrite(f->fd, f->mem + off, len, (off_t)off);
	if (n == (ssize_t)len)
		return true;
	if (!f->io_error) {
		f->io_error = true;
		log_error("%s: cannot write the variable store: %s; the guest's change is not saved", f->name,
			  n < 0 ? strerror(errno) : "short write");
	}
	return false;
}

static unsigned log2_ceil(uint64_t v)
{
	unsigned n = 0;
	while ((1ULL << n) < v && n < 63)
		n++;
	return n;
}

/* The CFI query table, byte-wide device (one erase block region). */
static uint8_t cfi_byte(const struct pflash *f, uint64_t off)
{
	uint64_t blocks = f->size / f->block;
	switch (off) {
	case 0x10: return 'Q';
	case 0x11: return 'R';
	case 0x12: return 'Y';
	case 0x13: return 0x01; /* Intel/Sharp extended command set */
	case 0x15: return 0x31; /* extended table (absent; reads 0) */
	case 0x1b: return 0x45; /* Vcc 4.5 V .. 5.5 V */
	case 0x1c: return 0x55;
	case 0x1f: return 0x07; /* typical byte program 2^7 us */
	case 0x21: return 0x0a; /* typical block erase 2^10 ms */
	case 0x23: return 0x04;
	case 0x25: return 0x04;
	case 0x27: return (uint8_t)log2_ceil(f->size);
	case 0x2c: return 1;
	case 0x2d: return (uint8_t)((blocks - 1) & 0xff);
	case 0x2e: return (uint8_t)((blocks - 1) >> 8);
	case 0x2f: return (uint8_t)((f->block >> 8) & 0xff);
	case 0x30: return (uint8_t)(f->block >> 16);
	default: return 0;
	}
}

static uint8_t read_byte(const struct pflash *f, uint64_t off)
{
	switch (f->mode) {
	case PFLASH_ARRAY: return f->mem[off];
	case PFLASH_STATUS: return f->status;
	case PFLASH_ID: return (off & 0xff) == 0 ? 0x89 : (off & 0xff) == 1 ? 0x18 : 0; /* Intel, 28F128J3 */
	case PFLASH_CFI: return cfi_byte(f, off & 0xff);
	}
	return 0xff;
}

static void command(struct pflash *f, uint64_t off, uint8_t cmd)
{
	switch (cmd) {
	case 0x00: case 0xf0: case 0xff:
		set_mode(f, PFLASH_ARRAY);
		sync_locked(f);
		break;
	case 0x10: case 0x40: /* program: the next write is the data */
	case 0x20:            /* block erase: the next write is the confirm */
		f->cmd = cmd == 0x20 ? 0x20 : 0x40;
		set_mode(f, PFLASH_STATUS);
		break;
	case 0x50:
		f->status = 0;
		set_mode(f, PFLASH_ARRAY);
		break;
	case 0x70: set_mode(f, PFLASH_STATUS); break;
	case 0x90: set_mode(f, PFLASH_ID); break;
	case 0x98: set_mode(f, PFLASH_CFI); break;
	default:
		log_debug("%s: unsupported flash command 0x%02x at 0x%llx", f->name, cmd, (unsigned long long)off);
		f->status |= ST_PROGRAM_ERR | ST_ERASE_ERR; /* command sequence error */
		set_mode(f, PFLASH_ARRAY);
		break;
	}
}

static void write_locked(struct pflash *f, uint64_t off, const uint8_t *data, unsigned len)
{
	if (f->cmd == 0x40) { /* program: the data lands as written (as QEMU's flash does) */
		f->cmd = 0;
		memcpy(f->mem + off, data, len);
		if (!persist(f, off, len))
			f->status |= ST_PROGRAM_ERR;
		f->status |= ST_READY;
		return;
	}
	if (f->cmd == 0x20) {
		f->cmd = 0;
		if (data[0] != 0xd0) {
			f->status |= ST_PROGRAM_ERR | ST_ERASE_ERR;
			set_mode(f, PFLASH_ARRAY);
			return;
		}
		uint64_t start = off - off % f->block;
		memset(f->mem + start, 0xff, f->block);
		if (!persist(f, start, f->block))
			f->status |= ST_ERASE_ERR;
		f->status |= ST_READY;
		return;
	}
	command(f, off, data[0]);
}

void pflash_access(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct pflash *f = opaque;
	if (len == 0 || len > 8 || off >= f->size || len > f->size - off) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&f->lock);
	if (!is_write) {
		for (unsigned i = 0; i < len; i++)
			data[i] = read_byte(f, off + i);
	} else if (f->readonly) {
		log_debug("%s: write to read-only flash at 0x%llx ignored", f->name, (unsigned long long)off);
	} else {
		write_locked(f, off, data, len);
	}
	pthread_mutex_unlock(&f->lock);
}

void pflash_flush(struct pflash *f)
{
	pthread_mutex_lock(&f->lock);
	sync_locked(f);
	pthread_mutex_unlock(&f->lock);
}
