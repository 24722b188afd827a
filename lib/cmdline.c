/* vfkit command-line parser (spec section 2): Go pflag flag syntax, the
 * bootloader and device option lists, and their validation texts. */
#include <ctype.h>
#include <errno.h>
#include <kvkit/cmdline.h>
#include <kvkit/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "boot_options.h"
#include "device_options.h"
#include "internal.h"

struct perr {
	char *buf;
	size_t len;
};

static int fail(struct perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct perr *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
	return -1;
}

static int set_str(char **dst, const char *v)
{
	char *n = strdup(v);
	if (!n)
		return -1;
	free(*dst);
	*dst = n;
	return 0;
}

/* ---------------- flags ---------------- */

enum flag_kind { F_UINT, F_STRING, F_BOOL, F_LIST_QUOTED, F_DEVICE };

enum flag_id {
	FL_CPUS, FL_MEMORY, FL_BOOTLOADER, FL_KERNEL, FL_INITRD, FL_CMDLINE, FL_DEVICE, FL_TIMESYNC,
	FL_RESTFUL_URI, FL_LOG_LEVEL, FL_GUI, FL_IGNITION, FL_CLOUD_INIT, FL_NESTED, FL_PIDFILE, FL_SANDBOX, FL_USER,
	FL_VERSION, FL_HELP, FL_CONFIG, FL_COUNT
};

static const struct flag {
	const char *name;
	char shorthand;
	enum flag_kind kind;
} flags[FL_COUNT] = {
	[FL_CPUS] = { "cpus", 'c', F_UINT },
	[FL_MEMORY] = { "memory", 'm', F_UINT },
	[FL_BOOTLOADER] = { "bootloader", 'b', F_LIST_QUOTED },
	[FL_KERNEL] = { "kernel", 'k', F_STRING },
	[FL_INITRD] = { "initrd", 'i', F_STRING },
	[FL_CMDLINE] = { "kernel-cmdline", 'C', F_STRING },
	[FL_DEVICE] = { "device", 'd', F_DEVICE },
	[FL_TIMESYNC] = { "timesync", 't', F_STRING },
	[FL_RESTFUL_URI] = { "restful-uri", 0, F_STRING },
	[FL_LOG_LEVEL] = { "log-level", 0, F_STRING },
	[FL_GUI] = { "gui", 0, F_BOOL },
	[FL_IGNITION] = { "ignition", 0, F_STRING },
	[FL_CLOUD_INIT] = { "cloud-init", 0, F_LIST_QUOTED },
	[FL_NESTED] = { "nested", 'n', F_BOOL },
	[FL_PIDFILE] = { "pidfile", 0, F_STRING },
	[FL_SANDBOX] = { "sandbox", 0, F_STRING }, /* kvkit only */
	[FL_USER] = { "user", 0, F_STRING },       /* kvkit only */
	[FL_VERSION] = { "version", 'v', F_BOOL },
	[FL_HELP] = { "help", 'h', F_BOOL },
	[FL_CONFIG] = { "config", 0, F_STRING }, /* kvkit only (spec 12) */
};

const char *kv_usage(void)
{
	return "kvkit: a command-line hypervisor for Linux guests on KVM, compatible with vfkit\n"
	       "\n"
	       "Usage:\n"
	       "  kvkit [flags]\n"
	       "\n"
	       "Flags:\n"
	       "  -b, --bootloader stringArray   bootloader configuration: linux,kernel=PATH[,initrd=PATH][,cmdline=\"...\"]\n"
	       "                                 or efi,variable-store=PATH[,create][,firmware=CODE.fd][,vars-template=VARS.fd]\n"
	       "      --cloud-init stringArray   cloud-init files (user-data, meta-data, network-config)\n"
	       "      --config string            the whole VM as a JSON file (the /vm/inspect format); flags apply on top\n"
	       "  -c, --cpus uint                number of virtual CPUs (default 1)\n"
	       "  -d, --device stringArray       devices, e.g. virtio-serial,stdio | virtio-rng | virtio-blk,path=disk.img\n"
	       "      --gui                      show a window with the virtio-gpu output\n"
	       "  -h, --help                     help for kvkit\n"
	       "      --ignition string          Ignition config served to the guest on vsock port 1024\n"
	       "  -i, --initrd string            (deprecated) initrd for the linux bootloader\n"
	       "  -k, --kernel string            (deprecated) kernel for the linux bootloader\n"
	       "  -C, --kernel-cmdline string    (deprecated) kernel command line for the linux bootloader\n"
	       "      --log-level string         debug, info or error (default info)\n"
	       "  -m, --memory uint              guest memory in MiB (default 512)\n"
	       "  -n, --nested                   expose nested virtualization to the guest\n"
	       "      --pidfile string           write kvkit's PID to this file\n"
	       "      --restful-uri string       REST API address: tcp://HOST:PORT, unix:///PATH or none:// (default \"none://\")\n"
	       "      --sandbox string           on or off: the system-call filter (default on; docs/security.md)\n"
	       "  -t, --timesync string          vsockPort=N: sync the guest clock through qemu-guest-agent\n"
	       "      --user string              started as root: become this user (name or uid) once everything is open\n"
	       "  -v, --version                  print the version\n";
}

