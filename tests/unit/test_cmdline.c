/* Unit tests for the vfkit command-line parser: every flag, every device
 * option, the error texts and the quote rules of the spec (section 2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <kvkit/cmdline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[1024];
static struct kv_config cfg;
static enum kv_cmdline_action action;

static int parse_v(const char *first, va_list ap)
{
	char *argv[64];
	int argc = 0;
	argv[argc++] = "kvkit";
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	argv[argc] = NULL;
	kv_config_free(&cfg);
	kv_config_init(&cfg);
	return kv_cmdline_parse(argc, argv, &cfg, &action, err, sizeof(err));
}

static int parse(const char *first, ...)
{
	va_list ap;
	va_start(ap, first);
	int r = parse_v(first, ap);
	va_end(ap);
	return r;
}

#define OK(...) assert_int_equal(parse(__VA_ARGS__, NULL), 0)
#define ERR(msg, ...) do { assert_int_equal(parse(__VA_ARGS__, NULL), -1); assert_string_equal(err, msg); } while (0)
#define BOOT "--bootloader", "linux,kernel=/k"

static void defaults(void **s)
{
	OK(BOOT);
	assert_int_equal(cfg.cpus, 1);
	assert_int_equal(cfg.memory_bytes, 512ULL << 20);
	assert_int_equal(cfg.boot.kind, KV_BOOT_LINUX);
	assert_string_equal(cfg.boot.kernel, "/k");
	assert_null(cfg.boot.initrd);
	assert_int_equal(cfg.ndevices, 0);
	assert_false(cfg.gui);
	assert_false(cfg.nested);
	assert_int_equal(action, KV_ACTION_RUN);
}

static void flag_forms(void **s)
{
	OK("--cpus", "4", "--memory=2048", BOOT);
	assert_int_equal(cfg.cpus, 4);
	assert_int_equal(cfg.memory_bytes, 2048ULL << 20);
	OK("-c4", "-m", "1024", BOOT);
	assert_int_equal(cfg.cpus, 4);
	OK("-c=3", BOOT);
	assert_int_equal(cfg.cpus, 3);
	OK("--cpus", "0x10", BOOT);
	assert_int_equal(cfg.cpus, 16);
	OK("--cpus", "0b101", BOOT);
	assert_int_equal(cfg.cpus, 5);
	OK("--cpus", "0o17", BOOT);
	assert_int_equal(cfg.cpus, 15);
	OK("--cpus", "010", BOOT); /* Go: a leading 0 is octal */
	assert_int_equal(cfg.cpus, 8);
	OK("--cpus", "2", "--cpus", "6", BOOT); /* last wins */
	assert_int_equal(cfg.cpus, 6);
	OK("--gui", BOOT);
	assert_true(cfg.gui);
	OK("--gui=false", BOOT);
	assert_false(cfg.gui);
	const char *yes[] = { "1", "t", "T", "true", "TRUE", "True" };
	for (int i = 0; i < 6; i++) {
		char a[32];
		snprintf(a, sizeof(a), "--nested=%s", yes[i]);
		OK(a, BOOT);
		assert_true(cfg.nested);
	}
	OK("-n", BOOT);
	assert_true(cfg.nested);
	OK("-nc2", BOOT); /* grouped shorthand: bool then value */
	assert_true(cfg.nested);
	assert_int_equal(cfg.cpus, 2);
	OK("--log-level", "debug", "--pidfile", "/p", "--restful-uri", "none://", BOOT);
	assert_int_equal(cfg.log_level, KV_LOG_DEBUG);
	assert_string_equal(cfg.pidfile, "/p");
	OK("--ignition", "/ign", "--cloud-init", "/a/user-data,/a/meta-data", "--cloud-init", "/a/network-config", BOOT);
	assert_string_equal(cfg.ignition, "/ign");
	assert_int_equal(cfg.ncloud_init, 3);
	assert_string_equal(cfg.cloud_init[2], "/a/network-config");
	OK("--timesync", "vsockPort=1234", BOOT);
	assert_true(cfg.has_timesync);
	assert_int_equal(cfg.timesync_port, 1234);
	OK("--timesync", "", BOOT);
	assert_false(cfg.has_timesync);
	OK(BOOT);
	assert_false(cfg.sandbox_off); /* the filter is on by default */
	OK("--sandbox", "off", BOOT);
	assert_true(cfg.sandbox_off);
	OK("--sandbox=on", BOOT);
	assert_false(cfg.sandbox_off);
	ERR("--sandbox: 'no' is not on or off", "--sandbox", "no", BOOT);
	OK("--user", "nobody", BOOT);
	assert_string_equal(cfg.user, "nobody");
	ERR("--user: empty user name", "--user", "", BOOT);
}

