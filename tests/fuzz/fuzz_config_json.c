/* libFuzzer: JSON configuration documents (--config files, the config
 * library). Whatever is accepted must print back to JSON and re-read to the
 * same document; its devices must print to a command line that reads back
 * to the same devices (one option table drives both syntaxes), or the
 * printer must refuse cleanly. */
#include <kvkit/cmdline.h>
#include <kvkit/json.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/devices_round_trip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[512];
	memcpy(text, data, size);
	text[size] = 0;
	struct kv_config c, d;
	kv_config_init(&c);
	if (kv_config_from_json(text, &c, KV_JSON_KVKIT_KEYS, err, sizeof(err)) == 0) {
		char *j = kv_config_to_json(&c, KV_JSON_KVKIT_KEYS);
		kv_config_init(&d);
		if (!j || kv_config_from_json(j, &d, KV_JSON_KVKIT_KEYS, err, sizeof(err)) != 0)
			abort();
		char *j2 = kv_config_to_json(&d, KV_JSON_KVKIT_KEYS);
		if (strcmp(j, j2))
			abort(); /* JSON -> model -> JSON must be lossless */
		devices_round_trip(&c);
		free(j);
		free(j2);
		kv_config_free(&d);
	}
	kv_config_free(&c);
	free(text);
	return 0;
}