static const char *flag_display(const struct flag *f, char *buf, size_t len)
{
	if (f->shorthand)
		snprintf(buf, len, "-%c, --%s", f->shorthand, f->name);
	else
		snprintf(buf, len, "--%s", f->name);
	return buf;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *t[] = { "1", "t", "T", "true", "TRUE", "True" };
	static const char *f[] = { "0", "f", "F", "false", "FALSE", "False" };
	for (int i = 0; i < 6; i++) {
		if (!strcmp(v, t[i])) { *out = true; return 0; }
		if (!strcmp(v, f[i])) { *out = false; return 0; }
	}
	return -1;
}

struct parse_state {
	struct kv_config *cfg;
	bool changed[FL_COUNT];
	char **boot_opts;
	int nboot;
	char **devices;
	int ndevices;
	char *kernel, *initrd, *cmdline, *timesync, *config;
	bool version, help;
};

static int append_strv(char ***v, int *n, char **add, int nadd)
{
	char **nv = realloc(*v, (*n + nadd + 1) * sizeof(char *));
	if (!nv)
		return -1;
	*v = nv;
	for (int i = 0; i < nadd; i++)
		nv[(*n)++] = add[i];
	return 0;
}

static int set_flag(struct parse_state *ps, enum flag_id id, const char *v, struct perr *e)
{
	const struct flag *f = &flags[id];
	struct kv_config *c = ps->cfg;
	char disp[64], reason[200];

	ps->changed[id] = true;
	switch (f->kind) {
	case F_BOOL: {
		bool b;
		if (parse_bool(v, &b) < 0)
			return fail(e, "invalid argument \"%s\" for \"%s\" flag: strconv.ParseBool: parsing \"%s\": invalid syntax",
				    v, flag_display(f, disp, sizeof(disp)), v);
		if (id == FL_GUI) c->gui = b;
		else if (id == FL_NESTED) c->nested = b;
		else if (id == FL_VERSION) ps->version = b;
		else if (id == FL_HELP) ps->help = b;
		return 0;
	}
	case F_UINT: {
		uint64_t n;
		if (kv_parse_uint(v, 64, &n, reason, sizeof(reason)) < 0)
			return fail(e, "invalid argument \"%s\" for \"%s\" flag: %s", v, flag_display(f, disp, sizeof(disp)), reason);
		if (id == FL_CPUS) {
			if (n > UINT32_MAX)
				return fail(e, "invalid virtual machine configuration: %llu vCPUs is more than KVM allows",
					    (unsigned long long)n);
			c->cpus = n;
		} else {
			if (n > UINT64_MAX >> 20)
				return fail(e, "invalid virtual machine configuration: %llu MiB of memory cannot be mapped",
					    (unsigned long long)n);
			c->memory_bytes = n << 20;
		}
		return 0;
	}
	case F_LIST_QUOTED: {
		char **v2;
		int n = kv_split_options(v, true, &v2, e->buf, e->len);
		if (n < 0)
			return -1;
		if (id == FL_BOOTLOADER)
			return append_strv(&ps->boot_opts, &ps->nboot, v2, n) < 0 ? fail(e, "out of memory") : (free(v2), 0);
		char **nv = realloc(c->cloud_init, (c->ncloud_init + n + 1) * sizeof(char *));
		if (!nv) {
			kv_free_strv(v2, n);
			return fail(e, "out of memory");
		}
		c->cloud_init = nv;
		for (int i = 0; i < n; i++)
			nv[c->ncloud_init++] = v2[i];
		free(v2);
		return 0;
	}
	case F_DEVICE: {
		char *d = strdup(v);
		if (!d || append_strv(&ps->devices, &ps->ndevices, &d, 1) < 0) {
			free(d);
			return fail(e, "out of memory");
		}
		return 0;
	}
	case F_STRING:
		switch (id) {
		case FL_KERNEL: return set_str(&ps->kernel, v);
		case FL_INITRD: return set_str(&ps->initrd, v);
		case FL_CMDLINE: return set_str(&ps->cmdline, v);
		case FL_TIMESYNC: return set_str(&ps->timesync, v);
		case FL_RESTFUL_URI: return set_str(&c->restful_uri, v);
		case FL_IGNITION: return set_str(&c->ignition, v);
		case FL_PIDFILE: return set_str(&c->pidfile, v);
		case FL_USER:
			if (!*v)
				return fail(e, "--user: empty user name");
			return set_str(&c->user, v);
		case FL_CONFIG: return set_str(&ps->config, v);
		case FL_SANDBOX:
			if (kv_parse_sandbox(v, &c->sandbox_off) < 0)
				return fail(e, "--sandbox: '%s' is not on or off", v);
			return 0;
		case FL_LOG_LEVEL:
			if (!strcmp(v, "info")) c->log_level = KV_LOG_INFO;
			else if (!strcmp(v, "debug")) c->log_level = KV_LOG_DEBUG;
			else if (!strcmp(v, "error")) c->log_level = KV_LOG_ERROR;
			else return fail(e, "unknown log level: %s", v);
			return 0;
		default: return 0;
		}
	}
	return 0;
}