static void version_help(void **s)
{
	OK("-v");
	assert_int_equal(action, KV_ACTION_VERSION);
	OK("--version");
	assert_int_equal(action, KV_ACTION_VERSION);
	OK("-h");
	assert_int_equal(action, KV_ACTION_HELP);
	OK("--help");
	assert_int_equal(action, KV_ACTION_HELP);
}

static void flag_errors(void **s)
{
	ERR("invalid argument \"abc\" for \"-c, --cpus\" flag: strconv.ParseUint: parsing \"abc\": invalid syntax",
	    "--cpus", "abc", BOOT);
	ERR("invalid argument \"-1\" for \"-m, --memory\" flag: strconv.ParseUint: parsing \"-1\": invalid syntax",
	    "--memory=-1", BOOT);
	ERR("invalid argument \"99999999999999999999\" for \"-c, --cpus\" flag: strconv.ParseUint: parsing \"99999999999999999999\": value out of range",
	    "--cpus", "99999999999999999999", BOOT);
	ERR("invalid argument \"yes\" for \"--gui\" flag: strconv.ParseBool: parsing \"yes\": invalid syntax", "--gui=yes", BOOT);
	ERR("unknown flag: --foo", "--foo", BOOT);
	ERR("unknown shorthand flag: 'x' in -x", "-x", BOOT);
	ERR("unknown shorthand flag: 'z' in -nz", "-nz", BOOT);
	ERR("flag needs an argument: --cpus", BOOT, "--cpus");
	ERR("flag needs an argument: 'c' in -c", BOOT, "-c");
	ERR("unexpected argument: disk.img", BOOT, "disk.img");
	ERR("unknown log level: trace", "--log-level", "trace", BOOT);
	ERR("invalid virtual machine configuration: the vCPU count must be at least 1", "--cpus", "0", BOOT);
	ERR("invalid virtual machine configuration: the memory size must be at least 1 MiB", "--memory", "0", BOOT);
	ERR("failed to add ignition file: ignition only accepts one option in command line argument", "--ignition", "/a,/b", BOOT);
	ERR("unknown option for timesync parameter: port", "--timesync", "port=1", BOOT);
	ERR("missing 'vsockPort' option for timesync parameter", "--timesync", ",", BOOT);
}

static void bootloaders(void **s)
{
	OK("--bootloader", "linux,kernel=/k,initrd=/i,cmdline=\"console=hvc0 a=1,2\"");
	assert_string_equal(cfg.boot.cmdline, "console=hvc0 a=1,2");
	assert_string_equal(cfg.boot.initrd, "/i");
	OK("--bootloader", "linux,kernel=/k,cmdline=\"\"console=hvc0 rw\"\"");
	assert_string_equal(cfg.boot.cmdline, "console=hvc0 rw");
	OK("--bootloader", "linux,kernel=/k,cmdline=console=ttyS0");
	assert_string_equal(cfg.boot.cmdline, "console=ttyS0");
	OK("--bootloader", "linux", "--bootloader", "kernel=/k2,initrd=/i"); /* lists concatenate */
	assert_string_equal(cfg.boot.kernel, "/k2");
	OK("--bootloader", "linux,kernel=/a,kernel=/b"); /* repeated key overrides */
	assert_string_equal(cfg.boot.kernel, "/b");
	OK("--kernel", "/k", "--initrd", "/i", "--kernel-cmdline", "\"quoted kept\"");
	assert_string_equal(cfg.boot.cmdline, "\"quoted kept\""); /* legacy: verbatim */
	OK("--bootloader", "efi,variable-store=/s,create");
	assert_int_equal(cfg.boot.kind, KV_BOOT_EFI);
	assert_true(cfg.boot.efi_create);
	assert_string_equal(cfg.boot.efi_store, "/s");
	assert_null(cfg.boot.efi_firmware);
	OK("--bootloader", "efi,variable-store=/s,firmware=/f/X_CODE.fd,vars-template=/f/X_VARS.fd");
	assert_string_equal(cfg.boot.efi_firmware, "/f/X_CODE.fd");
	assert_string_equal(cfg.boot.efi_vars_template, "/f/X_VARS.fd");
	assert_false(cfg.boot.efi_create);
	OK("--bootloader", "macos,machineIdentifierPath=/m,hardwareModelPath=/h,auxImagePath=/a");
	assert_int_equal(cfg.boot.kind, KV_BOOT_MACOS);
	ERR("empty option list in --bootloader command line argument", "--cpus", "1");
	ERR("empty option list in --bootloader command line argument", "--bootloader", "");
	ERR("mismatched \"", "--bootloader", "linux,kernel=/k,cmdline=\"oops");
	ERR("unknown option for Linux bootloaders: foo", "--bootloader", "linux,kernel=/k,foo=1");
	ERR("unknown option for EFI bootloaders: foo", "--bootloader", "efi,variable-store=/s,foo");
	ERR("unexpected value for EFI bootloader 'create' option: yes", "--bootloader", "efi,variable-store=/s,create=yes");
	ERR("unknown option for macOS bootloaders: x", "--bootloader", "macos,x=1");
	ERR("unknown bootloader type: bios", "--bootloader", "bios");
	ERR("if any flags in the group [kernel initrd kernel-cmdline] are set they must all be set; missing [initrd]",
	    "--kernel", "/k", "--kernel-cmdline", "c");
	ERR("if any flags in the group [kernel initrd kernel-cmdline] are set they must all be set; missing [initrd kernel-cmdline]",
	    "--kernel", "/k");
	ERR("if any flags in the group [initrd bootloader] are set none of the others can be; [bootloader initrd] were all set",
	    "--kernel", "/k", "--initrd", "/i", "--kernel-cmdline", "c", BOOT);
}

