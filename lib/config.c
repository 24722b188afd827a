/* libkvkit configuration model: allocation and naming. */
#include <kvkit/config.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device_options.h"
#include "internal.h"

int kv_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void kv_config_init(struct kv_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus = 1;
	c->memory_bytes = 512ULL << 20;
}

void kv_bootloader_clear(struct kv_bootloader *b)
{
	free(b->kernel);
	free(b->initrd);
	free(b->cmdline);
	free(b->efi_store);
	free(b->efi_firmware);
	free(b->efi_vars_template);
	free(b->machine_id_path);
	free(b->hw_model_path);
	free(b->aux_image_path);
	memset(b, 0, sizeof(*b));
}

void kv_config_free(struct kv_config *c)
{
	kv_bootloader_clear(&c->boot);
	for (size_t i = 0; i < c->ndevices; i++)
		kv_device_free_fields(&c->devices[i]);
	free(c->devices);
	for (size_t i = 0; i < c->ncloud_init; i++)
		free(c->cloud_init[i]);
	free(c->cloud_init);
	free(c->restful_uri);
	free(c->ignition);
	free(c->pidfile);
	free(c->user);
	kv_config_init(c);
}

struct kv_device *kv_config_add_device(struct kv_config *c, enum kv_dev_kind kind)
{
	struct kv_device *n = realloc(c->devices, (c->ndevices + 1) * sizeof(*n));
	if (!n)
		return NULL;
	c->devices = n;
	struct kv_device *d = &n[c->ndevices++];
	kv_device_init(d, kind); /* the defaults from its option table */
	return d;
}

/* ---------------- constructors ---------------- */

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int kv_config_set_linux_boot(struct kv_config *c, const char *kernel, const char *initrd, const char *cmdline)
{
	bool oom = false;
	struct kv_bootloader b = { .kind = KV_BOOT_LINUX };
	b.kernel = dup_or_null(kernel, &oom);
	b.initrd = dup_or_null(initrd, &oom);
	b.cmdline = dup_or_null(cmdline, &oom);
	if (oom) {
		kv_bootloader_clear(&b);
		return -1;
	}
	kv_bootloader_clear(&c->boot);
	c->boot = b;
	return 0;
}

int kv_config_set_efi_boot(struct kv_config *c, const char *variable_store, bool create)
{
	char *store = strdup(variable_store ? variable_store : "");
	if (!store)
		return -1;
	kv_bootloader_clear(&c->boot);
	c->boot.kind = KV_BOOT_EFI;
	c->boot.efi_store = store;
	c->boot.efi_create = create;
	return 0;
}

/* Add a device; undo it when a string could not be copied. */
static struct kv_device *added(struct kv_config *c, bool oom)
{
	if (!oom)
		return &c->devices[c->ndevices - 1];
	kv_device_free_fields(&c->devices[--c->ndevices]);
	return NULL;
}

#define AT(f) offsetof(struct kv_device, u.f)

/* Add a device of this kind with copies of up to two strings at those
 * offsets (off2 0: one string); NULL when out of memory. */
static struct kv_device *add_with(struct kv_config *c, enum kv_dev_kind kind, size_t off1, const char *s1, size_t off2,
				  const char *s2)
{
	bool oom = false;
	struct kv_device *d = kv_config_add_device(c, kind);
	if (!d)
		return NULL;
	*(char **)((char *)d + off1) = dup_or_null(s1, &oom);
	if (off2)
		*(char **)((char *)d + off2) = dup_or_null(s2, &oom);
	return added(c, oom);
}

struct kv_device *kv_add_disk(struct kv_config *c, enum kv_dev_kind kind, const char *path, bool readonly)
{
	struct kv_device *d = add_with(c, kind, AT(disk.path), path, 0, NULL);
	if (d)
		d->u.disk.readonly = readonly;
	return d;
}

struct kv_device *kv_add_nbd(struct kv_config *c, const char *uri)
{
	return add_with(c, KV_DEV_NBD, AT(nbd.uri), uri, 0, NULL);
}

struct kv_device *kv_add_net_nat(struct kv_config *c)
{
	struct kv_device *d = kv_config_add_device(c, KV_DEV_VIRTIO_NET);
	if (d)
		d->u.net.nat = true;
	return d;
}

struct kv_device *kv_add_net_unixgram(struct kv_config *c, const char *path, bool vfkit_magic)
{
	struct kv_device *d = add_with(c, KV_DEV_VIRTIO_NET, AT(net.unix_path), path, 0, NULL);
	if (d) {
		d->u.net.vfkit_magic = vfkit_magic;
		d->u.net.type_unixgram = !vfkit_magic;
	}
	return d;
}

struct kv_device *kv_add_net_fd(struct kv_config *c, int fd)
{
	struct kv_device *d = kv_config_add_device(c, KV_DEV_VIRTIO_NET);
	if (d)
		d->u.net.fd = fd;
	return d;
}

struct kv_device *kv_add_net_tap(struct kv_config *c, const char *ifname)
{
	return add_with(c, KV_DEV_VIRTIO_NET, AT(net.tap), ifname, 0, NULL);
}

