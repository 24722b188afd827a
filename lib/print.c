/* libkvkit: the canonical vfkit command line for a configuration (spec
 * 5.3) and the device checks shared by every input syntax. */
#include <kvkit/cmdline.h>
#include <kvkit/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"


int kv_device_validate(const struct kv_device *d, char *err, size_t errlen)
{
	const char *t = kv_device_type_name(d->kind);
	switch (d->kind) {
	case KV_DEV_VIRTIO_BLK:
	case KV_DEV_NVME:
	case KV_DEV_USB_MASS_STORAGE:
		if (!d->u.disk.path || !*d->u.disk.path)
			return kv_fail(err, errlen, "missing mandatory 'path' option for %s device", t);
		if (d->u.disk.device_id && strlen(d->u.disk.device_id) > 20)
			return kv_fail(err, errlen, "invalid 'deviceId': exceeds maximum length");
		if (d->u.disk.type == KV_DISK_DEV && d->u.disk.cache != KV_CACHE_AUTOMATIC)
			return kv_fail(err, errlen, "'cache' option is not supported with type=dev");
		if (d->u.disk.type == KV_DISK_DEV && d->u.disk.qcow2)
			return kv_fail(err, errlen, "'format=qcow2' is not supported with type=dev (block devices are raw)");
		if (d->u.disk.type == KV_DISK_DEV && d->u.disk.sync == KV_SYNC_FSYNC)
			return kv_fail(err, errlen, "unexpected value for disk 'sync' option: fsync (type=dev accepts full or none)");
		return 0;
	case KV_DEV_NBD:
		if (!d->u.nbd.uri || !*d->u.nbd.uri)
			return kv_fail(err, errlen, "invalid NBD device 'uri': 'uri' must be specified");
		if (d->u.nbd.device_id && strchr(d->u.nbd.device_id, '/'))
			return kv_fail(err, errlen, "invalid NBD device 'deviceId': invalid 'deviceId': it cannot contain any forward slash");
		if (d->u.nbd.device_id && strlen(d->u.nbd.device_id) > 20)
			return kv_fail(err, errlen, "invalid NBD device 'deviceId': invalid 'deviceId': exceeds maximum length");
		return 0;
	case KV_DEV_VIRTIO_NET: {
		const struct kv_net *k = &d->u.net;
		bool sock = k->unix_path && *k->unix_path, fd = k->fd >= 0;
		if (k->tap && (k->nat || fd || sock))
			return kv_fail(err, errlen, "'tap' and '%s' cannot be set at the same time", k->nat ? "nat" : fd ? "fd" : "unixSocketPath");
		for (size_t i = 0; i < k->nforwards; i++)
			if (!k->nat || !kv_net_forward_valid(k->forwards[i]))
				return kv_fail(err, errlen, "invalid forward '%s'", k->forwards[i]);
		if (k->host_loopback && !k->nat)
			return kv_fail(err, errlen, "'hostLoopback' needs a 'nat' network");
		if (k->nat && fd)
			return kv_fail(err, errlen, "'nat' and 'fd' cannot be set at the same time");
		if (k->nat && sock)
			return kv_fail(err, errlen, "'nat' and 'unixSocketPath' cannot be set at the same time");
		if (fd && sock)
			return kv_fail(err, errlen, "'fd' and 'unixSocketPath' cannot be set at the same time");
		return 0;
	}
	case KV_DEV_VIRTIO_VSOCK:
		if (d->u.vsock.mux && (d->u.vsock.has_port || !d->u.vsock.socket_url || !*d->u.vsock.socket_url))
			return kv_fail(err, errlen, "virtio-vsock 'mux' needs 'socketURL' and takes no 'port'");
		if (d->u.vsock.socket_url && *d->u.vsock.socket_url && !d->u.vsock.has_port && !d->u.vsock.mux)
			return kv_fail(err, errlen, "missing 'port' option for virtio-vsock device with 'socketURL'");
		return 0;
	case KV_DEV_VIRTIO_FS:
		if (!d->u.fs.shared_dir || !*d->u.fs.shared_dir)
			return kv_fail(err, errlen, "missing mandatory 'sharedDir' option for virtio-fs device");
		if (!d->u.fs.mount_tag || !*d->u.fs.mount_tag || strlen(d->u.fs.mount_tag) > 36)
			return kv_fail(err, errlen, "invalid virtio-fs mount tag '%s': must be 1 to 36 bytes",
				    d->u.fs.mount_tag ? d->u.fs.mount_tag : "");
		if (!kv_dax_mib_ok(d->u.fs.dax_mib))
			return kv_fail(err, errlen, "invalid virtio-fs 'dax' window: %u (" KV_DAX_MIB_HINT ")",
				    d->u.fs.dax_mib);
		return 0;
	case KV_DEV_VIRTIO_SERIAL:
		if (d->u.serial.mode == KV_SERIAL_NONE)
			return kv_fail(err, errlen, "one of 'logFilePath', 'stdio' or 'pty' must be set");
		return 0;
	case KV_DEV_VIRTIO_GPU:
		if (!d->u.gpu.width || !d->u.gpu.height)
			return kv_fail(err, errlen, "invalid dimensions for virtio-gpu device resolution: %ux%u", d->u.gpu.width,
				    d->u.gpu.height);
		return 0;
	case KV_DEV_VIRTIO_INPUT:
		if (d->u.input == KV_INPUT_NONE)
			return kv_fail(err, errlen, "unknown option for virtio-input devices: ");
		return 0;
	default:
		return 0;
	}
}

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

