/* --gui: a window on the user's display (SDL2) that shows the first GPU's
 * scanout and its cursor, and sends keys to the first virtio keyboard and
 * the pointer to the first virtio tablet. It lives on its own thread; the
 * VM's threads never wait for it (it polls the GPU's update counter and
 * copies the scanout under the device's lock). */
#ifndef KVKIT_DISPLAY_WINDOW_H
#define KVKIT_DISPLAY_WINDOW_H
#include <stddef.h>
#include <stdint.h>
struct vm;

/* Connect to the display and open a width x height window, before the VM
 * is created: -1 with the spec's one-line error when there is no display. */
int window_open(uint32_t width, uint32_t height, char *err, size_t errlen);
/* The VM exists: show its screen, send it input; closing the window calls
 * stop (the power button). */
void window_attach(struct vm *vm, void (*stop)(struct vm *vm));
/* The VM stopped (any path): close the window and end its thread. */
void window_close(void);

#endif