static void split_rules(void **s)
{
	char **v;
	int n = kv_split_options("linux,kernel=/k,cmdline=\"console=hvc0 a=1,2\"", true, &v, err, sizeof(err));
	assert_int_equal(n, 3);
	assert_string_equal(v[2], "cmdline=\"console=hvc0 a=1,2\"");
	kv_free_strv(v, n);
	n = kv_split_options("\"a,b\",,c", true, &v, err, sizeof(err));
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "a,b"); /* element wholly quoted: quotes removed */
	assert_string_equal(v[1], "c");
	kv_free_strv(v, n);
	n = kv_split_options("a=\"x,y\"", false, &v, err, sizeof(err)); /* plain: no quoting */
	assert_int_equal(n, 2);
	kv_free_strv(v, n);
	n = kv_split_options("", true, &v, err, sizeof(err));
	assert_int_equal(n, 0);
	kv_free_strv(v, n);
	assert_int_equal(kv_split_options("a,\"b", true, &v, err, sizeof(err)), -1);
	assert_string_equal(err, "mismatched \"");
}

static void disks(void **s)
{
	OK(BOOT, "-d", "virtio-blk,path=/d.img,readonly,deviceId=serial1", "--device", "nvme,type=dev,path=/dev/sda",
	   "--device", "usb-mass-storage,path=/x.iso,readonly");
	assert_int_equal(cfg.ndevices, 3);
	assert_int_equal(cfg.devices[0].kind, KV_DEV_VIRTIO_BLK);
	assert_string_equal(cfg.devices[0].u.disk.path, "/d.img");
	assert_true(cfg.devices[0].u.disk.readonly);
	assert_string_equal(cfg.devices[0].u.disk.device_id, "serial1");
	assert_int_equal(cfg.devices[1].u.disk.type, KV_DISK_DEV);
	assert_int_equal(cfg.devices[2].kind, KV_DEV_USB_MASS_STORAGE);
	OK(BOOT, "--device", "virtio-blk,path=/d,cache=uncached,sync=none");
	assert_int_equal(cfg.devices[0].u.disk.cache, KV_CACHE_UNCACHED);
	assert_int_equal(cfg.devices[0].u.disk.sync, KV_SYNC_NONE);
	OK(BOOT, "--device", "virtio-blk,path=/d,cache=auto"); /* the spelling of automatic */
	assert_int_equal(cfg.devices[0].u.disk.cache, KV_CACHE_AUTOMATIC);
	ERR("missing mandatory 'path' option for virtio-blk device", BOOT, "--device", "virtio-blk");
	ERR("missing mandatory 'path' option for nvme device", BOOT, "--device", "nvme,path=");
	ERR("unexpected value for disk 'type' option: raw", BOOT, "--device", "virtio-blk,path=/d,type=raw");
	ERR("unexpected value for virtio-blk 'readonly' option: true", BOOT, "--device", "virtio-blk,path=/d,readonly=true");
	ERR("unexpected value for virtio-blk 'readonly' option: 1", BOOT, "--device", "nvme,path=/d,readonly=1");
	ERR("invalid 'deviceId': exceeds maximum length", BOOT, "--device", "virtio-blk,path=/d,deviceId=123456789012345678901");
	ERR("unknown option for nvme devices: deviceId", BOOT, "--device", "nvme,path=/d,deviceId=x");
	ERR("unknown option for virtio-blk devices: foo", BOOT, "--device", "virtio-blk,path=/d,foo=bar");
	ERR("'cache' option is not supported with type=dev", BOOT, "--device", "virtio-blk,path=/d,type=dev,cache=cached");
	/* format= (krunkit's option): raw by default, qcow2 only when asked */
	OK(BOOT, "--device", "virtio-blk,path=/d");
	assert_false(cfg.devices[0].u.disk.qcow2);
	OK(BOOT, "--device", "virtio-blk,path=/d,format=qcow2");
	assert_true(cfg.devices[0].u.disk.qcow2);
	OK(BOOT, "--device", "nvme,path=/d,format=qcow2,format=raw");
	assert_false(cfg.devices[0].u.disk.qcow2);
	ERR("unexpected value for disk 'format' option: vmdk (expected raw or qcow2)", BOOT, "--device",
	    "virtio-blk,path=/d,format=vmdk");
	ERR("'format=qcow2' is not supported with type=dev (block devices are raw)", BOOT, "--device",
	    "virtio-blk,path=/dev/sda,type=dev,format=qcow2");
	OK(BOOT, "--device", "nvme,path=/d,format=qcow2,cache=uncached");
	assert_int_equal(cfg.devices[0].u.disk.cache, KV_CACHE_UNCACHED);
}

