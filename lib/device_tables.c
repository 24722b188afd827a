/* libkvkit: every device type's options, one table each (the format is in
 * device_options.h). A table is in the order vfkit writes the JSON keys;
 * print_order gives the command-line order where it differs. Error texts
 * are the spec's (docs/usage.md). */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device_options.h"
#include "internal.h"

#define FIELD(f) .off = offsetof(struct kv_device, u.f), .size = sizeof(((struct kv_device *)0)->u.f)
#define COUNT(f) .off2 = offsetof(struct kv_device, u.f)
#define NOPTS(a) (sizeof(a) / sizeof((a)[0]))
/* a descriptor's head: its kind, --device name, JSON kind and option table */
#define DEVICE(k, name, jkind, table) .kind = k, .type = name, .json_kind = jkind, .opts = table, .nopts = NOPTS(table)

static bool always(const struct kv_device *d)
{
	(void)d;
	return true;
}

/* ---------------- disks: virtio-blk, nvme, usb-mass-storage ---------------- */

static const struct kv_opt_name disk_types[] = { { "image", KV_DISK_IMAGE }, { "dev", KV_DISK_DEV }, { NULL, 0 } };
static const struct kv_opt_name disk_caches[] = {
	{ "automatic", KV_CACHE_AUTOMATIC }, { "cached", KV_CACHE_CACHED }, { "uncached", KV_CACHE_UNCACHED },
	{ "auto", KV_CACHE_AUTOMATIC }, { NULL, 0 },
};
static const struct kv_opt_name disk_syncs[] = {
	{ "full", KV_SYNC_FULL }, { "fsync", KV_SYNC_FSYNC }, { "none", KV_SYNC_NONE }, { NULL, 0 },
};
static const struct kv_opt_name disk_formats[] = { { "raw", 0 }, { "qcow2", 1 }, { NULL, 0 } };

static const char *disk_id_check(const char *v)
{
	return strlen(v) > 20 ? "invalid 'deviceId': exceeds maximum length" : NULL;
}

#define DISK_HEAD                                                                                                     \
	{ .key = "readonly", .json = "readOnly", .kind = KV_OPT_FLAG, FIELD(disk.readonly),                          \
	  .what = "virtio-blk 'readonly'" },                                                                          \
	{ .key = "path", .json = "imagePath", .kind = KV_OPT_STRING, FIELD(disk.path) },                             \
	{ .key = "type", .json = "type", .kind = KV_OPT_ENUM, FIELD(disk.type), .names = disk_types,                 \
	  .bad = "unexpected value for disk 'type' option: %s" }
#define DISK_TAIL                                                                                                     \
	{ .key = "cache", .json = "cache", .kind = KV_OPT_ENUM, FIELD(disk.cache), .names = disk_caches,             \
	  .bad = "unexpected value for disk 'cache' option: %s (expected automatic, cached or uncached)" },          \
	{ .key = "sync", .json = "sync", .kind = KV_OPT_ENUM, FIELD(disk.sync), .names = disk_syncs,                 \
	  .bad = "unexpected value for disk 'sync' option: %s (expected full, fsync or none)" },                      \
	{ .key = "format", .json = "format", .kind = KV_OPT_ENUM, FIELD(disk.qcow2), .names = disk_formats,          \
	  .bad = "unexpected value for disk 'format' option: %s (expected raw or qcow2)" }

static const struct kv_opt blk_opts[] = {
	DISK_HEAD,
	{ .key = "deviceId", .json = "deviceIdentifier", .kind = KV_OPT_STRING, FIELD(disk.device_id),
	  .check = disk_id_check },
	DISK_TAIL,
};
static const struct kv_opt disk_opts[] = { DISK_HEAD, DISK_TAIL };
static const char *const disk_print_order[] = { "path", "type", "readonly", "deviceId", "cache", "sync", "format", NULL };

