/* The screen as a picture, for the REST API (GET /vm/screenshot). */
#ifndef KVKIT_DISPLAY_SCREENSHOT_H
#define KVKIT_DISPLAY_SCREENSHOT_H
#include <stddef.h>
#include <stdint.h>
struct vm;

/* The first virtio-gpu's scanout as a malloc'ed PNG. -ENODEV: no GPU;
 * -EAGAIN: the guest has shown nothing yet; err says which. */
int screenshot_png(struct vm *vm, uint8_t **png, size_t *len, char *err, size_t errlen);

#endif
