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

/* Split "k=v" elements; later keys override earlier ones (kept in order). */
static int to_opts(char **elems, int n, struct opt **out)
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
		/* forward= is the one key that may repeat (several port forwards) */
		for (j = 0; j < m; j++)
			if (!strcmp(o[j].key, k) && strcmp(k, "forward"))
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

/* A flag-style option (nat, readonly, ...) must not carry a value. */
static int flag_opt(const struct opt *o, struct perr *e, const char *what)
{
	if (o->val && *o->val)
		return fail(e, "unexpected value for %s option: %s", what, o->val);
	return 0;
}

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
	n = to_opts(ps->boot_opts + 1, ps->nboot - 1, &o);
	if (n < 0)
		return fail(e, "out of memory");
	if (!strcmp(type, "linux")) {
		b->kind = KV_BOOT_LINUX;
		for (int i = 0; i < n && !r; i++) {
			if (!strcmp(o[i].key, "kernel")) r = set_str(&b->kernel, val(&o[i]));
			else if (!strcmp(o[i].key, "initrd")) r = set_str(&b->initrd, val(&o[i]));
			else if (!strcmp(o[i].key, "cmdline")) { free(b->cmdline); b->cmdline = trim_quotes(val(&o[i])); }
			else r = fail(e, "unknown option for Linux bootloaders: %s", o[i].key);
		}
		if (!r && (!b->kernel || !*b->kernel))
			r = fail(e, "missing mandatory 'kernel' option for Linux bootloaders");
	} else if (!strcmp(type, "efi")) {
		b->kind = KV_BOOT_EFI;
		for (int i = 0; i < n && !r; i++) {
			if (!strcmp(o[i].key, "variable-store")) r = set_str(&b->efi_store, val(&o[i]));
			else if (!strcmp(o[i].key, "create")) {
				if (o[i].val && *o[i].val)
					r = fail(e, "unexpected value for EFI bootloader 'create' option: %s", o[i].val);
				b->efi_create = true;
			} else if (!strcmp(o[i].key, "firmware")) r = set_str(&b->efi_firmware, val(&o[i]));
			else if (!strcmp(o[i].key, "vars-template")) r = set_str(&b->efi_vars_template, val(&o[i]));
			else r = fail(e, "unknown option for EFI bootloaders: %s", o[i].key);
		}
		if (!r && (!b->efi_store || !*b->efi_store))
			r = fail(e, "missing mandatory 'variable-store' option for EFI bootloaders");
	} else if (!strcmp(type, "macos")) {
		b->kind = KV_BOOT_MACOS;
		for (int i = 0; i < n && !r; i++) {
			if (!strcmp(o[i].key, "machineIdentifierPath")) r = set_str(&b->machine_id_path, val(&o[i]));
			else if (!strcmp(o[i].key, "hardwareModelPath")) r = set_str(&b->hw_model_path, val(&o[i]));
			else if (!strcmp(o[i].key, "auxImagePath")) r = set_str(&b->aux_image_path, val(&o[i]));
			else r = fail(e, "unknown option for macOS bootloaders: %s", o[i].key);
		}
	} else {
		r = fail(e, "unknown bootloader type: %s", type);
	}
	free_opts(o, n);
	return r;
}

/* ---------------- devices ---------------- */

