/* libkvkit: configuration <-> JSON in vfkit's format (spec section 5),
 * through json-c. Keys are emitted in the order vfkit emits them. */
#include <errno.h>
#include <json-c/json.h>
#include <kvkit/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "boot_options.h"
#include "device_options.h"
#include "internal.h"


/* ---------------- writing ---------------- */

static void put_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}
static void put_opt_str(json_object *o, const char *k, const char *v)
{
	if (v && *v)
		put_str(o, k, v);
}
static void put_bool(json_object *o, const char *k, bool v) { json_object_object_add(o, k, json_object_new_boolean(v)); }
static void put_opt_bool(json_object *o, const char *k, bool v)
{
	if (v)
		put_bool(o, k, v);
}
static void put_u64(json_object *o, const char *k, uint64_t v) { json_object_object_add(o, k, json_object_new_uint64(v)); }

static json_object *kind_obj(const char *kind)
{
	json_object *o = json_object_new_object();
	put_str(o, "kind", kind);
	return o;
}

/* A device as vfkit writes it: its kind, then each option its table says
 * to write, in the table's (vfkit's) key order. */
static json_object *device_json(const struct kv_device *d, unsigned flags)
{
	const struct kv_device_desc *t = kv_desc_of(d->kind);
	char buf[32];
	if (!t)
		return NULL;
	json_object *o = kind_obj(t->json_kind);
	if (t->json_devname)
		put_str(o, "devName", t->type);
	for (size_t i = 0; i < t->nopts; i++) {
		const struct kv_opt *op = &t->opts[i];
		if ((op->flags & KV_OPT_RUNTIME) && !(flags & KV_JSON_RUNTIME))
			continue;
		if (!kv_opt_json_wanted(t, op, d))
			continue;
		json_object *v;
		switch (op->kind) {
		case KV_OPT_FLAG:
		case KV_OPT_ONOFF:
			v = json_object_new_boolean(kv_opt_get_int(d, op) != 0);
			break;
		case KV_OPT_SET:
			v = json_object_new_boolean(kv_opt_get_int(d, op) == op->value);
			break;
		case KV_OPT_LIST:
			v = json_object_new_array();
			for (size_t j = 0; j < kv_opt_list_len(d, op); j++)
				json_object_array_add(v, json_object_new_string(kv_opt_list_item(d, op, j)));
			break;
		case KV_OPT_UINT:
			v = json_object_new_uint64((uint64_t)kv_opt_get_int(d, op));
			break;
		case KV_OPT_INT:
			v = json_object_new_int64(kv_opt_get_int(d, op) * (op->json_scale ? op->json_scale : 1));
			break;
		case KV_OPT_FD: /* vfkit writes the socket as an empty object */
			v = json_object_new_object();
			break;
		default: /* STRING, ENUM, MAC: their command-line text */
			v = json_object_new_string(kv_opt_text(op, d, buf, sizeof(buf)));
			break;
		}
		json_object_object_add(o, op->json, v);
	}
	return o;
}

static json_object *bootloader_json(const struct kv_bootloader *b)
{
	const struct kv_boot_desc *t = kv_boot_desc_of(b->kind);
	if (!t)
		return NULL;
	json_object *o = kind_obj(t->json_kind);
	for (size_t i = 0; i < t->nopts; i++) {
		const struct kv_boot_opt *bo = &t->opts[i];
		if (bo->flag)
			put_bool(o, bo->json, *kv_boot_flag((struct kv_bootloader *)b, bo));
		else if (bo->omit_empty)
			put_opt_str(o, bo->json, *kv_boot_str((struct kv_bootloader *)b, bo));
		else
			put_str(o, bo->json, *kv_boot_str((struct kv_bootloader *)b, bo));
	}
	return o;
}