static int disk_derive(struct kv_device *d, uint64_t seen, char *err, size_t errlen)
{
	const struct kv_device_desc *t = kv_desc_of(d->kind);
	int cache = kv_opt_find(t, "cache");
	/* an explicit cache=automatic is refused with type=dev too */
	if (d->u.disk.type == KV_DISK_DEV && (seen & KV_SEEN(cache)) && d->u.disk.path && *d->u.disk.path)
		return kv_fail(err, errlen, "'cache' option is not supported with type=dev");
	return 0;
}

static int disk_rules(const struct kv_device *d, char *err, size_t errlen)
{
	const struct kv_disk *k = &d->u.disk;
	if (!k->path || !*k->path)
		return kv_fail(err, errlen, "missing mandatory 'path' option for %s device", kv_device_type_name(d->kind));
	if (k->type == KV_DISK_DEV && k->cache != KV_CACHE_AUTOMATIC)
		return kv_fail(err, errlen, "'cache' option is not supported with type=dev");
	if (k->type == KV_DISK_DEV && k->qcow2)
		return kv_fail(err, errlen, "'format=qcow2' is not supported with type=dev (block devices are raw)");
	if (k->type == KV_DISK_DEV && k->sync == KV_SYNC_FSYNC)
		return kv_fail(err, errlen, "unexpected value for disk 'sync' option: fsync (type=dev accepts full or none)");
	return 0;
}

#define DISK_DESC(k, name, jkind, table)                                                                              \
	{ DEVICE(k, name, jkind, table), .json_devname = true, .print_order = disk_print_order, .derive = disk_derive, \
	  .rules = disk_rules }

static const struct kv_device_desc virtio_blk = DISK_DESC(KV_DEV_VIRTIO_BLK, "virtio-blk", "virtioblk", blk_opts);
static const struct kv_device_desc nvme = DISK_DESC(KV_DEV_NVME, "nvme", "nvme", disk_opts);
static const struct kv_device_desc usb_mass_storage =
	DISK_DESC(KV_DEV_USB_MASS_STORAGE, "usb-mass-storage", "usbmassstorage", disk_opts);

/* ---------------- nbd ---------------- */

static const char *nbd_id_check(const char *v)
{
	if (strchr(v, '/'))
		return "invalid NBD device 'deviceId': invalid 'deviceId': it cannot contain any forward slash";
	if (strlen(v) > 20)
		return "invalid NBD device 'deviceId': invalid 'deviceId': exceeds maximum length";
	return NULL;
}

static const struct kv_opt_name nbd_syncs[] = { { "full", 0 }, { "none", 1 }, { NULL, 0 } };

static const struct kv_opt nbd_opts[] = {
	{ .key = "readonly", .json = "readOnly", .kind = KV_OPT_FLAG, FIELD(nbd.readonly), .what = "virtio-blk 'readonly'" },
	{ .key = "uri", .json = "uri", .kind = KV_OPT_STRING, FIELD(nbd.uri) },
	{ .key = "deviceId", .json = "DeviceIdentifier", .kind = KV_OPT_STRING, .flags = KV_OPT_EMPTY_NULL,
	  FIELD(nbd.device_id), .check = nbd_id_check, .json_if = always },
	{ .key = "timeout", .json = "Timeout", .kind = KV_OPT_INT, FIELD(nbd.timeout_ms), .min = INT32_MIN,
	  .max = INT32_MAX, .json_scale = 1000000, .bad = "invalid NBD device 'timeout': %s", .json_if = always },
	{ .key = "sync", .json = "SynchronizationMode", .kind = KV_OPT_ENUM, FIELD(nbd.sync_none), .names = nbd_syncs,
	  .bad = "invalid sync mode: %s, must be 'full' or 'none'", .json_if = always },
};
static const char *const nbd_print_order[] = { "uri", "readonly", "deviceId", "timeout", "sync", NULL };

static void nbd_init(struct kv_device *d)
{
	d->u.nbd.timeout_ms = 15000;
}

