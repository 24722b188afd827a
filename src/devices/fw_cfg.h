/* QEMU's firmware configuration interface (docs/specs/fw_cfg.txt in QEMU),
 * the x86 port I/O flavour OVMF reads: a 16-bit selector at port 0x510 and
 * a byte-wide data port at 0x511. Items are fixed keys (signature, CPU
 * count, ...) and named files listed in the file directory (key 0x19):
 * the e820 map, the ACPI tables and the loader script that links them.
 * No DMA interface: OVMF falls back to `rep insb`, which KVM batches. */
#ifndef KVKIT_FW_CFG_H
#define KVKIT_FW_CFG_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define FW_CFG_PORT_SEL 0x510
#define FW_CFG_PORT_DATA 0x511

#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID 0x01
#define FW_CFG_NB_CPUS 0x05
#define FW_CFG_MAX_CPUS 0x0f
#define FW_CFG_FILE_DIR 0x19
#define FW_CFG_FILE_FIRST 0x20
#define FW_CFG_MAX_ITEMS 32
#define FW_CFG_NAME_MAX 56

struct fw_cfg_item {
	uint16_t key;
	char name[FW_CFG_NAME_MAX]; /* "" for fixed keys */
	uint8_t *data;
	uint32_t len;
};

struct fw_cfg {
	pthread_mutex_t lock;
	struct fw_cfg_item item[FW_CFG_MAX_ITEMS];
	unsigned n;
	uint16_t next_file;
	int cur;      /* index of the selected item, -1: none */
	uint32_t off; /* read offset in it */
};

void fw_cfg_init(struct fw_cfg *c);
/* Copy data in as a fixed key or a named file; 0 or -1 (full, name too long). */
int fw_cfg_add(struct fw_cfg *c, uint16_t key, const void *data, uint32_t len);
int fw_cfg_add_file(struct fw_cfg *c, const char *name, const void *data, uint32_t len);
/* The same with the fw_cfg as an opaque pointer: what ACPI and SMBIOS take
 * to hand their tables to the firmware (firmware_file_fn). */
int fw_cfg_add_file_to(void *fw_cfg, const char *name, const void *data, uint32_t len);
/* Build the file directory once every file is in; 0 or -1. */
int fw_cfg_finish(struct fw_cfg *c);
void fw_cfg_free(struct fw_cfg *c);
/* bus handler for ports 0x510-0x511 (off 0 = selector, 1 = data) */
void fw_cfg_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write);

#endif