static void nbd(void **s)
{
	OK(BOOT, "--device", "nbd,uri=nbd://h:10809/e,deviceId=x,timeout=500,sync=none,readonly");
	struct kv_nbd *n = &cfg.devices[0].u.nbd;
	assert_string_equal(n->uri, "nbd://h:10809/e");
	assert_int_equal(n->timeout_ms, 500);
	assert_true(n->sync_none);
	assert_true(n->readonly);
	OK(BOOT, "--device", "nbd,uri=nbd+unix:///e?socket=/s");
	assert_int_equal(cfg.devices[0].u.nbd.timeout_ms, 15000);
	ERR("invalid NBD device 'uri': 'uri' must be specified", BOOT, "--device", "nbd,deviceId=x");
	ERR("invalid NBD device 'uri': invalid scheme: http. Expected one of: 'nbd', 'nbds', 'nbd+unix', or 'nbds+unix'",
	    BOOT, "--device", "nbd,uri=http://x/e");
	ERR("invalid NBD device 'deviceId': invalid 'deviceId': it cannot contain any forward slash", BOOT, "--device",
	    "nbd,uri=nbd://h/e,deviceId=a/b");
	ERR("invalid NBD device 'deviceId': invalid 'deviceId': exceeds maximum length", BOOT, "--device",
	    "nbd,uri=nbd://h/e,deviceId=123456789012345678901");
	ERR("invalid sync mode: fast, must be 'full' or 'none'", BOOT, "--device", "nbd,uri=nbd://h/e,sync=fast");
}