char *kv_config_to_json(const struct kv_config *c, unsigned flags)
{
	json_object *top = json_object_new_object();
	put_u64(top, "vcpus", c->cpus);
	put_u64(top, "memoryBytes", c->memory_bytes);
	json_object *b = bootloader_json(&c->boot);
	if (b)
		json_object_object_add(top, "bootloader", b);
	if (c->ndevices) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < c->ndevices; i++)
			json_object_array_add(arr, device_json(&c->devices[i], flags));
		json_object_object_add(top, "devices", arr);
	}
	if (c->has_timesync) {
		json_object *t = json_object_new_object();
		put_u64(t, "vsockPort", c->timesync_port);
		json_object_object_add(top, "timesync", t);
	}
	if (c->ignition) {
		json_object *ig = kind_obj("ignition");
		put_str(ig, "configPath", c->ignition);
		json_object_object_add(top, "ignition", ig);
	}
	put_opt_bool(top, "nested", c->nested);
	if (flags & KV_JSON_KVKIT_KEYS) {
		put_opt_str(top, "restfulURI", c->restful_uri);
		put_opt_bool(top, "gui", c->gui);
		if (c->log_level != KV_LOG_INFO)
			put_str(top, "logLevel", c->log_level == KV_LOG_DEBUG ? "debug" : "error");
		put_opt_str(top, "pidfile", c->pidfile);
		if (c->sandbox_off)
			put_str(top, "sandbox", "off");
		put_opt_str(top, "user", c->user);
		if (c->ncloud_init) {
			json_object *arr = json_object_new_array();
			for (size_t i = 0; i < c->ncloud_init; i++)
				json_object_array_add(arr, json_object_new_string(c->cloud_init[i]));
			json_object_object_add(top, "cloudInit", arr);
		}
	}
	const char *s = json_object_to_json_string_ext(top, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *out = s ? strdup(s) : NULL;
	json_object_put(top);
	return out;
}

/* ---------------- reading ---------------- */

struct rd {
	char *err;
	size_t errlen;
	const char *where; /* "devices[2] (virtioblk)" for messages */
};

