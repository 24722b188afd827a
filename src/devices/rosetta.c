/* --device rosetta: Apple's x86 translator share. There is no Rosetta on
 * Linux: refused, unless the user said ignoreIfMissing, then only logged. */
#include <stdio.h>
#include "../util/log.h"
#include "../vmm/device.h"

static int rosetta_check(const struct kv_config *c, size_t i, char *err, size_t errlen)
{
	if (!c->devices[i].u.rosetta.ignore_if_missing) {
		snprintf(err, errlen, "rosetta is unsupported on non-arm64 platforms");
		return -1;
	}
	return 0;
}

static int rosetta_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	const char *tag = c->devices[i].u.rosetta.mount_tag;
	log_warn("rosetta share '%s' ignored: Rosetta is not available on this host", tag ? tag : "");
	return 0;
}

const struct device_type rosetta_device = {
	.kind = KV_DEV_ROSETTA, .check = rosetta_check, .create = rosetta_create,
};