static void net(void **s)
{
	OK(BOOT, "--device", "virtio-net,nat,mac=5a:94:ef:e4:0c:ee");
	struct kv_net *n = &cfg.devices[0].u.net;
	assert_true(n->nat);
	assert_true(n->has_mac);
	assert_int_equal(n->mac[0], 0x5a);
	assert_int_equal(n->mac[5], 0xee);
	OK(BOOT, "--device", "virtio-net,mac=5A-94-EF-E4-0C-EE");
	assert_true(cfg.devices[0].u.net.nat); /* kvkit: no backend = nat */
	OK(BOOT, "--device", "virtio-net,mac=5a94.efe4.0cee");
	assert_int_equal(cfg.devices[0].u.net.mac[2], 0xef);
	OK(BOOT, "--device", "virtio-net,unixSocketPath=/run/gv.sock");
	n = &cfg.devices[0].u.net;
	assert_false(n->nat);
	assert_true(n->vfkit_magic);
	assert_string_equal(n->unix_path, "/run/gv.sock");
	OK(BOOT, "--device", "virtio-net,type=unixgram,path=/run/gv.sock,vfkitMagic=off,offloading=off");
	n = &cfg.devices[0].u.net;
	assert_true(n->type_unixgram);
	assert_false(n->vfkit_magic);
	OK(BOOT, "--device", "virtio-net,fd=4");
	assert_int_equal(cfg.devices[0].u.net.fd, 4);
	assert_false(cfg.devices[0].u.net.vfkit_magic);
	ERR("unexpected value for virtio-net 'nat' option: yes", BOOT, "--device", "virtio-net,nat=yes");
	ERR("address zz:94:ef:e4:0c:ee: invalid MAC address", BOOT, "--device", "virtio-net,nat,mac=zz:94:ef:e4:0c:ee");
	ERR("address 5a:94:ef:e4:0c: invalid MAC address", BOOT, "--device", "virtio-net,nat,mac=5a:94:ef:e4:0c");
	ERR("invalid file descriptor: -1", BOOT, "--device", "virtio-net,fd=-1");
	ERR("invalid file descriptor: 2147483648", BOOT, "--device", "virtio-net,fd=2147483648");
	ERR("unsupported virtio-net type: tap (expected unixgram or unixstream)", BOOT, "--device", "virtio-net,type=tap,path=/p");
	/* krunkit's stream sockets (issue 25): a path or an inherited fd, no hello */
	OK(BOOT, "--device", "virtio-net,type=unixstream,path=/run/passt.sock,mac=5a:94:ef:e4:0c:ee");
	n = &cfg.devices[0].u.net;
	assert_true(n->stream);
	assert_false(n->vfkit_magic);
	assert_false(n->type_unixgram);
	assert_false(n->nat);
	assert_string_equal(n->unix_path, "/run/passt.sock");
	OK(BOOT, "--device", "virtio-net,type=unixstream,fd=5");
	assert_true(cfg.devices[0].u.net.stream);
	assert_int_equal(cfg.devices[0].u.net.fd, 5);
	OK(BOOT, "--device", "virtio-net,type=unixgram,fd=5");
	assert_false(cfg.devices[0].u.net.stream);
	assert_int_equal(cfg.devices[0].u.net.fd, 5);
	ERR("'vfkitMagic=on' is for unixgram sockets, not type=unixstream", BOOT, "--device",
	    "virtio-net,type=unixstream,path=/p,vfkitMagic=on");
	ERR("'type' takes 'path', not 'unixSocketPath'", BOOT, "--device", "virtio-net,type=unixstream,path=/p,unixSocketPath=/q");
	ERR("'nat' and 'unixSocketPath' cannot be set at the same time", BOOT, "--device", "virtio-net,nat,type=unixstream,path=/p");
	ERR("'type' option requires 'path' to be specified", BOOT, "--device", "virtio-net,type=unixgram");
	ERR("'path' option requires 'type' to be specified", BOOT, "--device", "virtio-net,path=/p");
	ERR("invalid value for vfkitMagic: yes (expected on/off)", BOOT, "--device", "virtio-net,unixSocketPath=/p,vfkitMagic=yes");
	ERR("'offloading' option requires 'type' to be specified", BOOT, "--device", "virtio-net,unixSocketPath=/p,offloading=off");
	ERR("offloading=on needs tap=: only a tap carries the virtio-net header (gvproxy, passt and nat take complete frames)",
	    BOOT, "--device", "virtio-net,type=unixgram,path=/p,offloading=on");
	ERR("offloading=on needs tap=: only a tap carries the virtio-net header (gvproxy, passt and nat take complete frames)",
	    BOOT, "--device", "virtio-net,type=unixstream,path=/p,offloading=on");
	ERR("invalid value for offloading: maybe (expected on or off)", BOOT, "--device", "virtio-net,tap=t0,offloading=maybe");
	OK(BOOT, "--device", "virtio-net,tap=t0,offloading=off");
	OK(BOOT, "--device", "virtio-net,tap=t0,offloading=on");
	ERR("'nat' and 'fd' cannot be set at the same time", BOOT, "--device", "virtio-net,nat,fd=3");
	ERR("'nat' and 'unixSocketPath' cannot be set at the same time", BOOT, "--device", "virtio-net,nat,unixSocketPath=/p");
	ERR("'fd' and 'unixSocketPath' cannot be set at the same time", BOOT, "--device", "virtio-net,fd=3,unixSocketPath=/p");
	ERR("unknown option for virtio-net devices: foo", BOOT, "--device", "virtio-net,foo");
	/* kvkit's additions: tap, and nat port forwards (the one repeatable key) */
	OK(BOOT, "--device", "virtio-net,tap=kvtap0");
	assert_string_equal(cfg.devices[0].u.net.tap, "kvtap0");
	assert_false(cfg.devices[0].u.net.nat);
	OK(BOOT, "--device", "virtio-net,forward=tcp:127.0.0.1:2222:22,nat,forward=udp::53:53");
	n = &cfg.devices[0].u.net;
	assert_true(n->nat);
	assert_int_equal(n->nforwards, 2);
	assert_string_equal(n->forwards[0], "tcp:127.0.0.1:2222:22");
	assert_string_equal(n->forwards[1], "udp::53:53");
	ERR("'tap' and 'nat' cannot be set at the same time", BOOT, "--device", "virtio-net,nat,tap=t0");
	ERR("'tap' and 'fd' cannot be set at the same time", BOOT, "--device", "virtio-net,tap=t0,fd=3");
	ERR("invalid tap interface name 'a-name-longer-than-15': 1 to 15 bytes, no '/'", BOOT, "--device",
	    "virtio-net,tap=a-name-longer-than-15");
	ERR("'forward' needs a 'nat' network", BOOT, "--device", "virtio-net,fd=3,forward=tcp::1:1");
	/* the host's loopback through the gateway is opt-in */
	OK(BOOT, "--device", "virtio-net,nat");
	assert_false(cfg.devices[0].u.net.host_loopback);
	OK(BOOT, "--device", "virtio-net,nat,hostLoopback");
	assert_true(cfg.devices[0].u.net.host_loopback);
	ERR("'hostLoopback' needs a 'nat' network", BOOT, "--device", "virtio-net,fd=3,hostLoopback");
	ERR("unexpected value for virtio-net 'hostLoopback' option: yes", BOOT, "--device", "virtio-net,nat,hostLoopback=yes");
	static const char *bad_fwd[] = { "tcp:1.2.3.4:x:1", "icmp::1:1", "tcp::0:22", "tcp::22:70000", "tcp:1.2.3:2:2",
					 "tcp::1:2:3", "tcp:1:2" };
	for (size_t i = 0; i < sizeof(bad_fwd) / sizeof(bad_fwd[0]); i++) {
		char opt[64], msg[160];
		snprintf(opt, sizeof(opt), "virtio-net,forward=%s", bad_fwd[i]);
		snprintf(msg, sizeof(msg), "invalid forward '%s': expected tcp|udp:[HOSTADDR]:HOSTPORT:GUESTPORT", bad_fwd[i]);
		ERR(msg, BOOT, "--device", opt);
	}
}

