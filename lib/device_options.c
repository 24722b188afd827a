/* libkvkit: the engine behind the device option tables (device_options.h):
 * field access, text <-> value for the command line, defaults, and the
 * validator every input path runs. */
#include <ctype.h>
#include <errno.h>
#include <kvkit/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device_options.h"
#include "internal.h"

/* ---------------- lookups ---------------- */

const struct kv_device_desc *kv_desc_of(enum kv_dev_kind kind)
{
	for (size_t i = 0; i < kv_ndevice_descs; i++)
		if (kv_device_descs[i]->kind == kind)
			return kv_device_descs[i];
	return NULL;
}

const struct kv_device_desc *kv_desc_by_type(const char *type)
{
	for (size_t i = 0; i < kv_ndevice_descs; i++)
		if (!strcmp(kv_device_descs[i]->type, type))
			return kv_device_descs[i];
	return NULL;
}

const struct kv_device_desc *kv_desc_by_json_kind(const char *json_kind)
{
	for (size_t i = 0; i < kv_ndevice_descs; i++)
		if (!strcmp(kv_device_descs[i]->json_kind, json_kind))
			return kv_device_descs[i];
	return NULL;
}

int kv_opt_find(const struct kv_device_desc *t, const char *key)
{
	for (size_t i = 0; i < t->nopts; i++) {
		const struct kv_opt *o = &t->opts[i];
		if ((o->key && !strcmp(o->key, key)) || (o->alias && !strcmp(o->alias, key)))
			return (int)i;
	}
	return -1;
}

int kv_opt_find_print(const struct kv_device_desc *t, const char *key)
{
	for (size_t i = 0; i < t->nopts; i++)
		if (t->opts[i].key && !strcmp(t->opts[i].key, key))
			return (int)i;
	return -1;
}

const char *kv_device_type_name(enum kv_dev_kind kind)
{
	const struct kv_device_desc *t = kv_desc_of(kind);
	return t ? t->type : "unknown";
}

/* ---------------- fields ---------------- */

static void *field(const struct kv_device *d, size_t off)
{
	return (char *)d + off;
}

long long kv_opt_get_int(const struct kv_device *d, const struct kv_opt *o)
{
	void *p = field(d, o->off);
	switch (o->size) {
	case 1: return *(uint8_t *)p;
	case 4: return o->kind == KV_OPT_UINT ? (long long)*(uint32_t *)p : (long long)*(int32_t *)p;
	case 8: return *(int64_t *)p;
	default: return 0;
	}
}

void kv_opt_set_int(struct kv_device *d, const struct kv_opt *o, long long v)
{
	void *p = field(d, o->off);
	switch (o->size) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 4: if (o->kind == KV_OPT_UINT) *(uint32_t *)p = (uint32_t)v; else *(int32_t *)p = (int32_t)v; break;
	case 8: *(int64_t *)p = v; break;
	default: break;
	}
}

char **kv_opt_str(struct kv_device *d, const struct kv_opt *o)
{
	return (char **)field(d, o->off);
}

const char *kv_opt_cstr(const struct kv_device *d, const struct kv_opt *o)
{
	return *(char *const *)field(d, o->off);
}

bool *kv_opt_presence(struct kv_device *d, const struct kv_opt *o)
{
	return o->off2 ? (bool *)field(d, o->off2) : NULL;
}

uint8_t *kv_opt_mac(struct kv_device *d, const struct kv_opt *o)
{
	return (uint8_t *)field(d, o->off);
}

size_t kv_opt_list_len(const struct kv_device *d, const struct kv_opt *o)
{
	return *(size_t *)field(d, o->off2);
}

const char *kv_opt_list_item(const struct kv_device *d, const struct kv_opt *o, size_t i)
{
	return (*(char **const *)field(d, o->off))[i];
}

int kv_opt_list_add(struct kv_device *d, const struct kv_opt *o, const char *s)
{
	char ***v = (char ***)field(d, o->off);
	size_t *n = (size_t *)field(d, o->off2);
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -1;
	(*n)++;
	return 0;
}

const char *kv_opt_enum_name(const struct kv_opt *o, long long v)
{
	for (const struct kv_opt_name *n = o->names; n && n->name; n++)
		if (n->value == v)
			return n->name;
	return NULL;
}

int kv_opt_enum_value(const struct kv_opt *o, const char *name, int *v)
{
	for (const struct kv_opt_name *n = o->names; n && n->name; n++)
		if (!strcmp(n->name, name)) {
			*v = n->value;
			return 0;
		}
	return -1;
}

/* Go net.ParseMAC, restricted to 6-byte addresses. */
int kv_parse_mac(const char *s, uint8_t mac[6])
{
	size_t l = strlen(s);
	int hexv[12], nh = 0;
	if (l == 17 && (s[2] == ':' || s[2] == '-')) {
		for (size_t i = 0; i < l; i++) {
			if (i % 3 == 2) {
				if (s[i] != s[2]) return -1;
			} else {
				if (!isxdigit((unsigned char)s[i])) return -1;
				hexv[nh++] = isdigit((unsigned char)s[i]) ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10;
			}
		}
	} else if (l == 14 && s[4] == '.' && s[9] == '.') {
		for (size_t i = 0; i < l; i++) {
			if (i % 5 == 4) continue;
			if (!isxdigit((unsigned char)s[i])) return -1;
			hexv[nh++] = isdigit((unsigned char)s[i]) ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10;
		}
	} else {
		return -1;
	}
	for (int i = 0; i < 6; i++)
		mac[i] = hexv[2 * i] << 4 | hexv[2 * i + 1];
	return 0;
}