static int parse_disk(struct kv_device *d, const char *tname, struct opt *o, int n, struct perr *e)
{
	struct kv_disk *k = &d->u.disk;
	bool has_cache = false, has_sync = false;
	for (int i = 0; i < n; i++) {
		const char *key = o[i].key, *v = val(&o[i]);
		if (!strcmp(key, "path")) {
			if (set_str(&k->path, v)) return fail(e, "out of memory");
		} else if (!strcmp(key, "type")) {
			if (!strcmp(v, "image")) k->type = KV_DISK_IMAGE;
			else if (!strcmp(v, "dev")) k->type = KV_DISK_DEV;
			else return fail(e, "unexpected value for disk 'type' option: %s", v);
		} else if (!strcmp(key, "readonly")) {
			if (flag_opt(&o[i], e, "virtio-blk 'readonly'")) return -1;
			k->readonly = true;
		} else if (!strcmp(key, "deviceId") && d->kind == KV_DEV_VIRTIO_BLK) {
			if (strlen(v) > 20) return fail(e, "invalid 'deviceId': exceeds maximum length");
			if (set_str(&k->device_id, v)) return fail(e, "out of memory");
		} else if (!strcmp(key, "cache")) {
			has_cache = true;
			if (!strcmp(v, "automatic") || !strcmp(v, "auto")) k->cache = KV_CACHE_AUTOMATIC;
			else if (!strcmp(v, "cached")) k->cache = KV_CACHE_CACHED;
			else if (!strcmp(v, "uncached")) k->cache = KV_CACHE_UNCACHED;
			else return fail(e, "unexpected value for disk 'cache' option: %s (expected automatic, cached or uncached)", v);
		} else if (!strcmp(key, "format")) {
			if (!strcmp(v, "raw")) k->qcow2 = false;
			else if (!strcmp(v, "qcow2")) k->qcow2 = true;
			else return fail(e, "unexpected value for disk 'format' option: %s (expected raw or qcow2)", v);
		} else if (!strcmp(key, "sync")) {
			has_sync = true;
			if (!strcmp(v, "full")) k->sync = KV_SYNC_FULL;
			else if (!strcmp(v, "fsync")) k->sync = KV_SYNC_FSYNC;
			else if (!strcmp(v, "none")) k->sync = KV_SYNC_NONE;
			else return fail(e, "unexpected value for disk 'sync' option: %s (expected full, fsync or none)", v);
		} else {
			return fail(e, "unknown option for %s devices: %s", tname, key);
		}
	}
	if (!k->path || !*k->path)
		return fail(e, "missing mandatory 'path' option for %s device", tname);
	if (k->type == KV_DISK_DEV && has_cache)
		return fail(e, "'cache' option is not supported with type=dev");
	if (k->type == KV_DISK_DEV && k->qcow2)
		return fail(e, "'format=qcow2' is not supported with type=dev (block devices are raw)");
	if (k->type == KV_DISK_DEV && has_sync && k->sync == KV_SYNC_FSYNC)
		return fail(e, "unexpected value for disk 'sync' option: fsync (type=dev accepts full or none)");
	return 0;
}

static bool valid_device_id_nbd(const char *v, struct perr *e)
{
	if (strchr(v, '/'))
		return fail(e, "invalid NBD device 'deviceId': invalid 'deviceId': it cannot contain any forward slash"), false;
	if (strlen(v) > 20)
		return fail(e, "invalid NBD device 'deviceId': invalid 'deviceId': exceeds maximum length"), false;
	return true;
}

static int parse_nbd(struct kv_device *d, struct opt *o, int n, struct perr *e)
{
	struct kv_nbd *k = &d->u.nbd;
	for (int i = 0; i < n; i++) {
		const char *key = o[i].key, *v = val(&o[i]);
		if (!strcmp(key, "uri")) {
			if (set_str(&k->uri, v)) return fail(e, "out of memory");
		} else if (!strcmp(key, "deviceId")) {
			if (!valid_device_id_nbd(v, e)) return -1;
			if (set_str(&k->device_id, v)) return fail(e, "out of memory");
		} else if (!strcmp(key, "timeout")) {
			char *end;
			long long t = strtoll(v, &end, 10);
			if (!*v || *end || t < INT32_MIN || t > INT32_MAX)
				return fail(e, "invalid NBD device 'timeout': %s", v);
			k->timeout_ms = (int32_t)t;
		} else if (!strcmp(key, "sync")) {
			if (!strcmp(v, "full")) k->sync_none = false;
			else if (!strcmp(v, "none")) k->sync_none = true;
			else return fail(e, "invalid sync mode: %s, must be 'full' or 'none'", v);
		} else if (!strcmp(key, "readonly")) {
			if (flag_opt(&o[i], e, "virtio-blk 'readonly'")) return -1;
			k->readonly = true;
		} else {
			return fail(e, "unknown option for nbd devices: %s", key);
		}
	}
	if (!k->uri || !*k->uri)
		return fail(e, "invalid NBD device 'uri': 'uri' must be specified");
	const char *sep = strstr(k->uri, "://");
	size_t sl = sep ? (size_t)(sep - k->uri) : strcspn(k->uri, ":");
	static const char *schemes[] = { "nbd", "nbds", "nbd+unix", "nbds+unix" };
	for (int i = 0; i < 4; i++)
		if (sep && strlen(schemes[i]) == sl && !strncmp(k->uri, schemes[i], sl))
			return 0;
	return fail(e, "invalid NBD device 'uri': invalid scheme: %.*s. Expected one of: 'nbd', 'nbds', 'nbd+unix', or 'nbds+unix'",
		    (int)sl, k->uri);
}