static void other_devices(void **s)
{
	OK(BOOT, "--device", "virtio-vsock,port=1025,socketURL=/r/s.sock,listen", "--device",
	   "virtio-vsock,port=2222,socketURL=/r/ssh.sock,connect", "--device", "virtio-vsock");
	assert_int_equal(cfg.devices[0].u.vsock.port, 1025);
	assert_true(cfg.devices[0].u.vsock.listen);
	assert_false(cfg.devices[1].u.vsock.listen);
	ERR("invalid vsock port: abc", BOOT, "--device", "virtio-vsock,port=abc,socketURL=/s");
	OK(BOOT, "--device", "virtio-vsock,socketURL=/r/mux.sock,mux");
	assert_true(cfg.devices[0].u.vsock.mux);
	ERR("virtio-vsock 'mux' needs 'socketURL' and takes no 'port'", BOOT, "--device", "virtio-vsock,mux");
	ERR("virtio-vsock 'mux' needs 'socketURL' and takes no 'port'", BOOT, "--device",
	    "virtio-vsock,port=5,socketURL=/s,mux");
	ERR("invalid vsock port: 4294967296", BOOT, "--device", "virtio-vsock,port=4294967296,socketURL=/s");
	OK(BOOT, "--device", "virtio-fs,sharedDir=/home/user/");
	assert_string_equal(cfg.devices[0].u.fs.mount_tag, "user");
	OK(BOOT, "--device", "virtio-fs,sharedDir=/h,mountTag=0123456789abcdef0123456789abcdef0123");
	ERR("missing mandatory 'sharedDir' option for virtio-fs device", BOOT, "--device", "virtio-fs,mountTag=x");
	OK(BOOT, "--device", "virtio-fs,sharedDir=/h,cache=never");
	assert_int_equal(cfg.devices[0].u.fs.cache, KV_FS_CACHE_NEVER);
	OK(BOOT, "--device", "virtio-fs,sharedDir=/h,cache=auto");
	assert_int_equal(cfg.devices[0].u.fs.cache, KV_FS_CACHE_AUTO);
	ERR("unexpected value for virtio-fs 'cache' option: x (expected auto, always or never)", BOOT, "--device",
	    "virtio-fs,sharedDir=/h,cache=x");
	OK(BOOT, "--device", "virtio-fs,sharedDir=/h,dax=16384");
	assert_int_equal(cfg.devices[0].u.fs.dax_mib, 16384);
	OK(BOOT, "--device", "virtio-fs,sharedDir=/h,dax=64");
	assert_int_equal(cfg.devices[0].u.fs.dax_mib, 64);
	OK(BOOT, "--device", "virtio-fs,sharedDir=/h,dax=0");
	assert_int_equal(cfg.devices[0].u.fs.dax_mib, 0);
	for (const char *const *v = (const char *const[]){ "1", "3", "32768", "-2", "", "2M", "99999999999999999999", NULL };
	     *v; v++) {
		char opt[80], msg[160];
		snprintf(opt, sizeof(opt), "virtio-fs,sharedDir=/h,dax=%s", *v);
		snprintf(msg, sizeof(msg), "invalid virtio-fs 'dax' window: %s (expected its size in MiB, a power of two "
			 "from 2 to 16384)", *v);
		ERR(msg, BOOT, "--device", opt);
	}
	ERR("invalid virtio-fs mount tag '0123456789abcdef0123456789abcdef01234': must be 1 to 36 bytes", BOOT, "--device",
	    "virtio-fs,sharedDir=/h,mountTag=0123456789abcdef0123456789abcdef01234");
	OK(BOOT, "--device", "virtio-serial,logFilePath=/l", "--device", "virtio-serial,stdio", "--device", "virtio-serial,pty");
	assert_int_equal(cfg.devices[0].u.serial.mode, KV_SERIAL_LOGFILE);
	assert_int_equal(cfg.devices[1].u.serial.mode, KV_SERIAL_STDIO);
	assert_int_equal(cfg.devices[2].u.serial.mode, KV_SERIAL_PTY);
	ERR("'logFilePath' and 'stdio' cannot be set at the same time", BOOT, "--device", "virtio-serial,logFilePath=/l,stdio");
	ERR("'logFilePath' and 'pty' cannot be set at the same time", BOOT, "--device", "virtio-serial,logFilePath=/l,pty");
	ERR("'stdio' and 'pty' cannot be set at the same time", BOOT, "--device", "virtio-serial,stdio,pty");
	ERR("one of 'logFilePath', 'stdio' or 'pty' must be set", BOOT, "--device", "virtio-serial");
	ERR("unexpected value for virtio-serial 'stdio' option: x", BOOT, "--device", "virtio-serial,stdio=x");
	OK(BOOT, "--device", "virtio-rng", "--device", "virtio-balloon");
	ERR("unknown options for virtio-rng devices: foo=1", BOOT, "--device", "virtio-rng,foo=1");
	ERR("unknown options for virtio-balloon devices: x", BOOT, "--device", "virtio-balloon,x");
	OK(BOOT, "--device", "virtio-gpu,width=1024");
	assert_int_equal(cfg.devices[0].u.gpu.width, 1024);
	assert_int_equal(cfg.devices[0].u.gpu.height, 600);
	ERR("invalid value for virtio-gpu width: 0", BOOT, "--device", "virtio-gpu,width=0");
	ERR("invalid value for virtio-gpu height: x", BOOT, "--device", "virtio-gpu,height=x");
	OK(BOOT, "--device", "virtio-gpu,vnc=:5900");
	assert_string_equal(cfg.devices[0].u.gpu.vnc, ":5900");
	OK(BOOT, "--device", "virtio-gpu,vnc=[::1]:5901", "--device", "virtio-gpu,vnc=unix:/run/vm/vnc.sock");
	ERR("invalid value for virtio-gpu vnc: 127.0.0.1 (expected HOST:PORT or unix:PATH)", BOOT, "--device",
	    "virtio-gpu,vnc=127.0.0.1");
	ERR("invalid value for virtio-gpu vnc: :0 (expected HOST:PORT or unix:PATH)", BOOT, "--device", "virtio-gpu,vnc=:0");
	ERR("invalid value for virtio-gpu vnc: :65536 (expected HOST:PORT or unix:PATH)", BOOT, "--device",
	    "virtio-gpu,vnc=:65536");
	ERR("invalid value for virtio-gpu vnc: ::1:5900 (expected HOST:PORT or unix:PATH)", BOOT, "--device",
	    "virtio-gpu,vnc=::1:5900");
	ERR("invalid value for virtio-gpu vnc: unix: (expected HOST:PORT or unix:PATH)", BOOT, "--device", "virtio-gpu,vnc=unix:");
	OK(BOOT, "--device", "virtio-input,pointing", "--device", "virtio-input,keyboard");
	assert_int_equal(cfg.devices[0].u.input, KV_INPUT_POINTING);
	assert_int_equal(cfg.devices[1].u.input, KV_INPUT_KEYBOARD);
	ERR("unexpected value for virtio-input pointing option: 1", BOOT, "--device", "virtio-input,pointing=1");
	ERR("unknown option for virtio-input devices: ", BOOT, "--device", "virtio-input");
	ERR("'pointing' and 'keyboard' cannot be set at the same time", BOOT, "--device", "virtio-input,pointing,keyboard");
	OK(BOOT, "--device", "rosetta,mountTag=rosetta,install,ignoreIfMissing");
	assert_true(cfg.devices[0].u.rosetta.install);
	assert_true(cfg.devices[0].u.rosetta.ignore_if_missing);
	OK(BOOT, "--device", "rosetta,mountTag=r,ignore-if-missing");
	ERR("unknown option for rosetta share: x", BOOT, "--device", "rosetta,x");
	ERR("unknown device type: virtio-foo", BOOT, "--device", "virtio-foo");
	OK(BOOT, "--device", "virtio-blk,path=/a", "--device", "virtio-blk,path=/b"); /* order kept */
	assert_string_equal(cfg.devices[1].u.disk.path, "/b");
}

