/* The CMOS real-time clock (MC146818) at ports 0x70/0x71: the date and
 * time OVMF's RTC runtime service reads and sets, and the CMOS bytes
 * firmware reads the memory size from. The clock is the host's UTC plus
 * whatever offset the guest set; it raises no interrupts (alarm and
 * periodic IRQ 8 are not offered). */
#ifndef KVKIT_RTC_H
#define KVKIT_RTC_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define RTC_PORT_INDEX 0x70

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128];
	int64_t offset;           /* guest time - host time, seconds */
	struct tm staged;         /* the time being written while SET is on */
	time_t (*now)(void);      /* host clock; replaceable by tests */
};

/* low_ram: RAM below 4 GiB, high_ram: above (bytes), for the CMOS size bytes */
void rtc_init(struct rtc *r, uint64_t low_ram, uint64_t high_ram, unsigned ncpus);
/* bus handler for ports 0x70-0x71 */
void rtc_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write);

#endif
