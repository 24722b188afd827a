/* Unit tests for the device registry (src/vmm/device.c) with two fake
 * device types: creation in command-line order, the checks, the
 * "not supported" line, and the lifecycle over the list (resume in order;
 * quiesce, drain and destroy in reverse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <kvkit/config.h>
#include "../../src/vmm/device.h"
#include "../../src/vmm/vm.h"

static char trace[256]; /* what ran: "<op><instance id>" */
static int ids[8];

static void note(char op, struct device *d)
{
	size_t n = strlen(trace);
	snprintf(trace + n, sizeof(trace) - n, "%c%d", op, *(int *)d->priv);
}

static int fake_create(struct vm *vm, struct kv_config *c, size_t i, const struct device_type *t, char *err,
		       size_t errlen)
{
	ids[i] = (int)i;
	return device_add(vm, t, &ids[i], err, errlen);
}

static void on_quiesce(struct device *d) { note('q', d); }
static void on_resume(struct device *d) { note('r', d); }
static void on_drain(struct device *d) { note('d', d); }
static void on_destroy(struct device *d) { note('x', d); }

extern const struct device_type fake_rng, fake_fs;
static int rng_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	return fake_create(vm, c, i, &fake_rng, err, errlen);
}
static int fs_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	return fake_create(vm, c, i, &fake_fs, err, errlen);
}
/* a share whose tag is "bad" is refused by the check */
static int fs_check(const struct kv_config *c, size_t i, char *err, size_t errlen)
{
	if (strcmp(c->devices[i].u.fs.mount_tag, "bad"))
		return 0;
	snprintf(err, errlen, "share %zu refused", i);
	return -1;
}

const struct device_type fake_rng = { .kind = KV_DEV_VIRTIO_RNG, .create = rng_create, .resume = on_resume,
				      .destroy = on_destroy };
const struct device_type fake_fs = { .kind = KV_DEV_VIRTIO_FS, .check = fs_check, .create = fs_create,
				     .quiesce = on_quiesce, .resume = on_resume, .drain = on_drain,
				     .destroy = on_destroy };
const struct device_type *const device_types[] = { &fake_rng, &fake_fs, NULL };

static void add(struct kv_config *c, enum kv_dev_kind kind, const char *tag)
{
	struct kv_device *d = kv_config_add_device(c, kind);
	assert_non_null(d);
	if (kind == KV_DEV_VIRTIO_FS)
		d->u.fs.mount_tag = strdup(tag);
}

static void lifecycle_runs_over_the_list_in_order_and_reverse(void **state)
{
	struct kv_config c;
	struct vm vm = { 0 };
	char err[128] = "";
	kv_config_init(&c);
	add(&c, KV_DEV_VIRTIO_FS, "a");
	add(&c, KV_DEV_VIRTIO_RNG, NULL);
	add(&c, KV_DEV_VIRTIO_FS, "b");
	assert_int_equal(devices_supported(&c, err, sizeof(err)), 0);
	assert_int_equal(devices_check(&c, err, sizeof(err)), 0);
	assert_int_equal(devices_create(&vm, &c, err, sizeof(err)), 0);
	assert_int_equal(device_count(&vm, &fake_fs), 2);
	assert_int_equal(device_count(&vm, &fake_rng), 1);
	assert_int_equal(*(int *)device_first(&vm, &fake_rng)->priv, 1);
	devices_quiesce(&vm);
	devices_resume(&vm);
	devices_drain(&vm);
	devices_destroy(&vm);
	/* rng has no quiesce or drain; destroy goes last-created first */
	assert_string_equal(trace, "q2q0r0r1r2d2d0x2x1x0");
	assert_null(vm.devices);
	assert_null(vm.devices_tail);
	assert_null(device_first(&vm, &fake_fs));
	kv_config_free(&c);
}

static void a_failing_check_names_its_device(void **state)
{
	struct kv_config c;
	char err[128] = "";
	kv_config_init(&c);
	add(&c, KV_DEV_VIRTIO_FS, "a");
	add(&c, KV_DEV_VIRTIO_FS, "bad");
	assert_int_equal(devices_check(&c, err, sizeof(err)), -1);
	assert_string_equal(err, "share 1 refused");
	kv_config_free(&c);
}

static void a_type_without_a_model_is_not_supported(void **state)
{
	struct kv_config c;
	char err[128] = "";
	kv_config_init(&c);
	add(&c, KV_DEV_VIRTIO_RNG, NULL);
	add(&c, KV_DEV_VIRTIO_BALLOON, NULL);
	assert_int_equal(devices_supported(&c, err, sizeof(err)), -1);
	assert_string_equal(err, "--device virtio-balloon: not supported yet");
	kv_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lifecycle_runs_over_the_list_in_order_and_reverse),
		cmocka_unit_test(a_failing_check_names_its_device),
		cmocka_unit_test(a_type_without_a_model_is_not_supported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