static int nbd_rules(const struct kv_device *d, char *err, size_t errlen)
{
	const char *uri = d->u.nbd.uri;
	if (!uri || !*uri)
		return kv_fail(err, errlen, "invalid NBD device 'uri': 'uri' must be specified");
	const char *sep = strstr(uri, "://");
	size_t sl = sep ? (size_t)(sep - uri) : strcspn(uri, ":");
	static const char *schemes[] = { "nbd", "nbds", "nbd+unix", "nbds+unix" };
	for (int i = 0; i < 4; i++)
		if (sep && strlen(schemes[i]) == sl && !strncmp(uri, schemes[i], sl))
			return 0;
	return kv_fail(err, errlen,
		       "invalid NBD device 'uri': invalid scheme: %.*s. Expected one of: 'nbd', 'nbds', 'nbd+unix', or 'nbds+unix'",
		       (int)sl, uri);
}

static const struct kv_device_desc nbd = {
	DEVICE(KV_DEV_NBD, "nbd", "nbd", nbd_opts), .json_devname = true, .print_order = nbd_print_order, .init = nbd_init, .rules = nbd_rules,
};

/* ---------------- virtio-net ---------------- */

static bool net_has_sock(const struct kv_device *d)
{
	return d->u.net.unix_path && *d->u.net.unix_path;
}
static bool net_magic_sock(const struct kv_device *d)
{
	return net_has_sock(d) && d->u.net.vfkit_magic;
}
/* a unixgram socket without the hello: written type=unixgram,path= */
static bool net_plain_sock(const struct kv_device *d)
{
	return net_has_sock(d) && !d->u.net.vfkit_magic && !d->u.net.stream;
}
/* type= is written for those and for every stream socket */
static bool net_typed(const struct kv_device *d)
{
	return net_plain_sock(d) || d->u.net.stream;
}
static bool net_typed_path(const struct kv_device *d)
{
	return net_has_sock(d) && net_typed(d);
}
static bool net_stream(const struct kv_device *d)
{
	return d->u.net.stream;
}

static const char *tap_check(const char *v)
{
	return !*v || strlen(v) > 15 || strchr(v, '/') ? "invalid tap interface name '%s': 1 to 15 bytes, no '/'" : NULL;
}

static const char *forward_check(const char *v)
{
	return kv_net_forward_valid(v) ? NULL : "invalid forward '%s': expected tcp|udp:[HOSTADDR]:HOSTPORT:GUESTPORT";
}

/* the socket kind: datagrams (gvproxy's vfkit protocol, vmnet-helper) or
 * a stream with QEMU's length-prefixed frames (passt, gvproxy -listen-qemu) */
static const struct kv_opt_name net_types[] = { { "unixgram", 0 }, { "unixstream", 1 }, { NULL, 0 } };
static const struct kv_opt_name net_offloads[] = { { "off", KV_NET_OFFLOAD_OFF }, { "on", KV_NET_OFFLOAD_ON }, { NULL, 0 } };
/* written only for a tap, where it changes something (a socket takes off
 * alone, which is what it has anyway) */
static bool net_tap_offload(const struct kv_device *d)
{
	return d->u.net.tap && d->u.net.offloading != KV_NET_OFFLOAD_DEFAULT;
}

enum {
	NET_NAT, NET_FD, NET_UNIX, NET_MAGIC, NET_MAC, NET_TAP, NET_FORWARD, NET_LOOPBACK, NET_TYPE, NET_PATH, NET_OFFLOAD,
	NET_JSON_TYPE
};