static int find_long(const char *name, size_t len)
{
	for (int i = 0; i < FL_COUNT; i++)
		if (strlen(flags[i].name) == len && !strncmp(flags[i].name, name, len))
			return i;
	return -1;
}

static int find_short(char c)
{
	for (int i = 0; i < FL_COUNT; i++)
		if (flags[i].shorthand == c)
			return i;
	return -1;
}

/* Walk argv like pflag. Returns 0, 1 for "help seen", or -1. */
static int parse_flags(struct parse_state *ps, int argc, char **argv, struct perr *e)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			if (i + 1 < argc)
				return fail(e, "unexpected argument: %s", argv[i + 1]);
			return 0;
		}
		if (a[0] != '-' || a[1] == 0)
			return fail(e, "unexpected argument: %s", a);
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t nl = eq ? (size_t)(eq - name) : strlen(name);
			int id = find_long(name, nl);
			if (id < 0 || nl == 0)
				return fail(e, "unknown flag: --%.*s", (int)nl, name);
			if (id == FL_HELP && (!eq || !strcmp(eq + 1, "true")))
				return 1;
			const char *val;
			if (eq)
				val = eq + 1;
			else if (flags[id].kind == F_BOOL)
				val = "true";
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return fail(e, "flag needs an argument: --%s", flags[id].name);
			if (set_flag(ps, id, val, e) < 0)
				return -1;
			continue;
		}
		/* shorthand group: -nv, -c4, -c=4, -c 4 */
		for (const char *p = a + 1; *p; p++) {
			int id = find_short(*p);
			if (id < 0)
				return fail(e, "unknown shorthand flag: '%c' in %s", *p, a);
			if (id == FL_HELP)
				return 1;
			const char *val;
			bool rest_used = true; /* the value used up the rest of this argument */
			if (p[1] == '=') {
				val = p + 2;
			} else if (flags[id].kind == F_BOOL) {
				val = "true";
				rest_used = false;
			} else if (p[1]) {
				val = p + 1;
			} else if (i + 1 < argc) {
				val = argv[++i];
			} else {
				return fail(e, "flag needs an argument: '%c' in %s", *p, a);
			}
			if (set_flag(ps, id, val, e) < 0)
				return -1;
			if (rest_used)
				break;
		}
	}
	return 0;
}

