/* libkvkit: the VM configuration model shared by the kvkit binary, the
 * vfkit command-line parser and (later) the JSON reader/printer. */
#ifndef KVKIT_CONFIG_H
#define KVKIT_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum kv_boot_kind { KV_BOOT_NONE = 0, KV_BOOT_LINUX, KV_BOOT_EFI, KV_BOOT_MACOS };

struct kv_bootloader {
	enum kv_boot_kind kind;
	/* linux */
	char *kernel, *initrd, *cmdline;
	/* efi */
	char *efi_store;
	bool efi_create;
	/* kvkit only: the firmware code image and its variable-store template
	 * (NULL: Debian's OVMF) */
	char *efi_firmware, *efi_vars_template;
	/* macos (parsed, then refused) */
	char *machine_id_path, *hw_model_path, *aux_image_path;
};

enum kv_dev_kind {
	KV_DEV_VIRTIO_BLK,
	KV_DEV_NVME,
	KV_DEV_USB_MASS_STORAGE,
	KV_DEV_NBD,
	KV_DEV_VIRTIO_NET,
	KV_DEV_VIRTIO_VSOCK,
	KV_DEV_VIRTIO_FS,
	KV_DEV_VIRTIO_SERIAL,
	KV_DEV_VIRTIO_RNG,
	KV_DEV_VIRTIO_BALLOON,
	KV_DEV_VIRTIO_GPU,
	KV_DEV_VIRTIO_INPUT,
	KV_DEV_ROSETTA,
};

enum kv_disk_type { KV_DISK_IMAGE = 0, KV_DISK_DEV };
enum kv_disk_cache { KV_CACHE_AUTOMATIC = 0, KV_CACHE_CACHED, KV_CACHE_UNCACHED };
enum kv_disk_sync { KV_SYNC_DEFAULT = 0, KV_SYNC_FULL, KV_SYNC_FSYNC, KV_SYNC_NONE };

struct kv_disk {
	char *path;
	enum kv_disk_type type;
	bool readonly;
	char *device_id; /* virtio-blk only */
	enum kv_disk_cache cache;
	enum kv_disk_sync sync;
	bool qcow2; /* format=qcow2 (krunkit's option); raw otherwise */
};

struct kv_nbd {
	char *uri;
	char *device_id;
	int32_t timeout_ms;  /* default 15000 */
	bool sync_none;      /* sync=none */
	bool readonly;
};

/* krunkit's offloading=on|off: checksum and TSO offloads with the virtio-net
 * header. Only tap carries the header, so only tap takes on (its default). */
enum kv_net_offload { KV_NET_OFFLOAD_DEFAULT = 0, KV_NET_OFFLOAD_OFF, KV_NET_OFFLOAD_ON };

struct kv_net {
	bool nat;
	int fd;               /* -1 when unset */
	char *unix_path;      /* unixSocketPath= or path= */
	bool type_unixgram;   /* given as type=unixgram,path= */
	bool stream;          /* type=unixstream (krunkit): QEMU's stream framing on path= or fd= */
	bool vfkit_magic;     /* default on whenever a path is given */
	bool has_mac;
	uint8_t mac[6];
	char *tap;            /* kvkit: tap=IFNAME */
	char **forwards;      /* kvkit: forward=tcp|udp:[HOSTADDR]:HOSTPORT:GUESTPORT (nat) */
	size_t nforwards;
	bool host_loopback;   /* kvkit: hostLoopback (nat): 10.0.2.2 reaches the host's 127.0.0.1 */
	enum kv_net_offload offloading; /* krunkit's offloading=: tap offloads unless off; sockets only off */
};

struct kv_vsock {
	bool has_port;
	uint32_t port;
	char *socket_url;
	bool listen; /* true = listen (default), false = connect */
	bool mux;    /* kvkit: one socket for every port (Firecracker's CONNECT protocol) */
};

/* kvkit: how long the guest may trust what it cached of a share */
enum kv_fs_cache { KV_FS_CACHE_AUTO = 0, KV_FS_CACHE_ALWAYS, KV_FS_CACHE_NEVER };

struct kv_fs {
	char *shared_dir;
	char *mount_tag;
	enum kv_fs_cache cache;
	uint32_t dax_mib; /* kvkit: DAX window in MiB (a power of two, 2 to 256); 0: none */
};

enum kv_serial_mode { KV_SERIAL_NONE = 0, KV_SERIAL_LOGFILE, KV_SERIAL_STDIO, KV_SERIAL_PTY };

struct kv_serial {
	enum kv_serial_mode mode;
	char *log_path;
	char *pty_name; /* runtime only */
};

struct kv_gpu {
	uint32_t width, height;
	bool uses_gui;
	char *vnc; /* kvkit: serve the screen over VNC at "HOST:PORT" or "unix:PATH" */
};

