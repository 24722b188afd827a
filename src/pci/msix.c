/* MSI-X: table and PBA in a BAR, one KVM GSI + irqfd per vector so raising an
 * interrupt is one eventfd write from any thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vmm/vm.h"
#include "pci.h"

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK 0x4000
#define MSIX_ENTRY_MASKED 1

int msix_init(struct msix *m, struct vm *vm, struct pci_func *f, unsigned nvec, int bar,
	      uint32_t table_off, uint32_t pba_off)
{
	uint8_t cap[12] = { 0x11, 0 };
	uint16_t ctrl = nvec - 1;
	uint32_t t = table_off | bar, p = pba_off | bar;

	memset(m, 0, sizeof(*m));
	m->vm = vm;
	m->f = f;
	m->nvec = nvec;
	pthread_mutex_init(&m->lock, NULL);
	m->table = calloc(nvec, sizeof(*m->table));
	m->pba = calloc((nvec + 63) / 64, sizeof(uint64_t));
	m->gsi = calloc(nvec, sizeof(int));
	m->efd = calloc(nvec, sizeof(int));
	if (!m->table || !m->pba || !m->gsi || !m->efd)
		return -ENOMEM;
	for (unsigned i = 0; i < nvec; i++) {
		m->table[i].ctrl = MSIX_ENTRY_MASKED;
		m->gsi[i] = vm_msi_gsi_alloc(vm);
		if (m->gsi[i] < 0)
			return m->gsi[i];
		m->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->efd[i] < 0)
			return -errno;
		int r = vm_irqfd(vm, m->efd[i], m->gsi[i], true);
		if (r < 0)
			return r;
	}
	memcpy(cap + 2, &ctrl, 2);
	memcpy(cap + 4, &t, 4);
	memcpy(cap + 8, &p, 4);
	int off = pci_add_cap(f, cap, sizeof(cap));
	if (off < 0)
		return off;
	m->cap = off;
	f->wmask[off + 3] = 0xc0; /* enable and function mask */
	return 0;
}

static void fire_locked(struct msix *m, unsigned vec)
{
	uint64_t one = 1;
	if (write(m->efd[vec], &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("msix irqfd write: %m");
}

static void deliver_pending_locked(struct msix *m)
{
	if (!m->enabled || m->fmask)
		return;
	for (unsigned v = 0; v < m->nvec; v++) {
		if ((m->pba[v / 64] >> (v % 64)) & 1 && !(m->table[v].ctrl & MSIX_ENTRY_MASKED)) {
			m->pba[v / 64] &= ~(1ULL << (v % 64));
			fire_locked(m, v);
		}
	}
}

void msix_cfg_written(struct msix *m)
{
	uint8_t hi = m->f->cfg[m->cap + 3];
	pthread_mutex_lock(&m->lock);
	m->enabled = hi & (MSIX_CTRL_ENABLE >> 8);
	m->fmask = hi & (MSIX_CTRL_FMASK >> 8);
	deliver_pending_locked(m);
	pthread_mutex_unlock(&m->lock);
}

void msix_table_access(struct msix *m, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	unsigned vec = off / 16, field = off % 16;
	if (vec >= m->nvec || (len != 4 && len != 8) || (field & 3)) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&m->lock);
	uint32_t *e = (uint32_t *)&m->table[vec];
	if (!is_write) {
		memcpy(data, (uint8_t *)e + field, len > 16 - field ? 16 - field : len);
	} else {
		memcpy((uint8_t *)e + field, data, len > 16 - field ? 16 - field : len);
		struct msix_entry *t = &m->table[vec];
		t->ctrl &= MSIX_ENTRY_MASKED;
		if (field < 12)
			vm_msi_route(m->vm, m->gsi[vec], ((uint64_t)t->addr_hi << 32) | t->addr_lo, t->data);
		deliver_pending_locked(m);
	}
	pthread_mutex_unlock(&m->lock);
}

void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	if (is_write)
		return;
	pthread_mutex_lock(&m->lock);
	uint64_t words = (m->nvec + 63) / 64;
	memset(data, 0, len);
	if (off + len <= words * 8)
		memcpy(data, (uint8_t *)m->pba + off, len);
	pthread_mutex_unlock(&m->lock);
}

void msix_notify(struct msix *m, unsigned vec)
{
	if (vec >= m->nvec)
		return;
	pthread_mutex_lock(&m->lock);
	if (!m->enabled) {
		/* no INTx fallback: the driver has not set up interrupts yet */
	} else if (m->fmask || (m->table[vec].ctrl & MSIX_ENTRY_MASKED)) {
		m->pba[vec / 64] |= 1ULL << (vec % 64);
	} else {
		fire_locked(m, vec);
	}
	pthread_mutex_unlock(&m->lock);
}
