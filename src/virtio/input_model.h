/* virtio-input's model apart from the transport, so the unit tests and
 * the fuzzer drive it directly: the device configuration (virtio 1.2
 * 5.8.4: the driver writes select and subsel, the device answers with size
 * and the union) and the events waiting for the guest's buffers. */
#ifndef KVKIT_VIRTIO_INPUT_MODEL_H
#define KVKIT_VIRTIO_INPUT_MODEL_H
#include <kvkit/config.h>
#include <linux/virtio_input.h>
#include <endian.h>
#include <stdbool.h>
#include "virtq.h"

/* The absolute pointer's range on both axes: a window or VNC client
 * scales its coordinates to it (QEMU's tablet uses the same). */
#define INPUT_ABS_MAX 32767

/* One event, as the guest reads it (little-endian fields). */
#define INPUT_EV(t, c, v) { .type = htole16(t), .code = htole16(c), .value = htole32((uint32_t)(v)) }

/* A pointer position on a size-pixel axis (clamped to it) on that range. */
int32_t input_abs_scale(int pos, uint32_t size);

/* Fill cfg->size and cfg->u for cfg->select/cfg->subsel as the device of
 * that kind answers (index: which device of the kind, for the serial). */
void input_config_answer(enum kv_input_kind kind, unsigned index, struct virtio_input_config *cfg);

/* Events from the display waiting for buffers on the event queue; a
 * batch that does not fit is dropped whole. */
#define INPUT_PENDING_MAX 1024
struct input_pending {
	struct virtio_input_event ev[INPUT_PENDING_MAX];
	unsigned head, count;
};
bool input_pending_add(struct input_pending *p, const struct virtio_input_event *ev, unsigned n);
/* One event per buffer the guest offers on vq, in order (e: scratch for
 * the popped chain). True when a buffer was used: the guest is notified. */
bool input_pending_deliver(struct input_pending *p, struct virtq *vq, struct virtq_elem *e);

#endif