enum kv_input_kind { KV_INPUT_NONE = 0, KV_INPUT_POINTING, KV_INPUT_KEYBOARD };

struct kv_rosetta {
	char *mount_tag;
	bool install;
	bool ignore_if_missing;
};

struct kv_device {
	enum kv_dev_kind kind;
	union {
		struct kv_disk disk;
		struct kv_nbd nbd;
		struct kv_net net;
		struct kv_vsock vsock;
		struct kv_fs fs;
		struct kv_serial serial;
		struct kv_gpu gpu;
		enum kv_input_kind input;
		struct kv_rosetta rosetta;
	} u;
};

enum kv_log_level { KV_LOG_INFO = 0, KV_LOG_DEBUG, KV_LOG_ERROR };

struct kv_config {
	uint32_t cpus;          /* default 1 */
	uint64_t memory_bytes;  /* default 512 MiB */
	struct kv_bootloader boot;
	struct kv_device *devices;
	size_t ndevices;
	bool has_timesync;
	uint32_t timesync_port;
	char *restful_uri;      /* NULL = none:// */
	enum kv_log_level log_level;
	bool gui;
	char *ignition;
	char **cloud_init;
	size_t ncloud_init;
	bool nested;
	char *pidfile;
	bool sandbox_off; /* --sandbox off: no seccomp filter (docs/security.md) */
	char *user;       /* --user: the user kvkit becomes once everything is open */
};

void kv_config_init(struct kv_config *c);
void kv_config_free(struct kv_config *c);
/* Free the bootloader's strings and reset it to KV_BOOT_NONE. */
void kv_bootloader_clear(struct kv_bootloader *b);
/* Append a zeroed device of this kind; NULL when out of memory. */
struct kv_device *kv_config_add_device(struct kv_config *c, enum kv_dev_kind kind);
/* The rules a device meets whatever built it (command line, JSON,
 * constructors): values in range, required options, options that exclude
 * each other. -1 with err. */
int kv_device_validate(const struct kv_device *d, char *err, size_t errlen);
/* kv_device_validate over every device; err is "--device TYPE: why". */
int kv_config_validate(const struct kv_config *c, char *err, size_t errlen);
/* vfkit's name for a device kind ("virtio-blk", ...). */
const char *kv_device_type_name(enum kv_dev_kind kind);

/* Constructors, one per form of the spec (vfkit's config package has the
 * same set). Strings are copied. NULL (or -1) when out of memory. */
int kv_config_set_linux_boot(struct kv_config *c, const char *kernel, const char *initrd, const char *cmdline);
int kv_config_set_efi_boot(struct kv_config *c, const char *variable_store, bool create);
struct kv_device *kv_add_disk(struct kv_config *c, enum kv_dev_kind kind, const char *path, bool readonly);
struct kv_device *kv_add_nbd(struct kv_config *c, const char *uri);
struct kv_device *kv_add_net_nat(struct kv_config *c);
struct kv_device *kv_add_net_unixgram(struct kv_config *c, const char *path, bool vfkit_magic);
struct kv_device *kv_add_net_fd(struct kv_config *c, int fd);
struct kv_device *kv_add_net_tap(struct kv_config *c, const char *ifname);
/* Add a host port forward to a nat NIC: "tcp:127.0.0.1:2222:22". 0 or -1. */
int kv_net_add_forward(struct kv_net *n, const char *spec);
/* Is this a valid forward= value? */
bool kv_net_forward_valid(const char *spec);
/* --gui and the GPUs' usesGUI say one thing (vfkit writes the flag into
 * its GPU devices): a GPU with usesGUI turns gui on, and with gui the
 * first GPU (the one the window shows) has usesGUI, the others not. Both
 * parsers call it. */
void kv_config_normalize_gui(struct kv_config *c);
/* A virtio-gpu vnc= address: "unix:PATH" (path filled, host empty) or
 * "HOST:PORT" (HOST an address, a name, [IPv6] or empty for 127.0.0.1).
 * 0, or -1 when malformed. */
int kv_vnc_address(const char *spec, char *host, size_t hostlen, unsigned *port, char *path, size_t pathlen);
struct kv_device *kv_add_vsock(struct kv_config *c, uint32_t port, const char *socket_path, bool listen);
struct kv_device *kv_add_fs(struct kv_config *c, const char *shared_dir, const char *mount_tag);
/* mode KV_SERIAL_LOGFILE takes log_path; the others ignore it */
struct kv_device *kv_add_serial(struct kv_config *c, enum kv_serial_mode mode, const char *log_path);
struct kv_device *kv_add_gpu(struct kv_config *c, uint32_t width, uint32_t height);
struct kv_device *kv_add_input(struct kv_config *c, enum kv_input_kind kind);
struct kv_device *kv_add_simple(struct kv_config *c, enum kv_dev_kind kind); /* rng, balloon */

#ifdef __cplusplus
}
#endif
#endif
