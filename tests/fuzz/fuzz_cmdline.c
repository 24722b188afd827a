/* libFuzzer harness: the vfkit command line. The input is split at NUL
 * bytes into argv; parse errors are fine, crashes and leaks are not. The
 * devices of an accepted command line print back to option lists that
 * read to the same devices, or the printer refuses cleanly. */
#include <kvkit/cmdline.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/devices_round_trip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[65], err[512];
	int argc = 0;
	struct kv_config cfg;
	enum kv_cmdline_action action;

	memcpy(buf, data, size);
	buf[size] = 0;
	argv[argc++] = "kvkit";
	for (size_t i = 0; i < size && argc < 64;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;
	kv_config_init(&cfg);
	if (kv_cmdline_parse(argc, argv, &cfg, &action, err, sizeof(err)) == 0 && action == KV_ACTION_RUN)
		devices_round_trip(&cfg);
	kv_config_free(&cfg);
	free(buf);
	return 0;
}