/* Go net.ParseMAC, restricted to 6-byte addresses. */
static int parse_mac(const char *s, uint8_t mac[6])
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

static int parse_net(struct kv_device *d, struct opt *o, int n, struct perr *e)
{
	struct kv_net *k = &d->u.net;
	bool has_type = false, has_path = false, has_unix = false, has_offload = false, has_magic = false;
	for (int i = 0; i < n; i++) {
		const char *key = o[i].key, *v = val(&o[i]);
		if (!strcmp(key, "nat")) {
			if (flag_opt(&o[i], e, "virtio-net 'nat'")) return -1;
			k->nat = true;
		} else if (!strcmp(key, "mac")) {
			if (parse_mac(v, k->mac) < 0) return fail(e, "address %s: invalid MAC address", v);
			k->has_mac = true;
		} else if (!strcmp(key, "fd")) {
			char *end;
			long long fd = strtoll(v, &end, 10);
			if (!*v || *end || fd < 0 || fd > 2147483647) return fail(e, "invalid file descriptor: %s", v);
			k->fd = (int)fd;
		} else if (!strcmp(key, "unixSocketPath")) {
			has_unix = true;
			if (set_str(&k->unix_path, v)) return fail(e, "out of memory");
		} else if (!strcmp(key, "type")) {
			if (strcmp(v, "unixgram")) return fail(e, "unsupported virtio-net type: %s (only 'unixgram' is supported)", v);
			has_type = true;
		} else if (!strcmp(key, "path")) {
			has_path = true;
			if (set_str(&k->unix_path, v)) return fail(e, "out of memory");
		} else if (!strcmp(key, "vfkitMagic")) {
			if (!strcmp(v, "on")) k->vfkit_magic = true;
			else if (!strcmp(v, "off")) k->vfkit_magic = false;
			else return fail(e, "invalid value for vfkitMagic: %s (expected on/off)", v);
			has_magic = true;
		} else if (!strcmp(key, "offloading")) {
			if (strcmp(v, "off")) return fail(e, "invalid value for offloading: %s (only 'off' is supported)", v);
			has_offload = true;
		} else if (!strcmp(key, "tap")) {
			if (!*v || strlen(v) > 15 || strchr(v, '/'))
				return fail(e, "invalid tap interface name '%s': 1 to 15 bytes, no '/'", v);
			if (set_str(&k->tap, v)) return fail(e, "out of memory");
		} else if (!strcmp(key, "hostLoopback")) {
			if (flag_opt(&o[i], e, "virtio-net 'hostLoopback'")) return -1;
			k->host_loopback = true;
		} else if (!strcmp(key, "forward")) {
			if (!kv_net_forward_valid(v))
				return fail(e, "invalid forward '%s': expected tcp|udp:[HOSTADDR]:HOSTPORT:GUESTPORT", v);
			if (kv_net_add_forward(k, v)) return fail(e, "out of memory");
		} else {
			return fail(e, "unknown option for virtio-net devices: %s", key);
		}
	}
	if (has_path && !has_type) return fail(e, "'path' option requires 'type' to be specified");
	if (has_type && !has_path) return fail(e, "'type' option requires 'path' to be specified");
	if (has_offload && !has_type) return fail(e, "'offloading' option requires 'type' to be specified");
	bool has_fd = k->fd >= 0, has_sock = has_unix || has_path;
	if (k->tap && (k->nat || has_fd || has_sock))
		return fail(e, "'tap' and '%s' cannot be set at the same time", k->nat ? "nat" : has_fd ? "fd" : "unixSocketPath");
	if (k->nat && has_fd) return fail(e, "'nat' and 'fd' cannot be set at the same time");
	if (k->nat && has_sock) return fail(e, "'nat' and 'unixSocketPath' cannot be set at the same time");
	if (has_fd && has_sock) return fail(e, "'fd' and 'unixSocketPath' cannot be set at the same time");
	k->type_unixgram = has_type;
	if (has_sock) {
		if (!has_magic) k->vfkit_magic = true;
	} else {
		k->vfkit_magic = false;
	}
	if (!has_fd && !has_sock && !k->tap)
		k->nat = true; /* kvkit differs: a NIC without a backend is NAT */
	if (k->nforwards && !k->nat)
		return fail(e, "'forward' needs a 'nat' network");
	if (k->host_loopback && !k->nat)
		return fail(e, "'hostLoopback' needs a 'nat' network");
	return 0;
}

