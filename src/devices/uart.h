/* A 16550A UART at COM1 (0x3f8, IRQ 4) for the kernel's early console.
 * Output goes to a sink callback (the first virtio-serial's output). */
#ifndef KVKIT_UART_H
#define KVKIT_UART_H
#include <stddef.h>
#include <stdint.h>
struct vm;
typedef void (*uart_sink)(void *opaque, const uint8_t *buf, size_t len);
int uart_init(struct vm *vm, uart_sink sink, void *opaque);
void uart_flush(void);
#endif
