/* virtio-input configuration answers: see input_model.h. */
#include "input_model.h"
#include <endian.h>
#include <linux/input.h>
#include <stdio.h>
#include <string.h>

static void set_bit(uint8_t *map, unsigned bit, uint8_t *size)
{
	map[bit / 8] |= 1u << (bit % 8);
	if (bit / 8 + 1 > *size)
		*size = bit / 8 + 1;
}

/* The event types and codes each kind sends: a keyboard every key code up
 * to KEY_MICMUTE with autorepeat and the three lock LEDs; a pointer an
 * absolute tablet with three buttons and a wheel. */
static void ev_bits(enum kv_input_kind kind, unsigned type, struct virtio_input_config *c)
{
	if (kind == KV_INPUT_KEYBOARD) {
		switch (type) {
		case EV_KEY:
			for (unsigned k = KEY_ESC; k <= KEY_MICMUTE; k++)
				set_bit(c->u.bitmap, k, &c->size);
			break;
		case EV_LED:
			set_bit(c->u.bitmap, LED_NUML, &c->size);
			set_bit(c->u.bitmap, LED_CAPSL, &c->size);
			set_bit(c->u.bitmap, LED_SCROLLL, &c->size);
			break;
		case EV_REP:
			c->size = 1; /* present: the driver turns on autorepeat */
			break;
		}
	} else if (kind == KV_INPUT_POINTING) {
		switch (type) {
		case EV_KEY:
			set_bit(c->u.bitmap, BTN_LEFT, &c->size);
			set_bit(c->u.bitmap, BTN_RIGHT, &c->size);
			set_bit(c->u.bitmap, BTN_MIDDLE, &c->size);
			break;
		case EV_ABS:
			set_bit(c->u.bitmap, ABS_X, &c->size);
			set_bit(c->u.bitmap, ABS_Y, &c->size);
			break;
		case EV_REL:
			set_bit(c->u.bitmap, REL_WHEEL, &c->size);
			break;
		}
	}
}

void input_config_answer(enum kv_input_kind kind, unsigned index, struct virtio_input_config *c)
{
	c->size = 0;
	memset(&c->u, 0, sizeof(c->u));
	bool keyboard = kind == KV_INPUT_KEYBOARD;
	switch (c->select) {
	case VIRTIO_INPUT_CFG_ID_NAME:
		c->size = (uint8_t)snprintf(c->u.string, sizeof(c->u.string), "%s",
					    keyboard ? "kvkit virtio keyboard" : "kvkit virtio tablet");
		break;
	case VIRTIO_INPUT_CFG_ID_SERIAL:
		c->size = (uint8_t)snprintf(c->u.string, sizeof(c->u.string), "kvkit-%s-%u", keyboard ? "kbd" : "tablet", index);
		break;
	case VIRTIO_INPUT_CFG_ID_DEVIDS:
		c->u.ids.bustype = htole16(BUS_VIRTUAL);
		c->u.ids.vendor = htole16(0x1af4);
		c->u.ids.product = htole16(keyboard ? 1 : 2);
		c->u.ids.version = htole16(1);
		c->size = sizeof(c->u.ids);
		break;
	case VIRTIO_INPUT_CFG_PROP_BITS:
		break; /* none: a tablet is not a touchscreen (INPUT_PROP_DIRECT) */
	case VIRTIO_INPUT_CFG_EV_BITS:
		ev_bits(kind, c->subsel, c);
		break;
	case VIRTIO_INPUT_CFG_ABS_INFO:
		if (kind == KV_INPUT_POINTING && (c->subsel == ABS_X || c->subsel == ABS_Y)) {
			c->u.abs.min = 0;
			c->u.abs.max = htole32(INPUT_ABS_MAX);
			c->size = sizeof(c->u.abs);
		}
		break;
	}
}

int32_t input_abs_scale(int pos, uint32_t size)
{
	if (pos < 0 || size < 2)
		return 0;
	if ((uint32_t)pos >= size)
		pos = (int)size - 1;
	return (int32_t)((int64_t)pos * INPUT_ABS_MAX / (size - 1));
}

bool input_pending_add(struct input_pending *p, const struct virtio_input_event *ev, unsigned n)
{
	if (n > INPUT_PENDING_MAX - p->count)
		return false;
	for (unsigned k = 0; k < n; k++)
		p->ev[(p->head + p->count + k) % INPUT_PENDING_MAX] = ev[k];
	p->count += n;
	return true;
}

bool input_pending_deliver(struct input_pending *p, struct virtq *vq, struct virtq_elem *e)
{
	bool any = false;
	while (p->count && virtq_pop(vq, e) > 0) {
		const struct virtio_input_event *ev = &p->ev[p->head];
		size_t n = iov_from_buf(e->iov + e->n_out, e->n_in, 0, ev, sizeof(*ev));
		virtq_push(vq, e->head, (uint32_t)n);
		any = true;
		if (n < sizeof(*ev))
			continue; /* a buffer too small for an event: the guest's loss, the event waits */
		p->head = (p->head + 1) % INPUT_PENDING_MAX;
		p->count--;
	}
	return any;
}