/* ---------------- option lists ---------------- */

struct opt {
	char *key;
	char *val; /* NULL when the element had no '=' */
};

/* Split "k=v" elements; later keys override earlier ones (kept in order),
 * except a key the device table lets repeat (forward=). t: NULL for the
 * bootloader. */
static int to_opts(char **elems, int n, const struct kv_device_desc *t, struct opt **out)
{
	struct opt *o = calloc(n ? n : 1, sizeof(*o));
	int m = 0;
	if (!o)
		return -1;
	for (int i = 0; i < n; i++) {
		char *eq = strchr(elems[i], '=');
		char *k = eq ? strndup(elems[i], eq - elems[i]) : strdup(elems[i]);
		char *v = eq ? strdup(eq + 1) : NULL;
		int j;
		int ti = t ? kv_opt_find(t, k) : -1;
		bool repeats = ti >= 0 && t->opts[ti].kind == KV_OPT_LIST;
		for (j = 0; j < m; j++)
			if (!strcmp(o[j].key, k) && !repeats)
				break;
		if (j < m) {
			free(o[j].key);
			free(o[j].val);
		} else {
			j = m++;
		}
		o[j].key = k;
		o[j].val = v;
	}
	*out = o;
	return m;
}

static void free_opts(struct opt *o, int n)
{
	for (int i = 0; i < n; i++) {
		free(o[i].key);
		free(o[i].val);
	}
	free(o);
}

static const char *val(const struct opt *o) { return o->val ? o->val : ""; }

/* ---------------- bootloader ---------------- */

static char *trim_quotes(const char *v)
{
	size_t l = strlen(v);
	if (l >= 2 && v[0] == '"' && v[l - 1] == '"') {
		while (*v == '"') { v++; l--; }
		while (l && v[l - 1] == '"') l--;
	}
	return strndup(v, l);
}

static int parse_bootloader(struct parse_state *ps, struct perr *e)
{
	struct kv_bootloader *b = &ps->cfg->boot;
	struct opt *o;
	int n, r = 0;

	kv_bootloader_clear(b);
	if (ps->nboot == 0)
		return fail(e, "empty option list in --bootloader command line argument");
	const char *type = ps->boot_opts[0];
	const struct kv_boot_desc *t = kv_boot_desc_by_type(type);
	if (!t)
		return fail(e, "unknown bootloader type: %s", type);
	n = to_opts(ps->boot_opts + 1, ps->nboot - 1, NULL, &o);
	if (n < 0)
		return fail(e, "out of memory");
	b->kind = t->kind;
	for (int i = 0; i < n && !r; i++) {
		const struct kv_boot_opt *bo = kv_boot_opt_find(t, o[i].key);
		if (!bo) {
			r = fail(e, "unknown option for %s: %s", t->noun, o[i].key);
		} else if (bo->flag) {
			if (o[i].val && *o[i].val)
				r = fail(e, "unexpected value for %s '%s' option: %s", t->what, bo->key, o[i].val);
			*kv_boot_flag(b, bo) = true;
		} else if (bo->trim_quotes) {
			char **dst = kv_boot_str(b, bo);
			free(*dst);
			if (!(*dst = trim_quotes(val(&o[i]))))
				r = fail(e, "out of memory");
		} else {
			r = set_str(kv_boot_str(b, bo), val(&o[i]));
		}
	}
	if (!r)
		r = kv_boot_check_required(t, b, e->buf, e->len);
	free_opts(o, n);
	return r;
}

/* ---------------- devices ---------------- */

/* One --device option list, walked through the device's option table
 * (device_tables.c): each key sets its field, then the device is finished
 * (what the options imply) and validated as every input path does. */
