/* 16550A UART emulation: enough for Linux's 8250 driver (probe, THRE
 * interrupts, polling output). Input is not wired: the guest's interactive
 * console is virtio-console. */
#include "uart.h"
#include <pthread.h>
#include <string.h>
#include "../arch/x86/layout.h"
#include "../vmm/vm.h"

#define UART_IER_RDI 0x01
#define UART_IER_THRI 0x02
#define UART_LCR_DLAB 0x80
#define UART_MCR_LOOP 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_IIR_NO_INT 0x01
#define UART_IIR_THRI 0x02

static struct {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	int thri_pending;
	int irq_level;
	uart_sink sink;
	void *opaque;
	uint8_t buf[512];
	size_t len;
} u = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void flush_locked(void)
{
	if (u.len && u.sink)
		u.sink(u.opaque, u.buf, u.len);
	u.len = 0;
}

void uart_flush(void)
{
	pthread_mutex_lock(&u.lock);
	flush_locked();
	pthread_mutex_unlock(&u.lock);
}

static void update_irq(void)
{
	int level = (u.ier & UART_IER_THRI) && u.thri_pending;
	if (level != u.irq_level) {
		u.irq_level = level;
		vm_irq_line(u.vm, IRQ_COM1, level);
	}
}

static void out_byte(uint8_t c)
{
	if (u.mcr & UART_MCR_LOOP)
		return;
	u.buf[u.len++] = c;
	if (c == '\n' || u.len == sizeof(u.buf))
		flush_locked();
}

static void uart_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque;
	pthread_mutex_lock(&u.lock);
	for (unsigned i = 0; i < len; i++, off++) {
		bool dlab = u.lcr & UART_LCR_DLAB;
		if (is_write) {
			uint8_t v = data[i];
			switch (off) {
			case 0:
				if (dlab) {
					u.dll = v;
				} else {
					out_byte(v);
					u.thri_pending = 1; /* transmit is instant */
				}
				break;
			case 1:
				if (dlab) {
					u.dlm = v;
				} else {
					if ((v & UART_IER_THRI) && !(u.ier & UART_IER_THRI))
						u.thri_pending = 1;
					u.ier = v & 0x0f;
				}
				break;
			case 2: u.fcr = v; break;
			case 3: u.lcr = v; break;
			case 4: u.mcr = v & 0x1f; break;
			case 7: u.scr = v; break;
			}
		} else {
			uint8_t v = 0;
			switch (off) {
			case 0: v = dlab ? u.dll : 0; break;
			case 1: v = dlab ? u.dlm : u.ier; break;
			case 2:
				if ((u.ier & UART_IER_THRI) && u.thri_pending) {
					v = UART_IIR_THRI;
					u.thri_pending = 0;
				} else {
					v = UART_IIR_NO_INT;
				}
				if (u.fcr & 1)
					v |= 0xc0;
				break;
			case 3: v = u.lcr; break;
			case 4: v = u.mcr; break;
			case 5: v = UART_LSR_THRE | UART_LSR_TEMT; break;
			case 6:
				if (u.mcr & UART_MCR_LOOP) /* loopback: outputs reflect onto inputs */
					v = ((u.mcr & 1) << 5) | ((u.mcr & 2) << 3) | ((u.mcr & 0x0c) << 4);
				else
					v = 0xb0; /* DCD, DSR, CTS */
				break;
			case 7: v = u.scr; break;
			}
			data[i] = v;
		}
	}
	update_irq();
	pthread_mutex_unlock(&u.lock);
}

int uart_init(struct vm *vm, uart_sink sink, void *opaque)
{
	u.vm = vm;
	u.sink = sink;
	u.opaque = opaque;
	return bus_register(&vm->pio, PORT_COM1, 8, uart_io, NULL);
}