static const struct kv_opt net_opts[] = {
	[NET_NAT] = { .key = "nat", .json = "nat", .kind = KV_OPT_FLAG, FIELD(net.nat), .json_if = always },
	[NET_FD] = { .key = "fd", .json = "socket", .kind = KV_OPT_FD, FIELD(net.fd), .min = 0, .max = INT32_MAX,
		     .bad = "invalid file descriptor: %s" },
	[NET_UNIX] = { .key = "unixSocketPath", .json = "unixSocketPath", .kind = KV_OPT_STRING, FIELD(net.unix_path),
		       .print_if = net_magic_sock },
	[NET_MAGIC] = { .key = "vfkitMagic", .json = "vfkitMagic", .kind = KV_OPT_ONOFF, FIELD(net.vfkit_magic),
			.bad = "invalid value for vfkitMagic: %s (expected on/off)", .print_if = net_plain_sock,
			.json_if = net_has_sock },
	[NET_MAC] = { .key = "mac", .json = "macAddress", .kind = KV_OPT_MAC, FIELD(net.mac), COUNT(net.has_mac),
		      .bad = "address %s: invalid MAC address" },
	[NET_TAP] = { .key = "tap", .json = "tap", .kind = KV_OPT_STRING, FIELD(net.tap), .check = tap_check },
	[NET_FORWARD] = { .key = "forward", .json = "forwards", .kind = KV_OPT_LIST, FIELD(net.forwards),
			  COUNT(net.nforwards), .check = forward_check },
	[NET_LOOPBACK] = { .key = "hostLoopback", .json = "hostLoopback", .kind = KV_OPT_FLAG, FIELD(net.host_loopback) },
	/* the command line's other spelling of a datagram socket: type=unixgram,path=P */
	[NET_TYPE] = { .key = "type", .kind = KV_OPT_ENUM, FIELD(net.stream), .names = net_types,
		       .bad = "unsupported virtio-net type: %s (expected unixgram or unixstream)", .print_if = net_typed },
	[NET_PATH] = { .key = "path", .kind = KV_OPT_STRING, FIELD(net.unix_path), .print_if = net_typed_path },
	[NET_OFFLOAD] = { .key = "offloading", .json = "offloading", .kind = KV_OPT_ENUM, FIELD(net.offloading),
			  .names = net_offloads, .bad = "invalid value for offloading: %s (expected on or off)",
			  .print_if = net_tap_offload, .json_if = net_tap_offload },
	/* kvkit's JSON key for the socket kind: "unixstream" (absent: datagrams) */
	[NET_JSON_TYPE] = { .json = "type", .kind = KV_OPT_ENUM, FIELD(net.stream), .names = net_types,
			    .bad = "unsupported virtio-net type: %s (expected unixgram or unixstream)", .json_if = net_stream },
};
static const char *const net_print_order[] = { "fd", "tap", "unixSocketPath", "type", "path", "vfkitMagic", "nat",
					       "forward", "hostLoopback", "mac", "offloading", NULL };

static void net_init(struct kv_device *d)
{
	d->u.net.fd = -1;
}

static int net_derive(struct kv_device *d, uint64_t seen, char *err, size_t errlen)
{
	struct kv_net *k = &d->u.net;
	bool has_type = seen & KV_SEEN(NET_TYPE), has_path = seen & KV_SEEN(NET_PATH), has_fd = seen & KV_SEEN(NET_FD);
	if (has_path && !has_type)
		return kv_fail(err, errlen, "'path' option requires 'type' to be specified");
	if (has_type && !has_path && !has_fd) /* krunkit: type=unixgram|unixstream,fd=N */
		return kv_fail(err, errlen, "'type' option requires 'path' to be specified");
	if (has_type && (seen & KV_SEEN(NET_UNIX)))
		return kv_fail(err, errlen, "'type' takes 'path', not 'unixSocketPath'");
	if (k->stream && (seen & KV_SEEN(NET_MAGIC)) && k->vfkit_magic)
		return kv_fail(err, errlen, "'vfkitMagic=on' is for unixgram sockets, not type=unixstream");
	if ((seen & KV_SEEN(NET_OFFLOAD)) && !has_type && !k->tap)
		return kv_fail(err, errlen, "'offloading' option requires 'type' to be specified");
	if (k->unix_path && !*k->unix_path) {
		free(k->unix_path);
		k->unix_path = NULL;
	}
	/* vfkitMagic defaults to on with a socket and means nothing without */
	if (!k->unix_path || k->stream)
		k->vfkit_magic = false; /* the hello is part of the unixgram protocol only */
	else if (!(seen & KV_SEEN(NET_MAGIC)))
		k->vfkit_magic = true;
	k->type_unixgram = net_plain_sock(d);
	if (k->fd < 0 && !k->unix_path && !k->tap)
		k->nat = true; /* kvkit differs: a NIC without a backend is NAT */
	return 0;
}

