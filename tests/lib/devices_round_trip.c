/* Test helper: see devices_round_trip.h. */
#include <json-c/json.h>
#include <kvkit/cmdline.h>
#include <kvkit/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devices_round_trip.h"

/* The "devices" array of a printed document. */
static json_object *devices_of(const struct kv_config *c, json_object **doc)
{
	char *j = kv_config_to_json(c, KV_JSON_KVKIT_KEYS);
	json_object *d = NULL;
	*doc = j ? json_tokener_parse(j) : NULL;
	free(j);
	if (!*doc)
		abort();
	json_object_object_get_ex(*doc, "devices", &d);
	return d;
}

void devices_round_trip(const struct kv_config *c)
{
	char **v, err[512];
	int n;
	if (kv_config_to_argv(c, &v, &n, err, sizeof(err)) != 0)
		return; /* a value this syntax cannot carry (a comma): refused */
	/* the device arguments alone, behind a bootloader the parser needs */
	char **argv = calloc(n + 5, sizeof(char *));
	int m = 0;
	argv[m++] = "kvkit";
	argv[m++] = "--bootloader";
	argv[m++] = "linux,kernel=/k";
	for (int i = 0; i < n;) {
		if (!strcmp(v[i], "--gui")) { /* it gives the first GPU usesGUI */
			argv[m++] = v[i++];
			continue;
		}
		if (!strcmp(v[i], "--nested")) { /* the printer's other flag without a value */
			i++;
			continue;
		}
		if (i + 1 >= n)
			break;
		if (!strcmp(v[i], "--device")) {
			argv[m++] = v[i];
			argv[m++] = v[i + 1];
		}
		i += 2;
	}
	enum kv_cmdline_action a;
	struct kv_config e;
	kv_config_init(&e);
	if (kv_cmdline_parse(m, argv, &e, &a, err, sizeof(err)) != 0) {
		fprintf(stderr, "devices_round_trip: the printed devices do not parse: %s\n", err);
		abort();
	}
	json_object *d1, *d2, *p1 = devices_of(c, &d1), *p2 = devices_of(&e, &d2);
	if (!json_object_equal(p1, p2)) {
		fprintf(stderr, "devices_round_trip: printed and parsed back differ:\n%s\n%s\n",
			json_object_to_json_string(p1), json_object_to_json_string(p2));
		abort();
	}
	json_object_put(d1);
	json_object_put(d2);
	kv_config_free(&e);
	free(argv);
	kv_free_strv(v, n);
}