void kv_format_mac(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* ---------------- command-line text ---------------- */

static const char *what(const struct kv_device_desc *t, const struct kv_opt *o, char *buf, size_t len)
{
	if (o->what)
		return o->what;
	snprintf(buf, len, "%s '%s'", t->type, o->key);
	return buf;
}

/* A decimal integer, the whole text, within [min, max]. */
static int decimal(const char *v, bool is_unsigned, long long min, long long max, long long *out)
{
	char *end;
	if (!*v || (is_unsigned && !isdigit((unsigned char)*v)))
		return -1;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (*end || errno || x < min || x > max)
		return -1;
	*out = x;
	return 0;
}

int kv_opt_parse_text(const struct kv_device_desc *t, const struct kv_opt *o, struct kv_device *d, const char *val,
		      char *err, size_t errlen)
{
	const char *v = val ? val : "";
	char wb[96];
	long long x;
	int e;
	switch (o->kind) {
	case KV_OPT_FLAG:
	case KV_OPT_SET:
		if (*v) {
			if (!(o->flags & KV_OPT_WARN_VALUE))
				return kv_fail(err, errlen, "unexpected value for %s option: %s", what(t, o, wb, sizeof(wb)), v);
			fprintf(stderr, "time=\"\" level=warning msg=\"ignoring value '%s' of the %s option\"\n", v,
				what(t, o, wb, sizeof(wb)));
		}
		if (o->size)
			kv_opt_set_int(d, o, o->kind == KV_OPT_FLAG ? 1 : o->value);
		return 0;
	case KV_OPT_STRING: {
		const char *why = o->check ? o->check(v) : NULL;
		if (why)
			return kv_fail(err, errlen, why, v);
		char *n = strdup(v), **dst = kv_opt_str(d, o);
		if (!n)
			return kv_fail(err, errlen, "out of memory");
		free(*dst);
		*dst = n;
		return 0;
	}
	case KV_OPT_LIST: {
		const char *why = o->check ? o->check(v) : NULL;
		if (why)
			return kv_fail(err, errlen, why, v);
		return kv_opt_list_add(d, o, v) ? kv_fail(err, errlen, "out of memory") : 0;
	}
	case KV_OPT_ENUM:
	case KV_OPT_ONOFF: {
		static const struct kv_opt_name onoff[] = { { "on", 1 }, { "off", 0 }, { NULL, 0 } };
		struct kv_opt tmp = *o;
		if (o->kind == KV_OPT_ONOFF)
			tmp.names = onoff;
		if (kv_opt_enum_value(&tmp, v, &e) < 0)
			return kv_fail(err, errlen, o->bad, v);
		if (o->size)
			kv_opt_set_int(d, o, e);
		return 0;
	}
	case KV_OPT_UINT:
	case KV_OPT_INT:
	case KV_OPT_FD: {
		if (decimal(v, o->kind != KV_OPT_INT, o->min, o->max, &x) < 0)
			return kv_fail(err, errlen, o->bad, v);
		const char *why = o->check ? o->check(v) : NULL;
		if (why)
			return kv_fail(err, errlen, why, v);
		kv_opt_set_int(d, o, x);
		if (kv_opt_presence(d, o))
			*kv_opt_presence(d, o) = true;
		return 0;
	}
	case KV_OPT_MAC:
		if (kv_parse_mac(v, (uint8_t *)field(d, o->off)) < 0)
			return kv_fail(err, errlen, o->bad, v);
		*kv_opt_presence(d, o) = true;
		return 0;
	}
	return 0;
}

const char *kv_opt_text(const struct kv_opt *o, const struct kv_device *d, char *buf, size_t len)
{
	switch (o->kind) {
	case KV_OPT_FLAG:
	case KV_OPT_SET:
		return NULL;
	case KV_OPT_STRING: {
		const char *s = kv_opt_cstr(d, o);
		return s ? s : "";
	}
	case KV_OPT_LIST:
		return NULL; /* one key per item: the printer walks them */
	case KV_OPT_ENUM: {
		const char *n = kv_opt_enum_name(o, kv_opt_get_int(d, o));
		return n ? n : "";
	}
	case KV_OPT_ONOFF:
		return kv_opt_get_int(d, o) ? "on" : "off";
	case KV_OPT_UINT:
	case KV_OPT_INT:
	case KV_OPT_FD:
		snprintf(buf, len, "%lld", kv_opt_get_int(d, o));
		return buf;
	case KV_OPT_MAC:
		kv_format_mac((const uint8_t *)field(d, o->off), buf);
		return buf;
	}
	return NULL;
}

/* ---------------- defaults ---------------- */

static void defaults(const struct kv_device_desc *t, struct kv_device *d)
{
	memset(d, 0, sizeof(*d));
	d->kind = t->kind;
	if (t->init)
		t->init(d);
}

/* Is the option set to something other than the device's default? */
bool kv_opt_differs(const struct kv_device_desc *t, const struct kv_opt *o, const struct kv_device *d)
{
	struct kv_device def;
	switch (o->kind) {
	case KV_OPT_STRING: {
		const char *s = kv_opt_cstr(d, o);
		return s && *s;
	}
	case KV_OPT_LIST:
		return kv_opt_list_len(d, o) > 0;
	case KV_OPT_MAC:
		return *(const bool *)field(d, o->off2);
	case KV_OPT_SET:
		return o->size && kv_opt_get_int(d, o) == o->value;
	case KV_OPT_UINT:
		if (o->off2)
			return *(const bool *)field(d, o->off2);
		/* fall through */
	default:
		if (!o->size)
			return false;
		defaults(t, &def);
		return kv_opt_get_int(d, o) != kv_opt_get_int(&def, o);
	}
}

bool kv_opt_print_wanted(const struct kv_device_desc *t, const struct kv_opt *o, const struct kv_device *d)
{
	if (!o->key)
		return false;
	return o->print_if ? o->print_if(d) : kv_opt_differs(t, o, d);
}

bool kv_opt_json_wanted(const struct kv_device_desc *t, const struct kv_opt *o, const struct kv_device *d)
{
	if (!o->json)
		return false;
	return o->json_if ? o->json_if(d) : kv_opt_differs(t, o, d);
}

/* ---------------- validation ---------------- */

static int check_values(const struct kv_device_desc *t, const struct kv_device *d, char *err, size_t errlen)
{
	char buf[32];
	for (size_t i = 0; i < t->nopts; i++) {
		const struct kv_opt *o = &t->opts[i];
		const char *text = NULL, *why;
		switch (o->kind) {
		case KV_OPT_STRING:
			text = kv_opt_cstr(d, o);
			if (!text || !*text)
				continue;
			break;
		case KV_OPT_LIST:
			for (size_t j = 0; j < kv_opt_list_len(d, o); j++)
				if (o->check && (why = o->check(kv_opt_list_item(d, o, j))))
					return kv_fail(err, errlen, why, kv_opt_list_item(d, o, j));
			continue;
		case KV_OPT_UINT:
		case KV_OPT_INT: {
			long long v = kv_opt_get_int(d, o);
			snprintf(buf, sizeof(buf), "%lld", v);
			if ((o->kind == KV_OPT_INT || !o->off2 || *(const bool *)field(d, o->off2)) && (v < o->min || v > o->max))
				return kv_fail(err, errlen, o->bad, buf);
			text = buf;
			break;
		}
		default:
			continue;
		}
		if (o->check && (why = o->check(text)))
			return kv_fail(err, errlen, why, text);
	}
	return 0;
}

int kv_device_validate(const struct kv_device *d, char *err, size_t errlen)
{
	const struct kv_device_desc *t = kv_desc_of(d->kind);
	if (!t)
		return kv_fail(err, errlen, "unknown device kind %d", (int)d->kind);
	if (check_values(t, d, err, errlen) < 0)
		return -1;
	return t->rules ? t->rules(d, err, errlen) : 0;
}

int kv_config_validate(const struct kv_config *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->ndevices; i++) {
		char sub[400];
		if (kv_device_validate(&c->devices[i], sub, sizeof(sub)) < 0)
			return kv_fail(err, errlen, "--device %s: %s", kv_device_type_name(c->devices[i].kind), sub);
	}
	return 0;
}