static int warn_value(const struct opt *o, const char *what)
{
	if (o->val && *o->val)
		fprintf(stderr, "time=\"\" level=warning msg=\"ignoring value '%s' of the %s option\"\n", o->val, what);
	return 0;
}

static int parse_vsock(struct kv_device *d, struct opt *o, int n, struct perr *e)
{
	struct kv_vsock *k = &d->u.vsock;
	for (int i = 0; i < n; i++) {
		const char *key = o[i].key, *v = val(&o[i]);
		if (!strcmp(key, "port")) {
			char *end;
			unsigned long long p = strtoull(v, &end, 10);
			if (!*v || *end || !isdigit((unsigned char)*v) || p > UINT32_MAX)
				return fail(e, "invalid vsock port: %s", v);
			k->port = p;
			k->has_port = true;
		} else if (!strcmp(key, "socketURL")) {
			if (set_str(&k->socket_url, v)) return fail(e, "out of memory");
		} else if (!strcmp(key, "listen")) {
			warn_value(&o[i], "virtio-vsock 'listen'");
			k->listen = true;
		} else if (!strcmp(key, "connect")) {
			warn_value(&o[i], "virtio-vsock 'connect'");
			k->listen = false;
		} else if (!strcmp(key, "mux")) {
			warn_value(&o[i], "virtio-vsock 'mux'");
			k->mux = true;
		} else {
			return fail(e, "unknown option for virtio-vsock devices: %s", key);
		}
	}
	if (k->mux && (k->has_port || !k->socket_url || !*k->socket_url))
		return fail(e, "virtio-vsock 'mux' needs 'socketURL' and takes no 'port'");
	if (k->socket_url && *k->socket_url && !k->has_port && !k->mux)
		return fail(e, "missing 'port' option for virtio-vsock device with 'socketURL'");
	return 0;
}

static int parse_fs(struct kv_device *d, struct opt *o, int n, struct perr *e)
{
	struct kv_fs *k = &d->u.fs;
	for (int i = 0; i < n; i++) {
		if (!strcmp(o[i].key, "sharedDir")) {
			if (set_str(&k->shared_dir, val(&o[i]))) return fail(e, "out of memory");
		} else if (!strcmp(o[i].key, "mountTag")) {
			if (set_str(&k->mount_tag, val(&o[i]))) return fail(e, "out of memory");
		} else if (!strcmp(o[i].key, "cache")) { /* kvkit */
			const char *v = val(&o[i]);
			if (!strcmp(v, "auto")) k->cache = KV_FS_CACHE_AUTO;
			else if (!strcmp(v, "always")) k->cache = KV_FS_CACHE_ALWAYS;
			else if (!strcmp(v, "never")) k->cache = KV_FS_CACHE_NEVER;
			else return fail(e, "unexpected value for virtio-fs 'cache' option: %s (expected auto, always or never)", v);
		} else if (!strcmp(o[i].key, "dax")) { /* kvkit */
			const char *v = val(&o[i]);
			char *end;
			unsigned long long m = strtoull(v, &end, 10);
			if (!isdigit((unsigned char)*v) || *end || !kv_dax_mib_ok(m))
				return fail(e, "invalid virtio-fs 'dax' window: %s (" KV_DAX_MIB_HINT ")", v);
			k->dax_mib = (uint32_t)m;
		} else {
			return fail(e, "unknown option for virtio-fs devices: %s", o[i].key);
		}
	}
	if (!k->shared_dir || !*k->shared_dir)
		return fail(e, "missing mandatory 'sharedDir' option for virtio-fs device");
	if (!k->mount_tag || !*k->mount_tag) {
		/* default: basename of the directory */
		size_t l = strlen(k->shared_dir);
		while (l > 1 && k->shared_dir[l - 1] == '/')
			l--;
		const char *b = k->shared_dir + l;
		while (b > k->shared_dir && b[-1] != '/')
			b--;
		free(k->mount_tag);
		k->mount_tag = strndup(b, k->shared_dir + l - b);
	}
	if (strlen(k->mount_tag) == 0 || strlen(k->mount_tag) > 36)
		return fail(e, "invalid virtio-fs mount tag '%s': must be 1 to 36 bytes", k->mount_tag);
	return 0;
}