static int net_rules(const struct kv_device *d, char *err, size_t errlen)
{
	const struct kv_net *k = &d->u.net;
	bool sock = net_has_sock(d), fd = k->fd >= 0;
	if (k->tap && (k->nat || fd || sock))
		return kv_fail(err, errlen, "'tap' and '%s' cannot be set at the same time", k->nat ? "nat" : fd ? "fd" : "unixSocketPath");
	if (k->nat && fd)
		return kv_fail(err, errlen, "'nat' and 'fd' cannot be set at the same time");
	if (k->nat && sock)
		return kv_fail(err, errlen, "'nat' and 'unixSocketPath' cannot be set at the same time");
	if (fd && sock)
		return kv_fail(err, errlen, "'fd' and 'unixSocketPath' cannot be set at the same time");
	if (k->stream && !sock && !fd)
		return kv_fail(err, errlen, "type=unixstream needs 'path' or 'fd'");
	if (k->nforwards && !k->nat)
		return kv_fail(err, errlen, "'forward' needs a 'nat' network");
	if (k->host_loopback && !k->nat)
		return kv_fail(err, errlen, "'hostLoopback' needs a 'nat' network");
	/* krunkit hands the header to vmnet-helper; gvproxy, passt and
	 * libslirp take complete frames, so kvkit refuses rather than send
	 * them headers they would read as frames */
	if (k->offloading == KV_NET_OFFLOAD_ON && !k->tap)
		return kv_fail(err, errlen, "offloading=on needs tap=: only a tap carries the virtio-net header (gvproxy, passt and nat take complete frames)");
	return 0;
}

static const struct kv_device_desc virtio_net = {
	DEVICE(KV_DEV_VIRTIO_NET, "virtio-net", "virtionet", net_opts), .print_order = net_print_order, .init = net_init, .derive = net_derive,
	.rules = net_rules,
};

/* ---------------- virtio-vsock ---------------- */

static bool vsock_not_mux(const struct kv_device *d)
{
	return !d->u.vsock.mux;
}
static bool vsock_listens(const struct kv_device *d)
{
	return !d->u.vsock.mux && d->u.vsock.listen;
}
static bool vsock_connects(const struct kv_device *d)
{
	return !d->u.vsock.mux && !d->u.vsock.listen;
}

static const struct kv_opt vsock_opts[] = {
	{ .key = "port", .json = "port", .kind = KV_OPT_UINT, FIELD(vsock.port), COUNT(vsock.has_port), .min = 0,
	  .max = UINT32_MAX, .bad = "invalid vsock port: %s", .json_if = vsock_not_mux },
	{ .key = "socketURL", .json = "socketURL", .kind = KV_OPT_STRING, FIELD(vsock.socket_url), .json_if = always },
	/* the command line names the direction with a flag, JSON with "listen" */
	{ .key = "listen", .kind = KV_OPT_SET, .flags = KV_OPT_WARN_VALUE, FIELD(vsock.listen), .value = 1,
	  .print_if = vsock_listens },
	{ .key = "connect", .kind = KV_OPT_SET, .flags = KV_OPT_WARN_VALUE, FIELD(vsock.listen), .value = 0,
	  .print_if = vsock_connects },
	{ .json = "listen", .kind = KV_OPT_FLAG, FIELD(vsock.listen), .json_if = vsock_listens },
	{ .key = "mux", .json = "mux", .kind = KV_OPT_FLAG, .flags = KV_OPT_WARN_VALUE, FIELD(vsock.mux) },
};

