/* libkvkit: the canonical vfkit command line for a configuration (spec
 * 5.3). */
#include <kvkit/cmdline.h>
#include <kvkit/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device_options.h"
#include "internal.h"


/* ---------------- argv building ---------------- */

struct av {
	char **v;
	int n;
	bool oom;
};

static void push(struct av *a, const char *s)
{
	char **nv = realloc(a->v, (a->n + 2) * sizeof(char *));
	char *c = strdup(s);
	if (!nv || !c) {
		free(c);
		if (nv)
			a->v = nv;
		a->oom = true;
		return;
	}
	a->v = nv;
	a->v[a->n++] = c;
	a->v[a->n] = NULL;
}

/* A growing option string: "type,k=v,flag". */
struct opts {
	char buf[8192];
	size_t len;
	const char *bad; /* the value that contained a comma */
	bool toolong;
};

static void add(struct opts *o, const char *key, const char *val)
{
	if (val && strchr(val, ',') && !o->bad)
		o->bad = val;
	int n = snprintf(o->buf + o->len, sizeof(o->buf) - o->len, "%s%s%s%s", o->len ? "," : "", key, val ? "=" : "",
			 val ? val : "");
	if (n < 0 || (size_t)n >= sizeof(o->buf) - o->len)
		o->toolong = true;
	else
		o->len += n;
}

/* A device's option list: its type, then each option its table says to
 * print, in the table's print order. */
static void device_opts(const struct kv_device *d, struct opts *o)
{
	const struct kv_device_desc *t = kv_desc_of(d->kind);
	char buf[32];
	add(o, kv_device_type_name(d->kind), NULL);
	if (!t)
		return;
	for (size_t n = 0; t->print_order ? t->print_order[n] != NULL : n < t->nopts; n++) {
		int i = t->print_order ? kv_opt_find_print(t, t->print_order[n]) : (int)n;
		if (i < 0)
			continue;
		const struct kv_opt *op = &t->opts[i];
		if (!kv_opt_print_wanted(t, op, d))
			continue;
		if (op->kind == KV_OPT_LIST)
			for (size_t j = 0; j < kv_opt_list_len(d, op); j++)
				add(o, op->key, kv_opt_list_item(d, op, j));
		else
			add(o, op->key, kv_opt_text(op, d, buf, sizeof(buf)));
	}
}

/* Does "linux,cmdline=<form>" parse back to exactly cmdline? (the quote
 * rules of spec 2.3a: quotes toggle, outer quotes of the value are trimmed) */
static bool cmdline_round_trips(const char *form, const char *cmdline)
{
	char *list = malloc(strlen(form) + 16), **v, e[64];
	if (!list)
		return false;
	sprintf(list, "linux,cmdline=%s", form);
	int n = kv_split_options(list, true, &v, e, sizeof(e));
	free(list);
	if (n != 2) {
		kv_free_strv(v, n > 0 ? n : 0);
		return false;
	}
	const char *val = v[1] + strlen("cmdline=");
	size_t l = strlen(val);
	if (l >= 2 && val[0] == '"' && val[l - 1] == '"') {
		while (*val == '"') {
			val++;
			l--;
		}
		while (l && val[l - 1] == '"')
			l--;
	}
	bool same = strncmp(v[1], "cmdline=", 8) == 0 && l == strlen(cmdline) && !strncmp(val, cmdline, l);
	kv_free_strv(v, n);
	return same;
}

/* cmdline="C" when that reads back as C (commas allowed), else the bare
 * form when that does (e.g. C ends in a quote), else -1. */
static int cmdline_opt(struct opts *o, const char *cmdline)
{
	size_t l = strlen(cmdline);
	char *quoted = malloc(l + 3);
	if (!quoted)
		return -1;
	sprintf(quoted, "\"%s\"", cmdline);
	const char *form = cmdline_round_trips(quoted, cmdline) ? quoted : cmdline_round_trips(cmdline, cmdline) ? cmdline : NULL;
	if (form) {
		/* add() would flag the commas a quoted cmdline may hold */
		int n = snprintf(o->buf + o->len, sizeof(o->buf) - o->len, ",cmdline=%s", form);
		if (n < 0 || (size_t)n >= sizeof(o->buf) - o->len)
			o->toolong = true;
		else
			o->len += n;
	}
	free(quoted);
	return form ? 0 : -1;
}

