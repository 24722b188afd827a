/* libkvkit: configuration <-> JSON in vfkit's format (spec section 5),
 * through json-c. Keys are emitted in the order vfkit emits them. */
#include <errno.h>
#include <json-c/json.h>
#include <kvkit/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const char *cache_name(enum kv_disk_cache c)
{
	return c == KV_CACHE_CACHED ? "cached" : c == KV_CACHE_UNCACHED ? "uncached" : "automatic";
}

static const char *sync_name(enum kv_disk_sync s)
{
	return s == KV_SYNC_FULL ? "full" : s == KV_SYNC_FSYNC ? "fsync" : s == KV_SYNC_NONE ? "none" : "";
}

static void fmt_mac(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static json_object *device_json(const struct kv_device *d, unsigned flags)
{
	json_object *o = NULL;
	char mac[18];
	switch (d->kind) {
	case KV_DEV_VIRTIO_BLK:
	case KV_DEV_NVME:
	case KV_DEV_USB_MASS_STORAGE: {
		const struct kv_disk *k = &d->u.disk;
		o = kind_obj(d->kind == KV_DEV_VIRTIO_BLK ? "virtioblk" : d->kind == KV_DEV_NVME ? "nvme" : "usbmassstorage");
		put_str(o, "devName", kv_device_type_name(d->kind));
		put_opt_bool(o, "readOnly", k->readonly);
		put_opt_str(o, "imagePath", k->path);
		if (k->type == KV_DISK_DEV)
			put_str(o, "type", "dev");
		if (d->kind == KV_DEV_VIRTIO_BLK)
			put_opt_str(o, "deviceIdentifier", k->device_id);
		if (k->cache != KV_CACHE_AUTOMATIC)
			put_str(o, "cache", cache_name(k->cache));
		if (k->sync != KV_SYNC_DEFAULT)
			put_str(o, "sync", sync_name(k->sync));
		if (k->qcow2)
			put_str(o, "format", "qcow2");
		break;
	}
	case KV_DEV_NBD: {
		const struct kv_nbd *k = &d->u.nbd;
		o = kind_obj("nbd");
		put_str(o, "devName", "nbd");
		put_opt_bool(o, "readOnly", k->readonly);
		put_opt_str(o, "uri", k->uri);
		put_str(o, "DeviceIdentifier", k->device_id);
		json_object_object_add(o, "Timeout", json_object_new_int64((int64_t)k->timeout_ms * 1000000));
		put_str(o, "SynchronizationMode", k->sync_none ? "none" : "full");
		break;
	}
	case KV_DEV_VIRTIO_NET: {
		const struct kv_net *k = &d->u.net;
		o = kind_obj("virtionet");
		put_bool(o, "nat", k->nat);
		if (k->fd >= 0)
			json_object_object_add(o, "socket", json_object_new_object());
		if (k->unix_path && *k->unix_path) {
			put_str(o, "unixSocketPath", k->unix_path);
			put_bool(o, "vfkitMagic", k->vfkit_magic);
		}
		if (k->has_mac) {
			fmt_mac(k->mac, mac);
			put_str(o, "macAddress", mac);
		}
		put_opt_str(o, "tap", k->tap); /* kvkit keys */
		if (k->nforwards) {
			json_object *arr = json_object_new_array();
			for (size_t i = 0; i < k->nforwards; i++)
				json_object_array_add(arr, json_object_new_string(k->forwards[i]));
			json_object_object_add(o, "forwards", arr);
		}
		if (k->host_loopback)
			put_bool(o, "hostLoopback", true);
		break;
	}
	case KV_DEV_VIRTIO_VSOCK:
		o = kind_obj("virtiosock");
		if (!d->u.vsock.mux) /* kvkit's mux socket has no port */
			put_u64(o, "port", d->u.vsock.port);
		put_str(o, "socketURL", d->u.vsock.socket_url);
		put_opt_bool(o, "listen", d->u.vsock.listen && !d->u.vsock.mux);
		put_opt_bool(o, "mux", d->u.vsock.mux);
		break;
	case KV_DEV_VIRTIO_FS:
		o = kind_obj("virtiofs");
		put_str(o, "mountTag", d->u.fs.mount_tag);
		put_str(o, "sharedDir", d->u.fs.shared_dir);
		if (d->u.fs.cache != KV_FS_CACHE_AUTO) /* kvkit */
			put_str(o, "cache", d->u.fs.cache == KV_FS_CACHE_ALWAYS ? "always" : "never");
		if (d->u.fs.dax_mib) /* kvkit */
			put_u64(o, "dax", d->u.fs.dax_mib);
		break;
	case KV_DEV_ROSETTA:
		o = kind_obj("rosetta");
		put_str(o, "mountTag", d->u.rosetta.mount_tag);
		put_bool(o, "installRosetta", d->u.rosetta.install);
		put_bool(o, "ignoreIfMissing", d->u.rosetta.ignore_if_missing);
		break;
	case KV_DEV_VIRTIO_SERIAL: {
		const struct kv_serial *k = &d->u.serial;
		o = kind_obj("virtioserial");
		if (k->mode == KV_SERIAL_LOGFILE)
			put_opt_str(o, "logFile", k->log_path);
		put_opt_bool(o, "usesStdio", k->mode == KV_SERIAL_STDIO);
		put_opt_bool(o, "usesPty", k->mode == KV_SERIAL_PTY);
		if (flags & KV_JSON_RUNTIME)
			put_opt_str(o, "ptyName", k->pty_name);
		break;
	}
	case KV_DEV_VIRTIO_GPU:
		o = kind_obj("virtiogpu");
		put_bool(o, "usesGUI", d->u.gpu.uses_gui);
		put_u64(o, "width", d->u.gpu.width);
		put_u64(o, "height", d->u.gpu.height);
		break;
	case KV_DEV_VIRTIO_INPUT:
		o = kind_obj("virtioinput");
		put_str(o, "inputType", d->u.input == KV_INPUT_KEYBOARD ? "keyboard" : "pointing");
		break;
	case KV_DEV_VIRTIO_RNG:
		o = kind_obj("virtiorng");
		break;
	case KV_DEV_VIRTIO_BALLOON:
		o = kind_obj("virtioballoon");
		break;
	}
	return o;
}

static json_object *bootloader_json(const struct kv_bootloader *b)
{
	json_object *o;
	switch (b->kind) {
	case KV_BOOT_LINUX:
		o = kind_obj("linuxBootloader");
		put_str(o, "vmlinuzPath", b->kernel);
		put_str(o, "kernelCmdLine", b->cmdline);
		put_str(o, "initrdPath", b->initrd);
		return o;
	case KV_BOOT_EFI:
		o = kind_obj("efiBootloader");
		put_str(o, "efiVariableStorePath", b->efi_store);
		put_bool(o, "createVariableStore", b->efi_create);
		put_opt_str(o, "firmwarePath", b->efi_firmware);
		put_opt_str(o, "firmwareVarsTemplatePath", b->efi_vars_template);
		return o;
	case KV_BOOT_MACOS:
		o = kind_obj("macosBootloader");
		put_str(o, "machineIdentifierPath", b->machine_id_path);
		put_str(o, "hardwareModelPath", b->hw_model_path);
		put_str(o, "auxImagePath", b->aux_image_path);
		return o;
	default:
		return NULL;
	}
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

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static int read_disk(struct rd *r, json_object *o, struct kv_device *d)
{
	struct kv_disk *k = &d->u.disk;
	char *type = NULL, *cache = NULL, *sync = NULL, *format = NULL;
	int rc = -1;
	if (get_bool(r, o, "readOnly", &k->readonly) || get_str(r, o, "imagePath", &k->path) ||
	    get_str(r, o, "type", &type) || get_str(r, o, "cache", &cache) || get_str(r, o, "sync", &sync) ||
	    get_str(r, o, "format", &format))
		goto out;
	if (format && *format && strcmp(format, "raw") && strcmp(format, "qcow2")) {
		kv_fail(r->err, r->errlen, "unexpected value for disk 'format' option: %s (expected raw or qcow2)", format);
		goto out;
	}
	k->qcow2 = format && !strcmp(format, "qcow2");
	if (d->kind == KV_DEV_VIRTIO_BLK && get_str(r, o, "deviceIdentifier", &k->device_id))
		goto out;
	if (type && *type && strcmp(type, "image") && strcmp(type, "dev")) {
		kv_fail(r->err, r->errlen, "unexpected value for disk 'type' option: %s", type);
		goto out;
	}
	k->type = type && !strcmp(type, "dev") ? KV_DISK_DEV : KV_DISK_IMAGE;
	if (cache) {
		if (!strcmp(cache, "cached")) k->cache = KV_CACHE_CACHED;
		else if (!strcmp(cache, "uncached")) k->cache = KV_CACHE_UNCACHED;
		else if (!strcmp(cache, "automatic") || !strcmp(cache, "auto") || !*cache) k->cache = KV_CACHE_AUTOMATIC;
		else { kv_fail(r->err, r->errlen, "unexpected value for disk 'cache' option: %s", cache); goto out; }
	}
	if (sync) {
		if (!strcmp(sync, "full")) k->sync = KV_SYNC_FULL;
		else if (!strcmp(sync, "fsync")) k->sync = KV_SYNC_FSYNC;
		else if (!strcmp(sync, "none")) k->sync = KV_SYNC_NONE;
		else if (!*sync) k->sync = KV_SYNC_DEFAULT;
		else { kv_fail(r->err, r->errlen, "unexpected value for disk 'sync' option: %s", sync); goto out; }
	}
	rc = 0;
out:
	free(type);
	free(cache);
	free(sync);
	free(format);
	return rc;
}

static int read_nbd(struct rd *r, json_object *o, struct kv_device *d)
{
	struct kv_nbd *k = &d->u.nbd;
	char *mode = NULL;
	uint64_t ns = 0;
	bool has_timeout;
	int rc = -1;
	if (get_bool(r, o, "readOnly", &k->readonly) || get_str(r, o, "uri", &k->uri) ||
	    get_str(r, o, "DeviceIdentifier", &k->device_id) ||
	    get_u64(r, o, "Timeout", (uint64_t)INT32_MAX * 1000000, &ns, &has_timeout) ||
	    get_str(r, o, "SynchronizationMode", &mode))
		goto out;
	if (has_timeout)
		k->timeout_ms = (int32_t)(ns / 1000000);
	if (k->device_id && !*k->device_id) {
		free(k->device_id);
		k->device_id = NULL;
	}
	if (mode && *mode && strcmp(mode, "full") && strcmp(mode, "none")) {
		kv_fail(r->err, r->errlen, "invalid sync mode: %s, must be 'full' or 'none'", mode);
		goto out;
	}
	k->sync_none = mode && !strcmp(mode, "none");
	rc = 0;
out:
	free(mode);
	return rc;
}

static int read_net(struct rd *r, json_object *o, struct kv_device *d, unsigned flags)
{
	struct kv_net *k = &d->u.net;
	char *mac = NULL;
	bool magic_set = get(o, "vfkitMagic") != NULL;
	int rc = -1;
	if (get(o, "socket") && !(flags & KV_JSON_RUNTIME)) {
		kv_fail(r->err, r->errlen, "%s: a 'socket' (fd=) network cannot be read from JSON: a file descriptor is not serialisable", r->where);
		goto out;
	}
	if (get_bool(r, o, "nat", &k->nat) || get_str(r, o, "unixSocketPath", &k->unix_path) ||
	    get_bool(r, o, "vfkitMagic", &k->vfkit_magic) || get_str(r, o, "macAddress", &mac) || get_str(r, o, "tap", &k->tap) ||
	    get_bool(r, o, "hostLoopback", &k->host_loopback))
		goto out;
	json_object *fw = get(o, "forwards");
	if (fw) {
		if (!json_object_is_type(fw, json_type_array)) {
			kv_fail(r->err, r->errlen, "%s: 'forwards' must be an array of strings", r->where);
			goto out;
		}
		for (size_t i = 0; i < json_object_array_length(fw); i++) {
			json_object *e = json_object_array_get_idx(fw, i);
			if (!json_object_is_type(e, json_type_string) || !kv_net_forward_valid(json_object_get_string(e))) {
				kv_fail(r->err, r->errlen, "%s: invalid forward %s", r->where, json_object_to_json_string(e));
				goto out;
			}
			if (kv_net_add_forward(k, json_object_get_string(e))) {
				kv_fail(r->err, r->errlen, "out of memory");
				goto out;
			}
		}
	}
	if (k->unix_path && !*k->unix_path) {
		free(k->unix_path);
		k->unix_path = NULL;
	}
	if (!k->unix_path)
		k->vfkit_magic = false;
	else if (!magic_set)
		k->vfkit_magic = true;
	k->type_unixgram = k->unix_path && !k->vfkit_magic;
	if (mac && *mac) {
		if (parse_mac(mac, k->mac) < 0) {
			kv_fail(r->err, r->errlen, "address %s: invalid MAC address", mac);
			goto out;
		}
		k->has_mac = true;
	}
	rc = 0;
out:
	free(mac);
	return rc;
}

static int read_serial(struct rd *r, json_object *o, struct kv_device *d, unsigned flags)
{
	struct kv_serial *k = &d->u.serial;
	bool stdio_ = false, pty = false;
	if (get_str(r, o, "logFile", &k->log_path) || get_bool(r, o, "usesStdio", &stdio_) ||
	    get_bool(r, o, "usesPty", &pty))
		return -1;
	json_object *pn = get(o, "ptyName");
	if (pn && json_object_is_type(pn, json_type_string) && *json_object_get_string(pn) && !(flags & KV_JSON_RUNTIME))
		return kv_fail(r->err, r->errlen, "VirtioSerial.PtyName must be empty");
	if ((flags & KV_JSON_RUNTIME) && get_str(r, o, "ptyName", &k->pty_name))
		return -1;
	int n = (k->log_path && *k->log_path) + stdio_ + pty;
	if (n > 1)
		return kv_fail(r->err, r->errlen, "%s: only one of 'logFile', 'usesStdio' and 'usesPty' may be set", r->where);
	k->mode = k->log_path && *k->log_path ? KV_SERIAL_LOGFILE : stdio_ ? KV_SERIAL_STDIO : pty ? KV_SERIAL_PTY : KV_SERIAL_NONE;
	return 0;
}

static int read_device(struct rd *r, json_object *o, struct kv_config *c, unsigned flags)
{
	static const struct { const char *kind; enum kv_dev_kind k; } kinds[] = {
		{ "virtioblk", KV_DEV_VIRTIO_BLK }, { "nvme", KV_DEV_NVME }, { "usbmassstorage", KV_DEV_USB_MASS_STORAGE },
		{ "nbd", KV_DEV_NBD }, { "virtionet", KV_DEV_VIRTIO_NET }, { "virtiosock", KV_DEV_VIRTIO_VSOCK },
		{ "virtiofs", KV_DEV_VIRTIO_FS }, { "rosetta", KV_DEV_ROSETTA }, { "virtioserial", KV_DEV_VIRTIO_SERIAL },
		{ "virtiogpu", KV_DEV_VIRTIO_GPU }, { "virtioinput", KV_DEV_VIRTIO_INPUT },
		{ "virtiorng", KV_DEV_VIRTIO_RNG }, { "virtioballoon", KV_DEV_VIRTIO_BALLOON },
	};
	if (!json_object_is_type(o, json_type_object))
		return kv_fail(r->err, r->errlen, "%s: a device must be a JSON object", r->where);
	const char *kind = kind_of(o);
	int t = -1;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kind, kinds[i].kind))
			t = (int)i;
	if (t < 0)
		return kv_fail(r->err, r->errlen, "unknown 'kind' field: '%s'", kind);
	struct kv_device *d = kv_config_add_device(c, kinds[t].k);
	if (!d)
		return kv_fail(r->err, r->errlen, "out of memory");
	uint64_t u = 0;
	char *s = NULL;
	int rc = 0;
	switch (d->kind) {
	case KV_DEV_VIRTIO_BLK:
	case KV_DEV_NVME:
	case KV_DEV_USB_MASS_STORAGE: rc = read_disk(r, o, d); break;
	case KV_DEV_NBD: rc = read_nbd(r, o, d); break;
	case KV_DEV_VIRTIO_NET: rc = read_net(r, o, d, flags); break;
	case KV_DEV_VIRTIO_VSOCK: {
		bool has_port;
		d->u.vsock.listen = false; /* absent "listen" means connect */
		rc = get_u64(r, o, "port", UINT32_MAX, &u, &has_port) || get_str(r, o, "socketURL", &d->u.vsock.socket_url) ||
		     get_bool(r, o, "listen", &d->u.vsock.listen) || get_bool(r, o, "mux", &d->u.vsock.mux) ? -1 : 0;
		d->u.vsock.port = (uint32_t)u;
		d->u.vsock.has_port = has_port;
		break;
	}
	case KV_DEV_VIRTIO_FS: {
		char *cache = NULL;
		rc = get_str(r, o, "mountTag", &d->u.fs.mount_tag) || get_str(r, o, "sharedDir", &d->u.fs.shared_dir) ||
		     get_str(r, o, "cache", &cache) || get_u64(r, o, "dax", UINT32_MAX, &u, NULL) ? -1 : 0;
		d->u.fs.dax_mib = (uint32_t)u;
		if (!rc && cache) {
			if (!strcmp(cache, "always")) d->u.fs.cache = KV_FS_CACHE_ALWAYS;
			else if (!strcmp(cache, "never")) d->u.fs.cache = KV_FS_CACHE_NEVER;
			else if (strcmp(cache, "auto") && *cache) rc = kv_fail(r->err, r->errlen, "unexpected value for virtio-fs 'cache' option: %s", cache);
		}
		free(cache);
		break;
	}
	case KV_DEV_ROSETTA:
		rc = get_str(r, o, "mountTag", &d->u.rosetta.mount_tag) || get_bool(r, o, "installRosetta", &d->u.rosetta.install) ||
		     get_bool(r, o, "ignoreIfMissing", &d->u.rosetta.ignore_if_missing) ? -1 : 0;
		break;
	case KV_DEV_VIRTIO_SERIAL: rc = read_serial(r, o, d, flags); break;
	case KV_DEV_VIRTIO_GPU:
		d->u.gpu.width = 800;
		d->u.gpu.height = 600;
		rc = get_bool(r, o, "usesGUI", &d->u.gpu.uses_gui);
		if (!rc && !(rc = get_u64(r, o, "width", 16384, &u, NULL)) && get(o, "width"))
			d->u.gpu.width = (uint32_t)u;
		if (!rc && !(rc = get_u64(r, o, "height", 16384, &u, NULL)) && get(o, "height"))
			d->u.gpu.height = (uint32_t)u;
		break;
	case KV_DEV_VIRTIO_INPUT:
		if ((rc = get_str(r, o, "inputType", &s)) == 0) {
			if (s && !strcmp(s, "pointing")) d->u.input = KV_INPUT_POINTING;
			else if (s && !strcmp(s, "keyboard")) d->u.input = KV_INPUT_KEYBOARD;
			else rc = kv_fail(r->err, r->errlen, "%s: 'inputType' must be \"pointing\" or \"keyboard\"", r->where);
		}
		free(s);
		break;
	case KV_DEV_VIRTIO_RNG:
	case KV_DEV_VIRTIO_BALLOON:
		break;
	}
	if (rc)
		return -1;
	char sub[200];
	if (kv_device_validate(d, sub, sizeof(sub)) < 0)
		return kv_fail(r->err, r->errlen, "%s: %s", r->where, sub);
	return 0;
}