static void vsock_init(struct kv_device *d)
{
	d->u.vsock.listen = true;
}

static int vsock_rules(const struct kv_device *d, char *err, size_t errlen)
{
	const struct kv_vsock *k = &d->u.vsock;
	bool url = k->socket_url && *k->socket_url;
	if (k->mux && (k->has_port || !url))
		return kv_fail(err, errlen, "virtio-vsock 'mux' needs 'socketURL' and takes no 'port'");
	if (url && !k->has_port && !k->mux)
		return kv_fail(err, errlen, "missing 'port' option for virtio-vsock device with 'socketURL'");
	return 0;
}

static const struct kv_device_desc virtio_vsock = {
	DEVICE(KV_DEV_VIRTIO_VSOCK, "virtio-vsock", "virtiosock", vsock_opts), .init = vsock_init, .rules = vsock_rules,
};

/* ---------------- virtio-fs ---------------- */

static const struct kv_opt_name fs_caches[] = {
	{ "auto", KV_FS_CACHE_AUTO }, { "always", KV_FS_CACHE_ALWAYS }, { "never", KV_FS_CACHE_NEVER }, { NULL, 0 },
};

static const char *dax_check(const char *v)
{
	return kv_dax_mib_ok(strtoull(v, NULL, 10)) ? NULL : "invalid virtio-fs 'dax' window: %s (" KV_DAX_MIB_HINT ")";
}

static const char *tag_check(const char *v)
{
	return strlen(v) > 36 ? "invalid virtio-fs mount tag '%s': must be 1 to 36 bytes" : NULL;
}

static const struct kv_opt fs_opts[] = {
	{ .key = "mountTag", .json = "mountTag", .kind = KV_OPT_STRING, FIELD(fs.mount_tag), .check = tag_check,
	  .json_if = always },
	{ .key = "sharedDir", .json = "sharedDir", .kind = KV_OPT_STRING, FIELD(fs.shared_dir), .json_if = always },
	{ .key = "cache", .json = "cache", .kind = KV_OPT_ENUM, FIELD(fs.cache), .names = fs_caches,
	  .bad = "unexpected value for virtio-fs 'cache' option: %s (expected auto, always or never)" },
	{ .key = "dax", .json = "dax", .kind = KV_OPT_UINT, FIELD(fs.dax_mib), .min = 0, .max = UINT32_MAX,
	  .bad = "invalid virtio-fs 'dax' window: %s (" KV_DAX_MIB_HINT ")", .check = dax_check },
};
static const char *const fs_print_order[] = { "sharedDir", "mountTag", "cache", "dax", NULL };

/* The mount tag defaults to the folder's name. */
static int fs_derive(struct kv_device *d, uint64_t seen, char *err, size_t errlen)
{
	struct kv_fs *k = &d->u.fs;
	(void)seen;
	if (!k->shared_dir || !*k->shared_dir || (k->mount_tag && *k->mount_tag))
		return 0;
	size_t l = strlen(k->shared_dir);
	while (l > 1 && k->shared_dir[l - 1] == '/')
		l--;
	const char *b = k->shared_dir + l;
	while (b > k->shared_dir && b[-1] != '/')
		b--;
	free(k->mount_tag);
	if (!(k->mount_tag = strndup(b, k->shared_dir + l - b)))
		return kv_fail(err, errlen, "out of memory");
	return 0;
}

static int fs_rules(const struct kv_device *d, char *err, size_t errlen)
{
	const struct kv_fs *k = &d->u.fs;
	if (!k->shared_dir || !*k->shared_dir)
		return kv_fail(err, errlen, "missing mandatory 'sharedDir' option for virtio-fs device");
	if (!k->mount_tag || !*k->mount_tag)
		return kv_fail(err, errlen, "invalid virtio-fs mount tag '%s': must be 1 to 36 bytes", k->mount_tag ? k->mount_tag : "");
	return 0;
}