static void add_u(struct opts *o, const char *key, unsigned long long v)
{
	char b[32];
	snprintf(b, sizeof(b), "%llu", v);
	add(o, key, b);
}

static void device_opts(const struct kv_device *d, struct opts *o)
{
	char mac[18];
	add(o, kv_device_type_name(d->kind), NULL);
	switch (d->kind) {
	case KV_DEV_VIRTIO_BLK:
	case KV_DEV_NVME:
	case KV_DEV_USB_MASS_STORAGE: {
		const struct kv_disk *k = &d->u.disk;
		add(o, "path", k->path);
		if (k->type == KV_DISK_DEV)
			add(o, "type", "dev");
		if (k->readonly)
			add(o, "readonly", NULL);
		if (d->kind == KV_DEV_VIRTIO_BLK && k->device_id && *k->device_id)
			add(o, "deviceId", k->device_id);
		if (k->cache == KV_CACHE_CACHED)
			add(o, "cache", "cached");
		else if (k->cache == KV_CACHE_UNCACHED)
			add(o, "cache", "uncached");
		if (k->sync != KV_SYNC_DEFAULT)
			add(o, "sync", k->sync == KV_SYNC_FULL ? "full" : k->sync == KV_SYNC_FSYNC ? "fsync" : "none");
		if (k->qcow2)
			add(o, "format", "qcow2");
		break;
	}
	case KV_DEV_NBD: {
		const struct kv_nbd *k = &d->u.nbd;
		add(o, "uri", k->uri);
		if (k->readonly)
			add(o, "readonly", NULL);
		if (k->device_id && *k->device_id)
			add(o, "deviceId", k->device_id);
		if (k->timeout_ms != 15000) {
			char b[16];
			snprintf(b, sizeof(b), "%d", k->timeout_ms);
			add(o, "timeout", b);
		}
		if (k->sync_none)
			add(o, "sync", "none");
		break;
	}
	case KV_DEV_VIRTIO_NET: {
		const struct kv_net *k = &d->u.net;
		if (k->fd >= 0) {
			add_u(o, "fd", (unsigned)k->fd);
		} else if (k->tap) {
			add(o, "tap", k->tap);
		} else if (k->unix_path && *k->unix_path) {
			if (k->vfkit_magic) {
				add(o, "unixSocketPath", k->unix_path);
			} else {
				add(o, "type", "unixgram");
				add(o, "path", k->unix_path);
				add(o, "vfkitMagic", "off");
			}
		} else {
			add(o, "nat", NULL);
			for (size_t i = 0; i < k->nforwards; i++)
				add(o, "forward", k->forwards[i]);
			if (k->host_loopback)
				add(o, "hostLoopback", NULL);
		}
		if (k->has_mac) {
			snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", k->mac[0], k->mac[1], k->mac[2], k->mac[3],
				 k->mac[4], k->mac[5]);
			add(o, "mac", mac);
		}
		break;
	}
	case KV_DEV_VIRTIO_VSOCK:
		if (d->u.vsock.has_port)
			add_u(o, "port", d->u.vsock.port);
		if (d->u.vsock.socket_url && *d->u.vsock.socket_url)
			add(o, "socketURL", d->u.vsock.socket_url);
		add(o, d->u.vsock.mux ? "mux" : d->u.vsock.listen ? "listen" : "connect", NULL);
		break;
	case KV_DEV_VIRTIO_FS:
		add(o, "sharedDir", d->u.fs.shared_dir);
		if (d->u.fs.mount_tag && *d->u.fs.mount_tag)
			add(o, "mountTag", d->u.fs.mount_tag);
		if (d->u.fs.cache != KV_FS_CACHE_AUTO)
			add(o, "cache", d->u.fs.cache == KV_FS_CACHE_ALWAYS ? "always" : "never");
		if (d->u.fs.dax_mib)
			add_u(o, "dax", d->u.fs.dax_mib);
		break;
	case KV_DEV_ROSETTA:
		add(o, "mountTag", d->u.rosetta.mount_tag ? d->u.rosetta.mount_tag : "");
		if (d->u.rosetta.install)
			add(o, "install", NULL);
		if (d->u.rosetta.ignore_if_missing)
			add(o, "ignore-if-missing", NULL);
		break;
	case KV_DEV_VIRTIO_SERIAL:
		if (d->u.serial.mode == KV_SERIAL_LOGFILE)
			add(o, "logFilePath", d->u.serial.log_path);
		else if (d->u.serial.mode == KV_SERIAL_STDIO)
			add(o, "stdio", NULL);
		else
			add(o, "pty", NULL);
		break;
	case KV_DEV_VIRTIO_GPU:
		add_u(o, "width", d->u.gpu.width);
		add_u(o, "height", d->u.gpu.height);
		break;
	case KV_DEV_VIRTIO_INPUT:
		add(o, d->u.input == KV_INPUT_KEYBOARD ? "keyboard" : "pointing", NULL);
		break;
	case KV_DEV_VIRTIO_RNG:
	case KV_DEV_VIRTIO_BALLOON:
		break;
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
