/* Small legacy/platform devices: the boot-timing debug port, i8042 reset,
 * port 0xCF9 reset, ACPI sleep control (S5) and the GED power button. */
#ifndef KVKIT_PLATFORM_H
#define KVKIT_PLATFORM_H
struct vm;
int platform_devices_init(struct vm *vm);
/* Press the ACPI power button: the guest decides what to do. */
void platform_press_power_button(struct vm *vm);
#endif
