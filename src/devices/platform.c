/* Platform devices on port I/O; see platform.h. */
#include "platform.h"
#include <pthread.h>
#include <string.h>
#include "../arch/x86/layout.h"
#include "../util/log.h"
#include "../vmm/vm.h"

static pthread_mutex_t ged_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t ged_status;

/* Port 0x80: the guest marks boot phases with one outb; we log the time. */
static void debug_port(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque; (void)off;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	log_debug("guest debug port 0x80: 0x%02x at %.3f ms", data[0], log_uptime_ms());
}

static void i8042(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct vm *vm = opaque;
	if (!is_write) {
		memset(data, 0, len); /* no data, input buffer empty */
		return;
	}
	if (off == PORT_I8042_CMD - PORT_I8042_DATA && data[0] == 0xfe) {
		log_debug("guest reset through the i8042 controller");
		vm_request_stop(vm, STOP_REBOOT, NULL);
	}
}

static void reset_cf9(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct vm *vm = opaque;
	(void)off;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (data[0] & 0x4) {
		log_debug("guest reset through port 0xcf9");
		vm_request_stop(vm, STOP_REBOOT, NULL);
	}
}

/* Sleep control register: SLP_EN (bit 5) with SLP_TYP (bits 2-4) = 5 is S5. */
static void acpi_sleep(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct vm *vm = opaque;
	if (!is_write) {
		memset(data, 0, len);
		if (off == 1)
			data[0] = 0x80; /* WAK_STS */
		return;
	}
	if (off == 0 && (data[0] & 0x20)) {
		unsigned typ = (data[0] >> 2) & 7;
		if (typ == 5) {
			log_debug("guest entered ACPI S5 (power off)");
			vm_request_stop(vm, STOP_POWEROFF, NULL);
		} else {
			log_warn("guest asked for ACPI sleep type %u, which kvkit does not offer", typ);
		}
	}
}

static void acpi_ged(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	(void)opaque; (void)off;
	if (is_write)
		return;
	memset(data, 0, len);
	pthread_mutex_lock(&ged_lock);
	data[0] = ged_status; /* read clears: each event is handled once */
	ged_status = 0;
	pthread_mutex_unlock(&ged_lock);
}

void platform_press_power_button(struct vm *vm)
{
	pthread_mutex_lock(&ged_lock);
	ged_status |= 1;
	pthread_mutex_unlock(&ged_lock);
	vm_irq_line(vm, IRQ_GED, 1);
	vm_irq_line(vm, IRQ_GED, 0);
}

int platform_devices_init(struct vm *vm)
{
	int r = 0;
	r |= bus_register(&vm->pio, PORT_DEBUG, 1, debug_port, vm);
	r |= bus_register(&vm->pio, PORT_I8042_DATA, 5, i8042, vm);
	r |= bus_register(&vm->pio, PORT_RESET_CF9, 1, reset_cf9, vm);
	r |= bus_register(&vm->pio, PORT_ACPI_SLEEP_CTL, 2, acpi_sleep, vm);
	r |= bus_register(&vm->pio, PORT_ACPI_GED, 1, acpi_ged, vm);
	return r ? -1 : 0;
}