static const struct kv_device_desc virtio_fs = {
	DEVICE(KV_DEV_VIRTIO_FS, "virtio-fs", "virtiofs", fs_opts), .print_order = fs_print_order, .derive = fs_derive, .rules = fs_rules,
};

/* ---------------- rosetta (parsed, then refused on Linux) ---------------- */

static const struct kv_opt rosetta_opts[] = {
	{ .key = "mountTag", .json = "mountTag", .kind = KV_OPT_STRING, FIELD(rosetta.mount_tag), .print_if = always,
	  .json_if = always },
	{ .key = "install", .json = "installRosetta", .kind = KV_OPT_FLAG, FIELD(rosetta.install), .json_if = always },
	{ .key = "ignore-if-missing", .alias = "ignoreIfMissing", .json = "ignoreIfMissing", .kind = KV_OPT_FLAG,
	  .flags = KV_OPT_WARN_VALUE, FIELD(rosetta.ignore_if_missing), .json_if = always },
};

static const struct kv_device_desc rosetta = {
	DEVICE(KV_DEV_ROSETTA, "rosetta", "rosetta", rosetta_opts), .noun = "rosetta share",
};

/* ---------------- virtio-serial ---------------- */

static bool serial_logs(const struct kv_device *d)
{
	return d->u.serial.mode == KV_SERIAL_LOGFILE && d->u.serial.log_path && *d->u.serial.log_path;
}

enum { SERIAL_LOG, SERIAL_STDIO, SERIAL_PTY };

static const struct kv_opt serial_opts[] = {
	[SERIAL_LOG] = { .key = "logFilePath", .json = "logFile", .kind = KV_OPT_STRING, FIELD(serial.log_path),
			 .print_if = serial_logs, .json_if = serial_logs },
	[SERIAL_STDIO] = { .key = "stdio", .json = "usesStdio", .kind = KV_OPT_SET, FIELD(serial.mode),
			   .value = KV_SERIAL_STDIO },
	[SERIAL_PTY] = { .key = "pty", .json = "usesPty", .kind = KV_OPT_SET, .flags = KV_OPT_WARN_VALUE,
			 FIELD(serial.mode), .value = KV_SERIAL_PTY },
	{ .json = "ptyName", .kind = KV_OPT_STRING, .flags = KV_OPT_RUNTIME, FIELD(serial.pty_name),
	  .bad = "VirtioSerial.PtyName must be empty" },
};

static int serial_derive(struct kv_device *d, uint64_t seen, char *err, size_t errlen)
{
	bool lf = seen & KV_SEEN(SERIAL_LOG), st = seen & KV_SEEN(SERIAL_STDIO), pty = seen & KV_SEEN(SERIAL_PTY);
	if (lf && st) return kv_fail(err, errlen, "'logFilePath' and 'stdio' cannot be set at the same time");
	if (lf && pty) return kv_fail(err, errlen, "'logFilePath' and 'pty' cannot be set at the same time");
	if (st && pty) return kv_fail(err, errlen, "'stdio' and 'pty' cannot be set at the same time");
	if (lf && d->u.serial.log_path && *d->u.serial.log_path)
		d->u.serial.mode = KV_SERIAL_LOGFILE;
	return 0;
}

static int serial_rules(const struct kv_device *d, char *err, size_t errlen)
{
	if (d->u.serial.mode == KV_SERIAL_NONE || (d->u.serial.mode == KV_SERIAL_LOGFILE && !serial_logs(d)))
		return kv_fail(err, errlen, "one of 'logFilePath', 'stdio' or 'pty' must be set");
	return 0;
}

static const struct kv_device_desc virtio_serial = {
	DEVICE(KV_DEV_VIRTIO_SERIAL, "virtio-serial", "virtioserial", serial_opts), .derive = serial_derive, .rules = serial_rules,
};

/* ---------------- virtio-gpu ---------------- */

static const char *vnc_check(const char *v)
{
	char host[256], path[108];
	unsigned port;
	return kv_vnc_address(v, host, sizeof(host), &port, path, sizeof(path)) < 0
		       ? "invalid value for virtio-gpu vnc: %s (expected HOST:PORT or unix:PATH)"
		       : NULL;
}