static int parse_serial(struct kv_device *d, struct opt *o, int n, struct perr *e)
{
	struct kv_serial *k = &d->u.serial;
	bool lf = false, st = false, pty = false;
	for (int i = 0; i < n; i++) {
		if (!strcmp(o[i].key, "logFilePath")) {
			lf = true;
			if (set_str(&k->log_path, val(&o[i]))) return fail(e, "out of memory");
		} else if (!strcmp(o[i].key, "stdio")) {
			if (flag_opt(&o[i], e, "virtio-serial 'stdio'")) return -1;
			st = true;
		} else if (!strcmp(o[i].key, "pty")) {
			warn_value(&o[i], "virtio-serial 'pty'");
			pty = true;
		} else {
			return fail(e, "unknown option for virtio-serial devices: %s", o[i].key);
		}
	}
	if (lf && st) return fail(e, "'logFilePath' and 'stdio' cannot be set at the same time");
	if (lf && pty) return fail(e, "'logFilePath' and 'pty' cannot be set at the same time");
	if (st && pty) return fail(e, "'stdio' and 'pty' cannot be set at the same time");
	if (lf && (!k->log_path || !*k->log_path)) lf = false;
	if (!lf && !st && !pty) return fail(e, "one of 'logFilePath', 'stdio' or 'pty' must be set");
	k->mode = lf ? KV_SERIAL_LOGFILE : st ? KV_SERIAL_STDIO : KV_SERIAL_PTY;
	return 0;
}

static int no_options(const char *tname, char **elems, int n, struct perr *e)
{
	if (n == 0)
		return 0;
	char buf[512] = "";
	for (int i = 0; i < n; i++) {
		if (i)
			strncat(buf, ",", sizeof(buf) - strlen(buf) - 1);
		strncat(buf, elems[i], sizeof(buf) - strlen(buf) - 1);
	}
	return fail(e, "unknown options for %s devices: %s", tname, buf);
}

static int parse_dim(const struct opt *o, const char *what, uint32_t *out, struct perr *e)
{
	char *end;
	const char *v = val(o);
	long long x = strtoll(v, &end, 10);
	if (!*v || *end || x < 1 || x > 16384)
		return fail(e, "invalid value for virtio-gpu %s: %s", what, v);
	*out = x;
	return 0;
}

static int parse_gpu(struct kv_device *d, struct opt *o, int n, struct perr *e)
{
	struct kv_gpu *k = &d->u.gpu;
	k->width = 800;
	k->height = 600;
	for (int i = 0; i < n; i++) {
		if (!strcmp(o[i].key, "width")) {
			if (parse_dim(&o[i], "width", &k->width, e)) return -1;
		} else if (!strcmp(o[i].key, "height")) {
			if (parse_dim(&o[i], "height", &k->height, e)) return -1;
		} else {
			return fail(e, "unknown option for virtio-gpu devices: %s", o[i].key);
		}
	}
	return 0;
}

static int parse_input(struct kv_device *d, struct opt *o, int n, struct perr *e)
{
	for (int i = 0; i < n; i++) {
		enum kv_input_kind kind;
		if (!strcmp(o[i].key, "pointing")) kind = KV_INPUT_POINTING;
		else if (!strcmp(o[i].key, "keyboard")) kind = KV_INPUT_KEYBOARD;
		else return fail(e, "unknown option for virtio-input devices: %s", o[i].key);
		if (o[i].val && *o[i].val)
			return fail(e, "unexpected value for virtio-input %s option: %s", o[i].key, o[i].val);
		if (d->u.input != KV_INPUT_NONE && d->u.input != kind)
			return fail(e, "'pointing' and 'keyboard' cannot be set at the same time");
		d->u.input = kind;
	}
	if (d->u.input == KV_INPUT_NONE)
		return fail(e, "unknown option for virtio-input devices: ");
	return 0;
}

