/* CMOS RTC; see rtc.h. The time registers are computed on every read from
 * the host clock, in BCD or binary and 12- or 24-hour form as register B
 * says; a write to one of them moves the guest's offset. */
#define _GNU_SOURCE
#include "rtc.h"
#include <string.h>

#define REG_SEC 0x00
#define REG_MIN 0x02
#define REG_HOUR 0x04
#define REG_WDAY 0x06
#define REG_MDAY 0x07
#define REG_MON 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d
#define REG_CENTURY 0x32

#define B_24H 0x02
#define B_BINARY 0x04
#define B_SET 0x80

static time_t host_now(void) { return time(NULL); }

void rtc_init(struct rtc *r, uint64_t low_ram, uint64_t high_ram, unsigned ncpus)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->now = host_now;
	r->cmos[REG_A] = 0x26; /* 32.768 kHz base, 1024 Hz rate */
	r->cmos[REG_B] = B_24H;
	r->cmos[REG_D] = 0x80; /* battery good */
	/* memory the way SeaBIOS and OVMF read it: 1-64 MiB in KiB, 16 MiB-4 GiB
	 * and above 4 GiB in 64 KiB units */
	uint64_t ext = low_ram > (1 << 20) ? (low_ram - (1 << 20)) >> 10 : 0;
	if (ext > 0xfc00)
		ext = 0xfc00;
	r->cmos[0x17] = r->cmos[0x30] = ext & 0xff;
	r->cmos[0x18] = r->cmos[0x31] = ext >> 8;
	uint64_t above16 = low_ram > (16 << 20) ? (low_ram - (16 << 20)) >> 16 : 0;
	if (above16 > 0xffff)
		above16 = 0xffff;
	r->cmos[0x34] = above16 & 0xff;
	r->cmos[0x35] = above16 >> 8;
	uint64_t hi = high_ram >> 16;
	r->cmos[0x5b] = hi & 0xff;
	r->cmos[0x5c] = (hi >> 8) & 0xff;
	r->cmos[0x5d] = (hi >> 16) & 0xff;
	r->cmos[0x5f] = ncpus ? (uint8_t)(ncpus - 1) : 0;
}

static uint8_t to_reg(const struct rtc *r, unsigned v)
{
	return r->cmos[REG_B] & B_BINARY ? (uint8_t)v : (uint8_t)(((v / 10) << 4) | (v % 10));
}

static int from_reg(const struct rtc *r, uint8_t v)
{
	return r->cmos[REG_B] & B_BINARY ? v : (v >> 4) * 10 + (v & 15);
}

static uint8_t hour_reg(const struct rtc *r, int h)
{
	if (r->cmos[REG_B] & B_24H)
		return to_reg(r, (unsigned)h);
	int h12 = h % 12 ? h % 12 : 12;
	return (uint8_t)(to_reg(r, (unsigned)h12) | (h >= 12 ? 0x80 : 0));
}

static int hour_from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[REG_B] & B_24H)
		return from_reg(r, v);
	int h = from_reg(r, v & 0x7f) % 12;
	return h + (v & 0x80 ? 12 : 0);
}

static void guest_tm(const struct rtc *r, struct tm *tm)
{
	time_t t = r->now() + r->offset;
	gmtime_r(&t, tm);
}

static void commit_time(struct rtc *r)
{
	struct tm tm = r->staged;
	time_t t = timegm(&tm);
	if (t != (time_t)-1)
		r->offset = (int64_t)t - (int64_t)r->now();
}

static uint8_t read_reg(struct rtc *r, uint8_t idx)
{
	struct tm tm;
	switch (idx) {
	case REG_SEC: guest_tm(r, &tm); return to_reg(r, (unsigned)tm.tm_sec % 60);
	case REG_MIN: guest_tm(r, &tm); return to_reg(r, (unsigned)tm.tm_min);
	case REG_HOUR: guest_tm(r, &tm); return hour_reg(r, tm.tm_hour);
	case REG_WDAY: guest_tm(r, &tm); return to_reg(r, (unsigned)tm.tm_wday + 1);
	case REG_MDAY: guest_tm(r, &tm); return to_reg(r, (unsigned)tm.tm_mday);
	case REG_MON: guest_tm(r, &tm); return to_reg(r, (unsigned)tm.tm_mon + 1);
	case REG_YEAR: guest_tm(r, &tm); return to_reg(r, (unsigned)(tm.tm_year % 100));
	case REG_CENTURY: guest_tm(r, &tm); return to_reg(r, (unsigned)((tm.tm_year + 1900) / 100));
	case REG_A: return r->cmos[REG_A] & 0x7f; /* never "update in progress" */
	case REG_C: { uint8_t v = r->cmos[REG_C]; r->cmos[REG_C] = 0; return v; }
	default: return r->cmos[idx];
	}
}

/* A write to a time field changes that field of the staged time; with the
 * SET bit clear it takes effect at once, otherwise when SET is cleared (so a
 * date written field by field is never normalised half-way, 31 February).
 * Out-of-range values are ignored. */
static void write_time(struct rtc *r, uint8_t idx, uint8_t v)
{
	struct tm *tm = &r->staged;
	if (!(r->cmos[REG_B] & B_SET))
		guest_tm(r, tm);
	int x = idx == REG_HOUR ? hour_from_reg(r, v) : from_reg(r, v);
	switch (idx) {
	case REG_SEC: if (x > 59) return; tm->tm_sec = x; break;
	case REG_MIN: if (x > 59) return; tm->tm_min = x; break;
	case REG_HOUR: if (x > 23) return; tm->tm_hour = x; break;
	case REG_MDAY: if (x < 1 || x > 31) return; tm->tm_mday = x; break;
	case REG_MON: if (x < 1 || x > 12) return; tm->tm_mon = x - 1; break;
	case REG_YEAR: if (x > 99) return; tm->tm_year = (tm->tm_year + 1900) / 100 * 100 + x - 1900; break;
	case REG_CENTURY: if (x < 19 || x > 99) return; tm->tm_year = x * 100 + tm->tm_year % 100 - 1900; break;
	default: return; /* day of week follows the date */
	}
	if (!(r->cmos[REG_B] & B_SET))
		commit_time(r);
}

static void write_b(struct rtc *r, uint8_t v)
{
	bool was_set = r->cmos[REG_B] & B_SET;
	if (!was_set && (v & B_SET))
		guest_tm(r, &r->staged);
	r->cmos[REG_B] = v;
	if (was_set && !(v & B_SET))
		commit_time(r);
}

void rtc_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct rtc *r = opaque;
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < len; i++) {
		if (off + i == 0) {
			if (is_write)
				r->index = data[i] & 0x7f; /* bit 7 masks NMIs: nothing to mask */
			else
				data[i] = 0xff;
		} else if (off + i == 1) {
			uint8_t idx = r->index;
			if (!is_write)
				data[i] = read_reg(r, idx);
			else if (idx <= REG_YEAR || idx == REG_CENTURY)
				write_time(r, idx, data[i]);
			else if (idx == REG_B)
				write_b(r, data[i]);
			else if (idx == REG_A)
				r->cmos[REG_A] = data[i] & 0x7f;
			else if (idx != REG_C && idx != REG_D)
				r->cmos[idx] = data[i];
		} else if (!is_write) {
			data[i] = 0xff;
		}
	}
	pthread_mutex_unlock(&r->lock);
}