/* Field lookup that treats null like absent. */
static json_object *get(json_object *o, const char *k)
{
	json_object *v;
	if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

static int get_str(struct rd *r, json_object *o, const char *k, char **dst)
{
	json_object *v = get(o, k);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return kv_fail(r->err, r->errlen, "%s: '%s' must be a string", r->where, k);
	char *s = strdup(json_object_get_string(v));
	if (!s)
		return kv_fail(r->err, r->errlen, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

static int get_bool(struct rd *r, json_object *o, const char *k, bool *dst)
{
	json_object *v = get(o, k);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return kv_fail(r->err, r->errlen, "%s: '%s' must be true or false", r->where, k);
	*dst = json_object_get_boolean(v);
	return 0;
}

static int get_u64(struct rd *r, json_object *o, const char *k, uint64_t max, uint64_t *dst, bool *present)
{
	json_object *v = get(o, k);
	if (present)
		*present = v != NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return kv_fail(r->err, r->errlen, "%s: '%s' must be an integer", r->where, k);
	/* json-c clamps out-of-range numbers; a negative one reads as 0 here */
	errno = 0;
	int64_t sv = json_object_get_int64(v);
	uint64_t uv = json_object_get_uint64(v);
	if (sv < 0 || errno || uv > max)
		return kv_fail(r->err, r->errlen, "%s: '%s' is out of range", r->where, k);
	*dst = uv;
	return 0;
}

static const char *kind_of(json_object *o)
{
	json_object *k = get(o, "kind");
	return k && json_object_is_type(k, json_type_string) ? json_object_get_string(k) : "";
}

/* Read one option by its table entry; *seen: it was given a value of its
 * own (what a command-line key being present means). */
static int read_opt(struct rd *r, json_object *o, const struct kv_device_desc *t, const struct kv_opt *op,
		    struct kv_device *d, unsigned flags, bool *seen)
{
	json_object *v = get(o, op->json);
	bool b = false;
	uint64_t u = 0;
	*seen = false;
	if (op->kind == KV_OPT_FD) {
		if (v && !(flags & KV_JSON_RUNTIME))
			return kv_fail(r->err, r->errlen,
				       "%s: a 'socket' (fd=) network cannot be read from JSON: a file descriptor is not serialisable",
				       r->where);
		return 0; /* a runtime document names it; the descriptor stays the VM's */
	}
	if ((op->flags & KV_OPT_RUNTIME) && !(flags & KV_JSON_RUNTIME)) {
		if (v && json_object_is_type(v, json_type_string) && *json_object_get_string(v))
			return kv_fail(r->err, r->errlen, "%s", op->bad);
		return 0;
	}
	switch (op->kind) {
	case KV_OPT_FLAG: /* absent is false (vsock's "listen": absent means connect) */
	case KV_OPT_SET:
	case KV_OPT_ONOFF:
		if (get_bool(r, o, op->json, &b))
			return -1;
		if (op->kind == KV_OPT_FLAG)
			kv_opt_set_int(d, op, b);
		else if (op->kind == KV_OPT_SET && b)
			kv_opt_set_int(d, op, op->value);
		else if (op->kind == KV_OPT_ONOFF && v)
			kv_opt_set_int(d, op, b);
		break;
	case KV_OPT_STRING: {
		char **dst = kv_opt_str(d, op);
		if (get_str(r, o, op->json, dst))
			return -1;
		if ((op->flags & KV_OPT_EMPTY_NULL) && *dst && !**dst) {
			free(*dst);
			*dst = NULL;
		}
		break;
	}
	case KV_OPT_LIST:
		if (!v)
			break;
		if (!json_object_is_type(v, json_type_array))
			return kv_fail(r->err, r->errlen, "%s: '%s' must be an array of strings", r->where, op->json);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *e = json_object_array_get_idx(v, i);
			if (!json_object_is_type(e, json_type_string))
				return kv_fail(r->err, r->errlen, "%s: '%s' must be an array of strings", r->where, op->json);
			const char *s = json_object_get_string(e), *why = op->check ? op->check(s) : NULL;
			if (why)
				return kv_fail(r->err, r->errlen, why, s);
			if (kv_opt_list_add(d, op, s))
				return kv_fail(r->err, r->errlen, "out of memory");
		}
		break;
	case KV_OPT_ENUM: {
		int e;
		if (!v)
			break;
		if (!json_object_is_type(v, json_type_string))
			return kv_fail(r->err, r->errlen, "%s: '%s' must be a string", r->where, op->json);
		const char *s = json_object_get_string(v);
		if (!*s) /* "" is the default (Go's omitempty zero value) */
			break;
		if (kv_opt_enum_value(op, s, &e) < 0)
			return kv_fail(r->err, r->errlen, op->bad, s);
		kv_opt_set_int(d, op, e);
		break;
	}
	case KV_OPT_UINT:
		if (get_u64(r, o, op->json, (uint64_t)op->max, &u, NULL))
			return -1;
		if (v) {
			kv_opt_set_int(d, op, (long long)u);
			if (kv_opt_presence(d, op))
				*kv_opt_presence(d, op) = true;
		}
		break;
	case KV_OPT_INT: {
		long long scale = op->json_scale ? op->json_scale : 1;
		if (!v)
			break;
		if (!json_object_is_type(v, json_type_int))
			return kv_fail(r->err, r->errlen, "%s: '%s' must be an integer", r->where, op->json);
		errno = 0;
		long long x = json_object_get_int64(v) / scale;
		if (errno || x < op->min || x > op->max)
			return kv_fail(r->err, r->errlen, "%s: '%s' is out of range", r->where, op->json);
		kv_opt_set_int(d, op, x);
		break;
	}
	case KV_OPT_MAC: {
		char *s = NULL;
		if (get_str(r, o, op->json, &s))
			return -1;
		int rc = s && *s && kv_parse_mac(s, kv_opt_mac(d, op)) < 0 ? kv_fail(r->err, r->errlen, op->bad, s) : 0;
		if (!rc && s && *s)
			*kv_opt_presence(d, op) = true;
		free(s);
		if (rc)
			return -1;
		break;
	}
	case KV_OPT_FD:
		break;
	}
	*seen = v && (op->kind == KV_OPT_ONOFF || kv_opt_differs(t, op, d));
	return 0;
}

/* A device by its table: every option the table gives a JSON key, then
 * the same finish and validation as the command line. */
static int read_device(struct rd *r, json_object *o, struct kv_config *c, unsigned flags)
{
	if (!json_object_is_type(o, json_type_object))
		return kv_fail(r->err, r->errlen, "%s: a device must be a JSON object", r->where);
	const char *kind = kind_of(o);
	const struct kv_device_desc *t = kv_desc_by_json_kind(kind);
	if (!t)
		return kv_fail(r->err, r->errlen, "unknown 'kind' field: '%s'", kind);
	struct kv_device *d = kv_config_add_device(c, t->kind);
	if (!d)
		return kv_fail(r->err, r->errlen, "out of memory");
	uint64_t seen = 0;
	for (size_t i = 0; i < t->nopts; i++) {
		bool s;
		if (!t->opts[i].json)
			continue;
		if (read_opt(r, o, t, &t->opts[i], d, flags, &s) < 0)
			return -1;
		if (s)
			seen |= KV_SEEN(i);
	}
	char sub[400];
	if (kv_device_finish(d, seen, sub, sizeof(sub)) < 0)
		return kv_fail(r->err, r->errlen, "%s: %s", r->where, sub);
	return 0;
}

static int read_bootloader(struct rd *r, json_object *o, struct kv_bootloader *b)
{
	if (!json_object_is_type(o, json_type_object))
		return kv_fail(r->err, r->errlen, "bootloader: must be a JSON object");
	const char *kind = kind_of(o);
	const struct kv_boot_desc *t = kv_boot_desc_by_json_kind(kind);
	if (!t)
		return kv_fail(r->err, r->errlen, "unknown 'kind' field: '%s'", kind);
	b->kind = t->kind;
	for (size_t i = 0; i < t->nopts; i++) {
		const struct kv_boot_opt *bo = &t->opts[i];
		if (bo->flag ? get_bool(r, o, bo->json, kv_boot_flag(b, bo)) : get_str(r, o, bo->json, kv_boot_str(b, bo)))
			return -1;
	}
	return kv_boot_check_required(t, b, r->err, r->errlen);
}

static int read_kvkit_keys(struct rd *r, json_object *top, struct kv_config *c)
{
	char *level = NULL, *sandbox = NULL;
	if (get_str(r, top, "restfulURI", &c->restful_uri) || get_bool(r, top, "gui", &c->gui) ||
	    get_str(r, top, "pidfile", &c->pidfile) || get_str(r, top, "logLevel", &level) ||
	    get_str(r, top, "sandbox", &sandbox) || get_str(r, top, "user", &c->user))
		return -1;
	if (sandbox) {
		int bad = kv_parse_sandbox(sandbox, &c->sandbox_off) < 0 ?
				  kv_fail(r->err, r->errlen, "sandbox: '%s' is not on or off", sandbox) : 0;
		free(sandbox);
		if (bad)
			return -1;
	}
	if (level) {
		int bad = 0;
		if (!strcmp(level, "debug")) c->log_level = KV_LOG_DEBUG;
		else if (!strcmp(level, "info")) c->log_level = KV_LOG_INFO;
		else if (!strcmp(level, "error")) c->log_level = KV_LOG_ERROR;
		else bad = kv_fail(r->err, r->errlen, "unknown log level: %s", level);
		free(level);
		if (bad)
			return -1;
	}
	json_object *ci = get(top, "cloudInit");
	if (ci) {
		if (!json_object_is_type(ci, json_type_array))
			return kv_fail(r->err, r->errlen, "'cloudInit' must be an array of paths");
		size_t n = json_object_array_length(ci);
		char **v = calloc(n + 1, sizeof(char *));
		if (!v)
			return kv_fail(r->err, r->errlen, "out of memory");
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_array_get_idx(ci, i);
			if (!json_object_is_type(e, json_type_string) || !(v[i] = strdup(json_object_get_string(e)))) {
				for (size_t j = 0; j < i; j++)
					free(v[j]);
				free(v);
				return kv_fail(r->err, r->errlen, "'cloudInit' must be an array of paths");
			}
		}
		for (size_t i = 0; i < c->ncloud_init; i++)
			free(c->cloud_init[i]);
		free(c->cloud_init);
		c->cloud_init = v;
		c->ncloud_init = n;
	}
	return 0;
}

int kv_config_from_json(const char *text, struct kv_config *c, unsigned flags, char *err, size_t errlen)
{
	struct rd r = { err, errlen, "configuration" };
	enum json_tokener_error jerr;
	err[0] = 0;
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		return kv_fail(err, errlen, "out of memory");
	size_t len = strlen(text);
	json_object *top = json_tokener_parse_ex(tok, text, (int)(len > INT32_MAX ? INT32_MAX : len));
	jerr = json_tokener_get_error(tok);
	if (!top && jerr == json_tokener_continue)
		jerr = json_tokener_error_parse_eof;
	/* anything but blanks after the document is an error, as in Go */
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!top || jerr != json_tokener_success) {
		json_object_put(top);
		return kv_fail(err, errlen, "invalid JSON: %s", json_tokener_error_desc(jerr));
	}
	while (used < len && strchr(" \t\r\n", text[used]))
		used++;
	int rc = -1;
	if (used < len) {
		kv_fail(err, errlen, "invalid JSON: unexpected data after the top-level value");
		goto out;
	}
	if (!json_object_is_type(top, json_type_object)) {
		kv_fail(err, errlen, "invalid JSON: the configuration must be an object");
		goto out;
	}
	uint64_t u;
	bool present;
	if (get_u64(&r, top, "vcpus", UINT32_MAX, &u, &present))
		goto out;
	if (present)
		c->cpus = (uint32_t)u;
	if (get_u64(&r, top, "memoryBytes", UINT64_MAX, &u, &present))
		goto out;
	if (present)
		c->memory_bytes = u;
	json_object *b = get(top, "bootloader");
	if (b && read_bootloader(&r, b, &c->boot))
		goto out;
	json_object *devs = get(top, "devices");
	if (devs) {
		if (!json_object_is_type(devs, json_type_array)) {
			kv_fail(err, errlen, "'devices' must be an array");
			goto out;
		}
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			json_object *d = json_object_array_get_idx(devs, i);
			char where[64];
			snprintf(where, sizeof(where), "devices[%zu]", i);
			r.where = where;
			if (read_device(&r, d, c, flags))
				goto out;
		}
		r.where = "configuration";
	}
	json_object *ts = get(top, "timesync");
	if (ts) {
		r.where = "timesync";
		if (!json_object_is_type(ts, json_type_object) || get_u64(&r, ts, "vsockPort", UINT32_MAX, &u, &present))
			goto out_type;
		if (!present) {
			kv_fail(err, errlen, "missing 'vsockPort' option for timesync parameter");
			goto out;
		}
		c->has_timesync = true;
		c->timesync_port = (uint32_t)u;
	}
	json_object *ig = get(top, "ignition");
	if (ig) {
		r.where = "ignition";
		if (!json_object_is_type(ig, json_type_object) || get_str(&r, ig, "configPath", &c->ignition))
			goto out_type;
	}
	r.where = "configuration";
	if (get_bool(&r, top, "nested", &c->nested))
		goto out;
	if ((flags & KV_JSON_KVKIT_KEYS) && read_kvkit_keys(&r, top, c))
		goto out;
	kv_config_normalize_gui(c);
	rc = 0;
	goto out;
out_type:
	if (!*err)
		kv_fail(err, errlen, "'%s' must be a JSON object", r.where);
out:
	json_object_put(top);
	return rc;
}