static int parse_rosetta(struct kv_device *d, struct opt *o, int n, struct perr *e)
{
	struct kv_rosetta *k = &d->u.rosetta;
	for (int i = 0; i < n; i++) {
		if (!strcmp(o[i].key, "mountTag")) {
			if (set_str(&k->mount_tag, val(&o[i]))) return fail(e, "out of memory");
		} else if (!strcmp(o[i].key, "install")) {
			if (flag_opt(&o[i], e, "rosetta 'install'")) return -1;
			k->install = true;
		} else if (!strcmp(o[i].key, "ignore-if-missing") || !strcmp(o[i].key, "ignoreIfMissing")) {
			warn_value(&o[i], "rosetta 'ignore-if-missing'");
			k->ignore_if_missing = true;
		} else {
			return fail(e, "unknown option for rosetta share: %s", o[i].key);
		}
	}
	return 0;
}

static const struct {
	const char *name;
	enum kv_dev_kind kind;
} dev_types[] = {
	{ "virtio-blk", KV_DEV_VIRTIO_BLK }, { "nvme", KV_DEV_NVME },
	{ "usb-mass-storage", KV_DEV_USB_MASS_STORAGE }, { "nbd", KV_DEV_NBD },
	{ "virtio-net", KV_DEV_VIRTIO_NET }, { "virtio-vsock", KV_DEV_VIRTIO_VSOCK },
	{ "virtio-fs", KV_DEV_VIRTIO_FS }, { "virtio-serial", KV_DEV_VIRTIO_SERIAL },
	{ "virtio-rng", KV_DEV_VIRTIO_RNG }, { "virtio-balloon", KV_DEV_VIRTIO_BALLOON },
	{ "virtio-gpu", KV_DEV_VIRTIO_GPU }, { "virtio-input", KV_DEV_VIRTIO_INPUT },
	{ "rosetta", KV_DEV_ROSETTA },
};

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
	int t = -1;
	for (size_t i = 0; i < sizeof(dev_types) / sizeof(dev_types[0]); i++)
		if (!strcmp(el[0], dev_types[i].name))
			t = i;
	if (t < 0) {
		fail(e, "unknown device type: %s", el[0]);
		goto out;
	}
	struct kv_device *d = kv_config_add_device(c, dev_types[t].kind);
	if (!d) {
		fail(e, "out of memory");
		goto out;
	}
	no = to_opts(el + 1, n - 1, &o);
	if (no < 0) {
		fail(e, "out of memory");
		goto out;
	}
	switch (d->kind) {
	case KV_DEV_VIRTIO_BLK:
	case KV_DEV_NVME:
	case KV_DEV_USB_MASS_STORAGE: r = parse_disk(d, el[0], o, no, e); break;
	case KV_DEV_NBD: r = parse_nbd(d, o, no, e); break;
	case KV_DEV_VIRTIO_NET: r = parse_net(d, o, no, e); break;
	case KV_DEV_VIRTIO_VSOCK: r = parse_vsock(d, o, no, e); break;
	case KV_DEV_VIRTIO_FS: r = parse_fs(d, o, no, e); break;
	case KV_DEV_VIRTIO_SERIAL: r = parse_serial(d, o, no, e); break;
	case KV_DEV_VIRTIO_RNG:
	case KV_DEV_VIRTIO_BALLOON: r = no_options(el[0], el + 1, n - 1, e); break;
	case KV_DEV_VIRTIO_GPU: r = parse_gpu(d, o, no, e); break;
	case KV_DEV_VIRTIO_INPUT: r = parse_input(d, o, no, e); break;
	case KV_DEV_ROSETTA: r = parse_rosetta(d, o, no, e); break;
	}
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
out:
	free_state(&ps);
	return r < 0 ? -1 : 0;
}
