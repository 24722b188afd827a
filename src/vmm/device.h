/* The device registry. Every kind of device a user can give with --device
 * has one descriptor (struct device_type) in its own file, listed once in
 * src/vmm/device_types.c. The core checks and creates devices in
 * command-line order from the config, keeps the instances in one list per
 * VM, and runs the lifecycle over that list: resume in order, quiesce,
 * drain and destroy in reverse order. main.c names no device. */
#ifndef KVKIT_DEVICE_H
#define KVKIT_DEVICE_H
#include <kvkit/config.h>
#include <stdbool.h>
#include <stddef.h>

struct vm;
struct device;

struct device_type {
	enum kv_dev_kind kind; /* the --device type it serves (kv_device_type_name) */
	/* Before anything is created: what the user can fix (a missing file,
	 * a port given twice). c->devices[index] is this type's. May be NULL. */
	int (*check)(const struct kv_config *c, size_t index, char *err, size_t errlen);
	/* Create the device for c->devices[index], put it on the bus and
	 * device_add() it. May fill runtime fields of the entry (a MAC, a pty
	 * name) that /vm/inspect shows. */
	int (*create)(struct vm *vm, struct kv_config *c, size_t index, char *err, size_t errlen);
	/* Instance operations; any may be NULL (nothing to do). */
	void (*quiesce)(struct device *d); /* the VM pauses: take no new guest work */
	void (*resume)(struct device *d);  /* the VM resumes: look at the guest's queues again */
	void (*drain)(struct device *d);   /* the vCPUs are gone: finish what the guest asked */
	void (*destroy)(struct device *d); /* exit: release host resources */
	/* Device state for snapshot and restore: NULL in every type until the
	 * snapshot work (issue 27) adds its caller. */
	int (*save)(struct device *d, int fd, char *err, size_t errlen);
	int (*load)(struct device *d, int fd, char *err, size_t errlen);
};

struct device {
	const struct device_type *type;
	void *priv; /* the model's own state */
	struct device *prev, *next;
};

/* The registry (device_types.c): NULL-terminated. */
extern const struct device_type *const device_types[];
const struct device_type *device_type_find(enum kv_dev_kind kind);

/* Every --device has a type here, or a one-line "not supported yet". */
int devices_supported(const struct kv_config *c, char *err, size_t errlen);
/* Run each type's check over the config, in command-line order. */
int devices_check(const struct kv_config *c, char *err, size_t errlen);
/* Create every device in command-line order; stops at the first error. */
int devices_create(struct vm *vm, struct kv_config *c, char *err, size_t errlen);

/* Called by a type's create(): the instance joins the VM's list (in
 * creation order, which is PCI slot order). -ENOMEM with a line in err.
 * A virtio device registers its struct virtio_dev (whose priv is the model):
 * the transport's virtio_device_resume then serves as its resume op. */
int device_add(struct vm *vm, const struct device_type *t, void *priv, char *err, size_t errlen);
/* The first instance of a type, NULL if none (for one-per-VM devices). */
struct device *device_first(struct vm *vm, const struct device_type *t);

/* How many instances of a type exist so far (an index for the next one). */
unsigned device_count(struct vm *vm, const struct device_type *t);

void devices_quiesce(struct vm *vm);
void devices_resume(struct vm *vm);
void devices_drain(struct vm *vm);
/* Destroys in reverse order and empties the list. */
void devices_destroy(struct vm *vm);

#endif
