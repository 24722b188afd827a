/* libFuzzer harness for what the guest can do to the UEFI platform devices:
 * any sequence of port and flash accesses to the CFI flash (a small chip
 * backed by a temporary file), fw_cfg (with a file directory), the CMOS RTC
 * and the PIIX4 PM block. Each 12-byte record: device, write flag, length,
 * an offset (32 bits, not clamped: out-of-range offsets must be refused by
 * the device) and up to 4 data bytes. Checked: no crash, no out-of-bounds
 * access (ASan), and the flash file always mirrors the chip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../src/devices/fw_cfg.h"
#include "../../src/devices/pflash.h"
#include "../../src/devices/piix4_pm.h"
#include "../../src/devices/rtc.h"
#include "../../src/vmm/vm.h"

/* piix4_pm.c's power-off path calls into the VM; the harness has none */
void vm_request_stop(struct vm *vm, enum vm_stop_reason why, const char *detail)
{
	(void)vm; (void)why; (void)detail;
}

#define CHIP 8192

static void off(void *o) { (void)o; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[CHIP], disk[CHIP];
	char path[] = "/tmp/kvkit-fuzz-flash-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		abort();
	unlink(path);
	memset(mem, 0xff, sizeof(mem));
	if (pwrite(fd, mem, sizeof(mem), 0) != (ssize_t)sizeof(mem))
		abort();
	struct pflash f;
	pflash_init(&f, "fuzz", mem, CHIP, 4096, fd, false);
	struct fw_cfg c;
	fw_cfg_init(&c);
	fw_cfg_add(&c, FW_CFG_SIGNATURE, "QEMU", 4);
	fw_cfg_add_file(&c, "etc/a", "hello", 5);
	fw_cfg_add_file(&c, "etc/b", "", 0);
	fw_cfg_finish(&c);
	struct rtc r;
	rtc_init(&r, 1 << 30, 0, 1);
	struct piix4_pm pm;
	piix4_pm_setup(&pm, off, NULL);

	for (size_t i = 0; i + 12 <= size; i += 12) {
		const uint8_t *rec = data + i;
		uint8_t dev = rec[0] % 4, is_write = rec[1] & 1;
		unsigned len = 1 + rec[2] % 8;
		uint32_t o;
		memcpy(&o, rec + 3, 4);
		uint8_t buf[8] = { 0 };
		memcpy(buf, rec + 7, 5);
		switch (dev) {
		case 0: pflash_access(&f, o, buf, len, is_write); break;
		case 1: fw_cfg_io(&c, o % 2, buf, len > 4 ? 4 : len, is_write); break;
		case 2: rtc_io(&r, o % 2, buf, len > 4 ? 4 : len, is_write); break;
		case 3: piix4_pm_io(&pm, o % 64, buf, len > 4 ? 4 : len, is_write); break;
		}
	}
	if (pread(fd, disk, sizeof(disk), 0) != (ssize_t)sizeof(disk) || memcmp(disk, mem, sizeof(mem)))
		abort(); /* a change the file did not get */
	close(fd);
	fw_cfg_free(&c);
	return 0;
}
