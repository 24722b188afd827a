/* libkvkit configuration model: allocation and naming. */
#include <kvkit/config.h>
#include <stdlib.h>
#include <string.h>

void kv_config_init(struct kv_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus = 1;
	c->memory_bytes = 512ULL << 20;
}

static void device_free(struct kv_device *d)
{
	switch (d->kind) {
	case KV_DEV_VIRTIO_BLK:
	case KV_DEV_NVME:
	case KV_DEV_USB_MASS_STORAGE:
		free(d->u.disk.path);
		free(d->u.disk.device_id);
		break;
	case KV_DEV_NBD:
		free(d->u.nbd.uri);
		free(d->u.nbd.device_id);
		break;
	case KV_DEV_VIRTIO_NET:
		free(d->u.net.unix_path);
		break;
	case KV_DEV_VIRTIO_VSOCK:
		free(d->u.vsock.socket_url);
		break;
	case KV_DEV_VIRTIO_FS:
		free(d->u.fs.shared_dir);
		free(d->u.fs.mount_tag);
		break;
	case KV_DEV_VIRTIO_SERIAL:
		free(d->u.serial.log_path);
		free(d->u.serial.pty_name);
		break;
	case KV_DEV_ROSETTA:
		free(d->u.rosetta.mount_tag);
		break;
	default:
		break;
	}
}

void kv_config_free(struct kv_config *c)
{
	free(c->boot.kernel);
	free(c->boot.initrd);
	free(c->boot.cmdline);
	free(c->boot.efi_store);
	free(c->boot.machine_id_path);
	free(c->boot.hw_model_path);
	free(c->boot.aux_image_path);
	for (size_t i = 0; i < c->ndevices; i++)
		device_free(&c->devices[i]);
	free(c->devices);
	for (size_t i = 0; i < c->ncloud_init; i++)
		free(c->cloud_init[i]);
	free(c->cloud_init);
	free(c->restful_uri);
	free(c->ignition);
	free(c->pidfile);
	kv_config_init(c);
}

struct kv_device *kv_config_add_device(struct kv_config *c, enum kv_dev_kind kind)
{
	struct kv_device *n = realloc(c->devices, (c->ndevices + 1) * sizeof(*n));
	if (!n)
		return NULL;
	c->devices = n;
	struct kv_device *d = &n[c->ndevices++];
	memset(d, 0, sizeof(*d));
	d->kind = kind;
	if (kind == KV_DEV_VIRTIO_NET)
		d->u.net.fd = -1;
	if (kind == KV_DEV_NBD)
		d->u.nbd.timeout_ms = 15000;
	if (kind == KV_DEV_VIRTIO_VSOCK)
		d->u.vsock.listen = true;
	return d;
}

const char *kv_device_type_name(enum kv_dev_kind kind)
{
	static const char *names[] = {
		[KV_DEV_VIRTIO_BLK] = "virtio-blk",   [KV_DEV_NVME] = "nvme",
		[KV_DEV_USB_MASS_STORAGE] = "usb-mass-storage", [KV_DEV_NBD] = "nbd",
		[KV_DEV_VIRTIO_NET] = "virtio-net",   [KV_DEV_VIRTIO_VSOCK] = "virtio-vsock",
		[KV_DEV_VIRTIO_FS] = "virtio-fs",     [KV_DEV_VIRTIO_SERIAL] = "virtio-serial",
		[KV_DEV_VIRTIO_RNG] = "virtio-rng",   [KV_DEV_VIRTIO_BALLOON] = "virtio-balloon",
		[KV_DEV_VIRTIO_GPU] = "virtio-gpu",   [KV_DEV_VIRTIO_INPUT] = "virtio-input",
		[KV_DEV_ROSETTA] = "rosetta",
	};
	return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "unknown";
}