static const struct kv_opt gpu_opts[] = {
	{ .json = "usesGUI", .kind = KV_OPT_FLAG, FIELD(gpu.uses_gui), .json_if = always },
	{ .key = "width", .json = "width", .kind = KV_OPT_UINT, FIELD(gpu.width), .min = 1, .max = 16384,
	  .bad = "invalid value for virtio-gpu width: %s", .print_if = always, .json_if = always },
	{ .key = "height", .json = "height", .kind = KV_OPT_UINT, FIELD(gpu.height), .min = 1, .max = 16384,
	  .bad = "invalid value for virtio-gpu height: %s", .print_if = always, .json_if = always },
	/* kvkit: the screen over VNC (docs/display.md) */
	{ .key = "vnc", .json = "vnc", .kind = KV_OPT_STRING, FIELD(gpu.vnc), .check = vnc_check },
};

static void gpu_init(struct kv_device *d)
{
	d->u.gpu.width = 800;
	d->u.gpu.height = 600;
}

static const struct kv_device_desc virtio_gpu = {
	DEVICE(KV_DEV_VIRTIO_GPU, "virtio-gpu", "virtiogpu", gpu_opts), .init = gpu_init,
};

/* ---------------- virtio-input ---------------- */

static const struct kv_opt_name input_kinds[] = { { "pointing", KV_INPUT_POINTING }, { "keyboard", KV_INPUT_KEYBOARD }, { NULL, 0 } };

enum { INPUT_POINTING, INPUT_KEYBOARD };

static const struct kv_opt input_opts[] = {
	[INPUT_POINTING] = { .key = "pointing", .kind = KV_OPT_SET, FIELD(input), .value = KV_INPUT_POINTING,
			     .what = "virtio-input pointing" },
	[INPUT_KEYBOARD] = { .key = "keyboard", .kind = KV_OPT_SET, FIELD(input), .value = KV_INPUT_KEYBOARD,
			     .what = "virtio-input keyboard" },
	{ .json = "inputType", .kind = KV_OPT_ENUM, FIELD(input), .names = input_kinds,
	  .bad = "'inputType' must be \"pointing\" or \"keyboard\"", .json_if = always },
};

static int input_derive(struct kv_device *d, uint64_t seen, char *err, size_t errlen)
{
	(void)d;
	if ((seen & KV_SEEN(INPUT_POINTING)) && (seen & KV_SEEN(INPUT_KEYBOARD)))
		return kv_fail(err, errlen, "'pointing' and 'keyboard' cannot be set at the same time");
	return 0;
}

static int input_rules(const struct kv_device *d, char *err, size_t errlen)
{
	if (d->u.input == KV_INPUT_NONE)
		return kv_fail(err, errlen, "unknown option for virtio-input devices: ");
	return 0;
}

static const struct kv_device_desc virtio_input = {
	DEVICE(KV_DEV_VIRTIO_INPUT, "virtio-input", "virtioinput", input_opts), .derive = input_derive, .rules = input_rules,
};

/* ---------------- devices without options ---------------- */

static const struct kv_device_desc virtio_rng = { .kind = KV_DEV_VIRTIO_RNG, .type = "virtio-rng", .json_kind = "virtiorng" };
static const struct kv_device_desc virtio_balloon = {
	.kind = KV_DEV_VIRTIO_BALLOON, .type = "virtio-balloon", .json_kind = "virtioballoon",
};

/* ---------------- the registry ---------------- */

const struct kv_device_desc *const kv_device_descs[] = {
	&virtio_blk, &nvme, &usb_mass_storage, &nbd, &virtio_net, &virtio_vsock, &virtio_fs,
	&virtio_serial, &virtio_rng, &virtio_balloon, &virtio_gpu, &virtio_input, &rosetta,
};
const size_t kv_ndevice_descs = NOPTS(kv_device_descs);
