/* CFI parallel flash (Intel command set, 8-bit wide), the way OVMF expects
 * its code and variable store: reads come straight from memory (a read-only
 * KVM memory slot) while the chip is in read-array mode; writes always trap
 * and are flash commands. In any other mode (status, ID, CFI query) reads
 * must trap too, so the device asks its owner to unmap the slot
 * (set_direct(false)) and maps it back when the guest returns to read-array.
 *
 * Program and erase go to the backing file at once (pwrite); it is synced
 * when the guest ends a run of writes by going back to read-array. The
 * device logic has no KVM in it: tests/unit and tests/fuzz drive it. */
#ifndef KVKIT_PFLASH_H
#define KVKIT_PFLASH_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum pflash_mode { PFLASH_ARRAY, PFLASH_STATUS, PFLASH_ID, PFLASH_CFI };

struct pflash {
	pthread_mutex_t lock;
	uint8_t *mem;     /* the whole chip, what read-array shows */
	uint64_t size;
	uint32_t block;   /* erase block */
	int fd;           /* backing file; -1: writes never reach a file */
	bool readonly;    /* the code image: commands are ignored */
	const char *name; /* for log lines */
	uint8_t cmd;      /* 0: ready for a command; 0x40 or 0x20: mid-sequence */
	uint8_t status;
	enum pflash_mode mode;
	bool dirty;       /* written since the last sync */
	bool io_error;    /* a write to the file failed (logged once) */
	/* unmap (false) or map back (true) the direct-read slot; may be NULL */
	void (*set_direct)(struct pflash *f, bool on);
	void *opaque;
};

/* mem must hold size bytes; block divides size. */
void pflash_init(struct pflash *f, const char *name, uint8_t *mem, uint64_t size, uint32_t block, int fd,
		 bool readonly);
/* bus handler: off within the chip */
void pflash_access(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write);
/* Sync pending writes (at exit). */
void pflash_flush(struct pflash *f);

#endif