static int flush_opts(struct av *a, const char *flag, struct opts *o, char *err, size_t errlen)
{
	if (o->bad)
		return kv_fail(err, errlen, "%s: the value '%s' contains a comma, which this syntax cannot carry", flag, o->bad);
	if (o->toolong)
		return kv_fail(err, errlen, "%s: option list too long", flag);
	push(a, flag);
	push(a, o->buf);
	return 0;
}

int kv_config_to_argv(const struct kv_config *c, char ***argv, int *argc, char *err, size_t errlen)
{
	struct av a = { 0 };
	char num[32];
	int rc = -1;

	*argv = NULL;
	*argc = 0;
	/* a configuration built by the constructors meets the same rules */
	if (kv_config_validate(c, err, errlen) < 0)
		return -1;
	if (c->cpus) {
		snprintf(num, sizeof(num), "%u", c->cpus);
		push(&a, "--cpus");
		push(&a, num);
	}
	if (c->memory_bytes) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)((c->memory_bytes + (1 << 20) - 1) >> 20));
		push(&a, "--memory");
		push(&a, num);
	}
	struct opts o = { .len = 0 };
	const struct kv_bootloader *b = &c->boot;
	if (b->kind == KV_BOOT_LINUX) {
		add(&o, "linux", NULL);
		add(&o, "kernel", b->kernel);
		if (b->initrd && *b->initrd)
			add(&o, "initrd", b->initrd);
		if (b->cmdline && *b->cmdline && cmdline_opt(&o, b->cmdline) < 0) {
			kv_fail(err, errlen, "--bootloader: the kernel command line '%s' cannot be written in option-list syntax",
			     b->cmdline);
			goto out;
		}
		if ((b->kernel && strchr(b->kernel, ',')) || (b->initrd && strchr(b->initrd, ',')))
			o.bad = strchr(b->kernel, ',') ? b->kernel : b->initrd;
		if (flush_opts(&a, "--bootloader", &o, err, errlen) < 0)
			goto out;
	} else if (b->kind == KV_BOOT_EFI) {
		add(&o, "efi", NULL);
		add(&o, "variable-store", b->efi_store);
		if (b->efi_create)
			add(&o, "create", NULL);
		if (b->efi_firmware)
			add(&o, "firmware", b->efi_firmware);
		if (b->efi_vars_template)
			add(&o, "vars-template", b->efi_vars_template);
		if (flush_opts(&a, "--bootloader", &o, err, errlen) < 0)
			goto out;
	}
	for (size_t i = 0; i < c->ndevices; i++) {
		memset(&o, 0, sizeof(o));
		device_opts(&c->devices[i], &o);
		if (flush_opts(&a, "--device", &o, err, errlen) < 0)
			goto out;
	}
	if (c->ignition) {
		push(&a, "--ignition");
		push(&a, c->ignition);
	}
	if (c->nested)
		push(&a, "--nested");
	if (c->has_timesync) {
		snprintf(num, sizeof(num), "vsockPort=%u", c->timesync_port);
		push(&a, "--timesync");
		push(&a, num);
	}
	/* kvkit prints what vfkit's printer drops (spec 11) */
	if (c->restful_uri) {
		push(&a, "--restful-uri");
		push(&a, c->restful_uri);
	}
	if (c->gui)
		push(&a, "--gui");
	if (c->log_level != KV_LOG_INFO) {
		push(&a, "--log-level");
		push(&a, c->log_level == KV_LOG_DEBUG ? "debug" : "error");
	}
	if (c->pidfile && *c->pidfile) {
		push(&a, "--pidfile");
		push(&a, c->pidfile);
	}
	if (c->sandbox_off) {
		push(&a, "--sandbox");
		push(&a, "off");
	}
	if (c->user) {
		push(&a, "--user");
		push(&a, c->user);
	}
	for (size_t i = 0; i < c->ncloud_init; i++) {
		if (strchr(c->cloud_init[i], ',') || strchr(c->cloud_init[i], '"')) {
			kv_fail(err, errlen, "--cloud-init: the path '%s' cannot be written in option-list syntax", c->cloud_init[i]);
			goto out;
		}
		push(&a, "--cloud-init");
		push(&a, c->cloud_init[i]);
	}
	if (a.oom) {
		kv_fail(err, errlen, "out of memory");
		goto out;
	}
	*argv = a.v;
	*argc = a.n;
	return 0;
out:
	kv_free_strv(a.v, a.n);
	return rc;
}