void kv_config_normalize_gui(struct kv_config *c)
{
	bool first = true;
	for (size_t i = 0; i < c->ndevices; i++)
		if (c->devices[i].kind == KV_DEV_VIRTIO_GPU && c->devices[i].u.gpu.uses_gui)
			c->gui = true;
	for (size_t i = 0; i < c->ndevices; i++)
		if (c->devices[i].kind == KV_DEV_VIRTIO_GPU) {
			c->devices[i].u.gpu.uses_gui = c->gui && first;
			first = false;
		}
}

int kv_vnc_address(const char *spec, char *host, size_t hostlen, unsigned *port, char *path, size_t pathlen)
{
	*host = *path = 0;
	*port = 0;
	if (!strncmp(spec, "unix:", 5)) {
		size_t n = strlen(spec + 5);
		if (n == 0 || n >= pathlen || n >= 108) /* sun_path */
			return -1;
		memcpy(path, spec + 5, n + 1);
		return 0;
	}
	const char *colon = strrchr(spec, ':');
	char *end;
	if (!colon || !colon[1])
		return -1;
	errno = 0;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end || errno || p == 0 || p > 65535 || colon[1] < '0' || colon[1] > '9')
		return -1;
	const char *h = spec;
	size_t n = (size_t)(colon - spec);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') /* [IPv6]:PORT */
		h++, n -= 2;
	else if (memchr(h, ':', n) || memchr(h, '[', n) || memchr(h, ']', n))
		return -1;
	if (n >= hostlen)
		return -1;
	memcpy(host, h, n);
	host[n] = 0;
	*port = (unsigned)p;
	return 0;
}

bool kv_net_forward_valid(const char *spec)
{
	char proto[8], addr[64];
	unsigned hp, gp;
	char tail;
	const char *p = spec;
	size_t pl = strcspn(p, ":");
	if (pl == 0 || pl >= sizeof(proto))
		return false;
	memcpy(proto, p, pl);
	proto[pl] = 0;
	if (strcmp(proto, "tcp") && strcmp(proto, "udp"))
		return false;
	p += pl;
	if (*p++ != ':')
		return false;
	size_t al = strcspn(p, ":");
	if (al >= sizeof(addr))
		return false;
	memcpy(addr, p, al);
	addr[al] = 0;
	p += al;
	if (*p++ != ':' || sscanf(p, "%u:%u%c", &hp, &gp, &tail) != 2 || !hp || hp > 65535 || !gp || gp > 65535)
		return false;
	for (const char *q = p; *q; q++)
		if ((*q < '0' || *q > '9') && *q != ':')
			return false;
	if (*addr) {
		unsigned a, b, cc, dd;
		if (sscanf(addr, "%u.%u.%u.%u%c", &a, &b, &cc, &dd, &tail) != 4 || a > 255 || b > 255 || cc > 255 || dd > 255)
			return false;
	}
	return true;
}

int kv_net_add_forward(struct kv_net *n, const char *spec)
{
	char **v = realloc(n->forwards, (n->nforwards + 1) * sizeof(char *));
	if (!v)
		return -1;
	n->forwards = v;
	if (!(v[n->nforwards] = strdup(spec)))
		return -1;
	n->nforwards++;
	return 0;
}

struct kv_device *kv_add_vsock(struct kv_config *c, uint32_t port, const char *socket_path, bool listen)
{
	struct kv_device *d = add_with(c, KV_DEV_VIRTIO_VSOCK, AT(vsock.socket_url), socket_path, 0, NULL);
	if (d) {
		d->u.vsock.port = port;
		d->u.vsock.has_port = true;
		d->u.vsock.listen = listen;
	}
	return d;
}

struct kv_device *kv_add_fs(struct kv_config *c, const char *shared_dir, const char *mount_tag)
{
	return add_with(c, KV_DEV_VIRTIO_FS, AT(fs.shared_dir), shared_dir, AT(fs.mount_tag), mount_tag);
}

struct kv_device *kv_add_serial(struct kv_config *c, enum kv_serial_mode mode, const char *log_path)
{
	struct kv_device *d = add_with(c, KV_DEV_VIRTIO_SERIAL, AT(serial.log_path),
				       mode == KV_SERIAL_LOGFILE ? log_path : NULL, 0, NULL);
	if (d)
		d->u.serial.mode = mode;
	return d;
}

struct kv_device *kv_add_gpu(struct kv_config *c, uint32_t width, uint32_t height)
{
	struct kv_device *d = kv_config_add_device(c, KV_DEV_VIRTIO_GPU);
	if (d) {
		d->u.gpu.width = width ? width : 800;
		d->u.gpu.height = height ? height : 600;
	}
	return d;
}

struct kv_device *kv_add_input(struct kv_config *c, enum kv_input_kind kind)
{
	struct kv_device *d = kv_config_add_device(c, KV_DEV_VIRTIO_INPUT);
	if (d)
		d->u.input = kind;
	return d;
}

struct kv_device *kv_add_simple(struct kv_config *c, enum kv_dev_kind kind)
{
	return kv_config_add_device(c, kind);
}