static int read_bootloader(struct rd *r, json_object *o, struct kv_bootloader *b)
{
	if (!json_object_is_type(o, json_type_object))
		return kv_fail(r->err, r->errlen, "bootloader: must be a JSON object");
	const char *kind = kind_of(o);
	if (!strcmp(kind, "linuxBootloader")) {
		b->kind = KV_BOOT_LINUX;
		if (get_str(r, o, "vmlinuzPath", &b->kernel) || get_str(r, o, "kernelCmdLine", &b->cmdline) ||
		    get_str(r, o, "initrdPath", &b->initrd))
			return -1;
		if (!b->kernel || !*b->kernel)
			return kv_fail(r->err, r->errlen, "missing mandatory 'kernel' option for Linux bootloaders");
		return 0;
	}
	if (!strcmp(kind, "efiBootloader")) {
		b->kind = KV_BOOT_EFI;
		if (get_str(r, o, "efiVariableStorePath", &b->efi_store) || get_bool(r, o, "createVariableStore", &b->efi_create) ||
		    get_str(r, o, "firmwarePath", &b->efi_firmware) ||
		    get_str(r, o, "firmwareVarsTemplatePath", &b->efi_vars_template))
			return -1;
		if (!b->efi_store || !*b->efi_store)
			return kv_fail(r->err, r->errlen, "missing mandatory 'variable-store' option for EFI bootloaders");
		return 0;
	}
	if (!strcmp(kind, "macosBootloader")) {
		b->kind = KV_BOOT_MACOS;
		return get_str(r, o, "machineIdentifierPath", &b->machine_id_path) ||
		       get_str(r, o, "hardwareModelPath", &b->hw_model_path) || get_str(r, o, "auxImagePath", &b->aux_image_path)
			       ? -1 : 0;
	}
	return kv_fail(r->err, r->errlen, "unknown 'kind' field: '%s'", kind);
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
	rc = 0;
	goto out;
out_type:
	if (!*err)
		kv_fail(err, errlen, "'%s' must be a JSON object", r.where);
out:
	json_object_put(top);
	return rc;
}