static void client_command_lines(void **s)
{
	/* podman machine (applehv) */
	OK("--cpus", "4", "--memory", "4096", "--bootloader", "efi,variable-store=/d/efi-bl-m,create", "--device",
	   "virtio-blk,path=/d/m-amd64.raw", "--device", "virtio-rng", "--device",
	   "virtio-vsock,port=1025,socketURL=/r/m.sock,listen", "--device", "virtio-serial,logFilePath=/r/m.log",
	   "--device", "virtio-net,unixSocketPath=/r/m-gvproxy.sock,mac=5a:94:ef:e4:0c:ee", "--device",
	   "virtio-fs,sharedDir=/home/u,mountTag=a2a0ee2c717462feb1de2f5afd59de5fd2d8", "--restful-uri",
	   "tcp://localhost:40123");
	assert_int_equal(cfg.ndevices, 6);
	/* CRC */
	OK("--cpus", "4", "--memory", "10752", "--bootloader", "efi,variable-store=/h/.crc/efistore.nvram", "--device",
	   "virtio-serial,logFilePath=/h/vfkit.log", "--device", "virtio-net,nat,mac=52:54:00:70:2b:79", "--device",
	   "virtio-fs,sharedDir=/h,mountTag=dir0", "--device", "virtio-rng", "--device", "virtio-blk,path=/h/crc.img",
	   "--device", "virtio-net,unixSocketPath=/h/.crc/sockets/crc-unixgram.sock,mac=5a:94:ef:e4:0c:ee", "--timesync",
	   "vsockPort=1234");
	assert_int_equal(cfg.timesync_port, 1234);
	/* minikube: literal quotes in argv */
	OK("--memory", "6000", "--cpus", "2", "--restful-uri", "unix:///m/vfkit.sock", "--log-level", "debug",
	   "--bootloader", "linux,kernel=/m/bzimage,initrd=/m/initrd,cmdline=\"console=ttyS0\"", "--device",
	   "virtio-net,nat,mac=aa:bb:cc:dd:ee:ff", "--device", "virtio-serial,logFilePath=/m/serial.log");
	assert_string_equal(cfg.boot.cmdline, "console=ttyS0");
}