int kv_device_finish(struct kv_device *d, uint64_t seen, char *err, size_t errlen)
{
	const struct kv_device_desc *t = kv_desc_of(d->kind);
	if (t && t->derive && t->derive(d, seen, err, errlen) < 0)
		return -1;
	return kv_device_validate(d, err, errlen);
}

void kv_device_init(struct kv_device *d, enum kv_dev_kind kind)
{
	const struct kv_device_desc *t = kv_desc_of(kind);
	if (t) {
		defaults(t, d);
		return;
	}
	memset(d, 0, sizeof(*d));
	d->kind = kind;
}

void kv_device_free_fields(struct kv_device *d)
{
	const struct kv_device_desc *t = kv_desc_of(d->kind);
	if (!t)
		return;
	for (size_t i = 0; i < t->nopts; i++) {
		const struct kv_opt *o = &t->opts[i];
		if (o->kind == KV_OPT_STRING) {
			char **s = kv_opt_str(d, o);
			free(*s);
			*s = NULL; /* two options may share a field (path= and unixSocketPath=) */
		} else if (o->kind == KV_OPT_LIST) {
			char ***v = (char ***)field(d, o->off);
			size_t *n = (size_t *)field(d, o->off2);
			for (size_t j = 0; j < *n; j++)
				free((*v)[j]);
			free(*v);
			*v = NULL;
			*n = 0;
		}
	}
}