static int parse_device(struct kv_config *c, const char *spec, struct perr *e)
{
	char **el;
	struct opt *o = NULL;
	int n = kv_split_options(spec, false, &el, e->buf, e->len), no = 0, r = -1;
	if (n < 0)
		return -1;
	if (n == 0) {
		kv_free_strv(el, n);
		return fail(e, "unknown device type: ");
	}
	const struct kv_device_desc *t = kv_desc_by_type(el[0]);
	if (!t) {
		fail(e, "unknown device type: %s", el[0]);
		goto out;
	}
	if (t->nopts == 0 && n > 1) { /* vfkit names the whole list */
		char buf[512] = "";
		for (int i = 1; i < n; i++) {
			if (i > 1)
				strncat(buf, ",", sizeof(buf) - strlen(buf) - 1);
			strncat(buf, el[i], sizeof(buf) - strlen(buf) - 1);
		}
		fail(e, "unknown options for %s devices: %s", t->type, buf);
		goto out;
	}
	struct kv_device *d = kv_config_add_device(c, t->kind);
	if (!d) {
		fail(e, "out of memory");
		goto out;
	}
	no = to_opts(el + 1, n - 1, t, &o);
	if (no < 0) {
		fail(e, "out of memory");
		goto out;
	}
	uint64_t seen = 0;
	for (int i = 0; i < no; i++) {
		int k = kv_opt_find(t, o[i].key);
		if (k < 0) {
			if (t->noun)
				fail(e, "unknown option for %s: %s", t->noun, o[i].key);
			else
				fail(e, "unknown option for %s devices: %s", t->type, o[i].key);
			goto out;
		}
		if (kv_opt_parse_text(t, &t->opts[k], d, o[i].val, e->buf, e->len) < 0)
			goto out;
		seen |= KV_SEEN(k);
	}
	r = kv_device_finish(d, seen, e->buf, e->len);
out:
	free_opts(o, no > 0 ? no : 0);
	kv_free_strv(el, n);
	return r;
}

static int parse_timesync(struct kv_config *c, const char *s, struct perr *e)
{
	char **el;
	int n = kv_split_options(s, false, &el, e->buf, e->len), r = 0;
	bool found = false;
	if (n < 0)
		return -1;
	for (int i = 0; i < n && !r; i++) {
		char *eq = strchr(el[i], '=');
		size_t kl = eq ? (size_t)(eq - el[i]) : strlen(el[i]);
		if (kl == 9 && !strncmp(el[i], "vsockPort", 9)) {
			char reason[160];
			uint64_t p = 0;
			if (!eq || kv_parse_uint(eq + 1, 32, &p, reason, sizeof(reason)) < 0)
				r = fail(e, "invalid vsock port: %s", eq ? eq + 1 : "");
			c->timesync_port = p;
			found = true;
		} else {
			r = fail(e, "unknown option for timesync parameter: %.*s", (int)kl, el[i]);
		}
	}
	kv_free_strv(el, n);
	if (!r && !found)
		r = fail(e, "missing 'vsockPort' option for timesync parameter");
	c->has_timesync = !r;
	return r;
}

/* cobra's flag groups, checked in cobra's order (sorted group names). */
static int check_groups(struct parse_state *ps, struct perr *e)
{
	const enum flag_id trio[3] = { FL_KERNEL, FL_INITRD, FL_CMDLINE };
	int set = 0;
	for (int i = 0; i < 3; i++)
		set += ps->changed[trio[i]];
	if (set && set < 3) {
		/* names of the missing flags, sorted */
		const char *sorted[3] = { "initrd", "kernel", "kernel-cmdline" };
		const enum flag_id sid[3] = { FL_INITRD, FL_KERNEL, FL_CMDLINE };
		char miss[64] = "";
		for (int i = 0; i < 3; i++)
			if (!ps->changed[sid[i]]) {
				if (*miss)
					strcat(miss, " ");
				strcat(miss, sorted[i]);
			}
		return fail(e, "if any flags in the group [kernel initrd kernel-cmdline] are set they must all be set; missing [%s]", miss);
	}
	if (ps->changed[FL_BOOTLOADER]) {
		const char *order[3] = { "initrd", "kernel", "kernel-cmdline" };
		const enum flag_id oid[3] = { FL_INITRD, FL_KERNEL, FL_CMDLINE };
		for (int i = 0; i < 3; i++)
			if (ps->changed[oid[i]])
				return fail(e, "if any flags in the group [%s bootloader] are set none of the others can be; [bootloader %s] were all set",
					    order[i], order[i]);
	}
	return 0;
}

static void free_state(struct parse_state *ps)
{
	kv_free_strv(ps->boot_opts, ps->nboot);
	kv_free_strv(ps->devices, ps->ndevices);
	free(ps->kernel);
	free(ps->initrd);
	free(ps->cmdline);
	free(ps->timesync);
	free(ps->config);
}