static void parse_uint_go(void **s)
{
	uint64_t v;
	char r[200];
	assert_int_equal(kv_parse_uint("1_000", 64, &v, r, sizeof(r)), -1); /* underscores need a prefix */
	assert_int_equal(kv_parse_uint("0x_10", 64, &v, r, sizeof(r)), 0);
	assert_int_equal(v, 16);
	assert_int_equal(kv_parse_uint("0x", 64, &v, r, sizeof(r)), -1);
	assert_int_equal(kv_parse_uint("09", 64, &v, r, sizeof(r)), -1);
	assert_int_equal(kv_parse_uint("0", 64, &v, r, sizeof(r)), 0);
	assert_int_equal(v, 0);
	assert_int_equal(kv_parse_uint("18446744073709551615", 64, &v, r, sizeof(r)), 0);
	assert_int_equal(kv_parse_uint("18446744073709551616", 64, &v, r, sizeof(r)), -1);
	assert_int_equal(kv_parse_uint("4294967296", 32, &v, r, sizeof(r)), -1);
}

static int teardown(void **s)
{
	kv_config_free(&cfg);
	return 0;
}

int main(void)
{
	kv_config_init(&cfg);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(defaults, teardown),
		cmocka_unit_test_teardown(flag_forms, teardown),
		cmocka_unit_test_teardown(version_help, teardown),
		cmocka_unit_test_teardown(flag_errors, teardown),
		cmocka_unit_test_teardown(bootloaders, teardown),
		cmocka_unit_test_teardown(split_rules, teardown),
		cmocka_unit_test_teardown(disks, teardown),
		cmocka_unit_test_teardown(nbd, teardown),
		cmocka_unit_test_teardown(net, teardown),
		cmocka_unit_test_teardown(other_devices, teardown),
		cmocka_unit_test_teardown(client_command_lines, teardown),
		cmocka_unit_test_teardown(parse_uint_go, teardown),
	};
	return cmocka_run_group_tests_name("cmdline", tests, NULL, NULL);
}
