/* PIIX4 power management; see piix4_pm.h. */
#include "piix4_pm.h"
#include <string.h>
#include <time.h>
#include "../util/log.h"
#include "../vmm/bus.h"
#include "../vmm/vm.h"

#define PMBA 0x40
#define PMREGMISC 0x80
#define PM1_CNT_SLP_EN (1u << 13)

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void pm_cfg_written(struct pci_func *f, unsigned off, unsigned len)
{
	struct piix4_pm *p = f->opaque;
	if (off > PMBA + 3 || off + len <= PMBA)
		return;
	uint16_t base = (uint16_t)((f->cfg[PMBA] | f->cfg[PMBA + 1] << 8) & 0xffc0);
	if (base != PIIX4_PM_BASE && base != 0 && !p->warned) {
		p->warned = true;
		log_warn("the firmware put the ACPI PM block at 0x%x; kvkit decodes it at 0x%x only", base,
			 PIIX4_PM_BASE);
	}
}

void piix4_pm_setup(struct piix4_pm *p, void (*power_off)(void *), void *opaque)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pci_func_init(&p->f, 0x8086, 0x7113, 0x068000, 0, 0, 3);
	p->f.cfg[PMBA] = 1; /* I/O space indicator */
	p->f.wmask[PMBA] = 0xc0;
	p->f.wmask[PMBA + 1] = 0xff;
	p->f.wmask[PMREGMISC] = 1; /* PMIOSE */
	p->f.cfg_written = pm_cfg_written;
	p->f.opaque = p;
	p->t0_ns = mono_ns();
	p->power_off = power_off;
	p->opaque = opaque;
}

static uint32_t timer(const struct piix4_pm *p)
{
	uint64_t ns = mono_ns() - p->t0_ns;
	/* ticks = ns * 3579545 / 1e9, without overflow for centuries */
	uint64_t ticks = ns / 1000000000ULL * PM_TIMER_HZ + ns % 1000000000ULL * PM_TIMER_HZ / 1000000000ULL;
	return (uint32_t)(ticks & 0xffffff); /* 24-bit counter (FADT TMR_VAL_EXT clear) */
}

void piix4_pm_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct piix4_pm *p = opaque;
	bool off_now = false;
	pthread_mutex_lock(&p->lock);
	if (!is_write) {
		uint32_t v = 0;
		unsigned reg = (unsigned)off & ~1u;
		if (off >= 8 && off < 12)
			v = timer(p) >> (8 * (off - 8));
		else if (reg == 0)
			v = p->sts;
		else if (reg == 2)
			v = p->en;
		else if (reg == 4)
			v = p->cnt;
		if (off & 1 && off < 8)
			v >>= 8;
		memcpy(data, &v, len > 4 ? 4 : len);
		if (len > 4)
			memset(data + 4, 0, len - 4);
	} else {
		uint32_t v = 0;
		memcpy(&v, data, len > 4 ? 4 : len);
		if (off == 0)
			p->sts &= (uint16_t)~v; /* write 1 to clear */
		else if (off == 2)
			p->en = (uint16_t)v;
		else if (off == 4) {
			p->cnt = (uint16_t)(v & ~PM1_CNT_SLP_EN);
			if (v & PM1_CNT_SLP_EN) {
				unsigned typ = (v >> 10) & 7;
				if (typ == 0) /* the PIIX4's S5 */
					off_now = true;
				else
					log_warn("the guest asked for PIIX4 sleep type %u, which kvkit does not offer", typ);
			}
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (off_now && p->power_off)
		p->power_off(p->opaque);
}

static struct piix4_pm pm;

static void power_off(void *opaque)
{
	log_debug("guest powered off through the PIIX4 PM1a control register");
	vm_request_stop(opaque, STOP_POWEROFF, NULL);
}

int piix4_pm_init(struct vm *vm)
{
	piix4_pm_setup(&pm, power_off, vm);
	if (pci_register_at(&pm.f, 1, 3) < 0)
		return -1;
	return bus_register(&vm->pio, PIIX4_PM_BASE, 64, piix4_pm_io, &pm);
}