/* --config FILE is read before the flags are applied, wherever it stands
 * on the command line, so the flags can override it: a first pass over
 * argv only finds it. */
static int load_config_file(int argc, char **argv, struct kv_config *cfg, struct perr *e)
{
	struct kv_config scratch;
	kv_config_init(&scratch);
	struct parse_state ps = { .cfg = &scratch };
	int r = parse_flags(&ps, argc, argv, e);
	char *path = ps.config;
	ps.config = NULL;
	free_state(&ps);
	kv_config_free(&scratch);
	if (r != 0 || !path || !*path) {
		free(path);
		return r < 0 ? -1 : 0;
	}
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t cap = 0, len = 0;
	if (!f) {
		r = fail(e, "--config %s: %s", path, strerror(errno));
		free(path);
		return r;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			if (cap > (16u << 20)) {
				r = fail(e, "--config %s: file too large", path);
				break;
			}
			char *n = realloc(text, cap = cap ? cap * 2 : 8192);
			if (!n) {
				r = fail(e, "out of memory");
				break;
			}
			text = n;
		}
		size_t got = fread(text + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0) {
			if (ferror(f))
				r = fail(e, "--config %s: %s", path, strerror(errno));
			break;
		}
	}
	fclose(f);
	if (r == 0) {
		text[len] = 0;
		if (memchr(text, 0, len))
			r = fail(e, "--config %s: invalid JSON: NUL byte in the file", path);
		else if (kv_config_from_json(text, cfg, KV_JSON_KVKIT_KEYS, e->buf, e->len) < 0) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", e->buf);
			r = fail(e, "--config %s: %s", path, msg);
		}
	}
	free(text);
	free(path);
	return r;
}

int kv_cmdline_parse(int argc, char **argv, struct kv_config *cfg, enum kv_cmdline_action *action, char *err,
		     size_t errlen)
{
	struct parse_state ps = { .cfg = cfg };
	struct perr e = { err, errlen };
	int r;

	*action = KV_ACTION_RUN;
	err[0] = 0;
	if (load_config_file(argc, argv, cfg, &e) < 0)
		return -1;
	r = parse_flags(&ps, argc, argv, &e);
	if (r == 1) {
		*action = KV_ACTION_HELP;
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	if (ps.version) {
		*action = KV_ACTION_VERSION;
		goto out;
	}
	if ((r = check_groups(&ps, &e)) < 0)
		goto out;
	if (ps.changed[FL_KERNEL]) {
		kv_bootloader_clear(&cfg->boot);
		cfg->boot.kind = KV_BOOT_LINUX;
		cfg->boot.kernel = ps.kernel;
		cfg->boot.initrd = ps.initrd;
		cfg->boot.cmdline = ps.cmdline;
		ps.kernel = ps.initrd = ps.cmdline = NULL;
	} else if ((ps.nboot || cfg->boot.kind == KV_BOOT_NONE) && (r = parse_bootloader(&ps, &e)) < 0) {
		goto out; /* a --config file may have given the bootloader */
	}
	if (cfg->cpus == 0) {
		r = fail(&e, "invalid virtual machine configuration: the vCPU count must be at least 1");
		goto out;
	}
	if (cfg->memory_bytes == 0) {
		r = fail(&e, "invalid virtual machine configuration: the memory size must be at least 1 MiB");
		goto out;
	}
	if (ps.timesync && *ps.timesync && (r = parse_timesync(cfg, ps.timesync, &e)) < 0)
		goto out;
	if (cfg->ignition && strchr(cfg->ignition, ',')) {
		r = fail(&e, "failed to add ignition file: ignition only accepts one option in command line argument");
		goto out;
	}
	if (cfg->ignition && !*cfg->ignition) {
		free(cfg->ignition);
		cfg->ignition = NULL;
	}
	for (int i = 0; i < ps.ndevices; i++)
		if ((r = parse_device(cfg, ps.devices[i], &e)) < 0)
			goto out;
	kv_config_normalize_gui(cfg);
out:
	free_state(&ps);
	return r < 0 ? -1 : 0;
}
