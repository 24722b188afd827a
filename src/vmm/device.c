/* The device registry and the VM's device list; see device.h. */
#include "device.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "vm.h"

const struct device_type *device_type_find(enum kv_dev_kind kind)
{
	for (const struct device_type *const *t = device_types; *t; t++)
		if ((*t)->kind == kind)
			return *t;
	return NULL;
}

int devices_supported(const struct kv_config *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->ndevices; i++)
		if (!device_type_find(c->devices[i].kind)) {
			snprintf(err, errlen, "--device %s: not supported yet", kv_device_type_name(c->devices[i].kind));
			return -1;
		}
	return 0;
}

int devices_check(const struct kv_config *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->ndevices; i++) {
		const struct device_type *t = device_type_find(c->devices[i].kind);
		if (t && t->check && t->check(c, i, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int devices_create(struct vm *vm, struct kv_config *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->ndevices; i++) {
		const struct device_type *t = device_type_find(c->devices[i].kind);
		if (!t) {
			snprintf(err, errlen, "--device %s: not supported yet", kv_device_type_name(c->devices[i].kind));
			return -1;
		}
		if (t->create(vm, c, i, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int device_add(struct vm *vm, const struct device_type *t, void *priv, char *err, size_t errlen)
{
	struct device *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "%s: out of memory", kv_device_type_name(t->kind));
		return -ENOMEM;
	}
	d->type = t;
	d->priv = priv;
	d->prev = vm->devices_tail;
	if (vm->devices_tail)
		vm->devices_tail->next = d;
	else
		vm->devices = d;
	vm->devices_tail = d;
	return 0;
}

struct device *device_first(struct vm *vm, const struct device_type *t)
{
	for (struct device *d = vm->devices; d; d = d->next)
		if (d->type == t)
			return d;
	return NULL;
}

unsigned device_count(struct vm *vm, const struct device_type *t)
{
	unsigned n = 0;
	for (struct device *d = vm->devices; d; d = d->next)
		n += d->type == t;
	return n;
}

void devices_quiesce(struct vm *vm)
{
	for (struct device *d = vm->devices_tail; d; d = d->prev)
		if (d->type->quiesce)
			d->type->quiesce(d);
}

void devices_resume(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next)
		if (d->type->resume)
			d->type->resume(d);
}

void devices_drain(struct vm *vm)
{
	for (struct device *d = vm->devices_tail; d; d = d->prev)
		if (d->type->drain)
			d->type->drain(d);
}

void devices_destroy(struct vm *vm)
{
	while (vm->devices_tail) {
		struct device *d = vm->devices_tail;
		vm->devices_tail = d->prev;
		if (d->type->destroy)
			d->type->destroy(d);
		free(d);
	}
	vm->devices = NULL;
}
