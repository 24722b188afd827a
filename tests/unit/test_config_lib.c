/* Unit tests for the config library beyond parsing: canonical command-line
 * printing, JSON in vfkit's format (golden documents), the round trips the
 * spec guarantees (5.3) for every device, and --config files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <kvkit/cmdline.h>
#include <fcntl.h>
#include <kvkit/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[1024];

static int parse_argv(int n, char **args, struct kv_config *c)
{
	char *argv[128];
	enum kv_cmdline_action action;
	argv[0] = "kvkit";
	for (int i = 0; i < n; i++)
		argv[i + 1] = args[i];
	argv[n + 1] = NULL;
	kv_config_init(c);
	return kv_cmdline_parse(n + 1, argv, c, &action, err, sizeof(err));
}

static char *json_of(const struct kv_config *c)
{
	char *j = kv_config_to_json(c, KV_JSON_KVKIT_KEYS | KV_JSON_RUNTIME);
	assert_non_null(j);
	return j;
}

/* Every device form and option of the spec, in canonical and scrambled order. */
static const char *devices[] = {
	"virtio-blk,path=/d/disk.raw",
	"virtio-blk,path=/d/disk.raw,type=dev,readonly,deviceId=serial-1",
	"virtio-blk,deviceId=abc,readonly,path=/d/x.iso",
	"virtio-blk,path=/d/a.raw,cache=uncached,sync=none",
	"virtio-blk,path=/d/a.raw,cache=cached,sync=fsync",
	"virtio-blk,path=/dev/sdz,type=dev,sync=full",
	"nvme,path=/d/n.raw,readonly",
	"nvme,path=/d/n.qcow2,format=qcow2",
	"virtio-blk,path=/d/b.qcow2,readonly,format=qcow2",
	"nvme,type=dev,path=/dev/nvme9",
	"usb-mass-storage,path=/d/u.img,readonly",
	"nbd,uri=nbd://host:10809/exp",
	"nbd,uri=nbd+unix:///exp?socket=/run/n.sock,deviceId=nbd0,timeout=3000,sync=none,readonly",
	"virtio-net,nat",
	"virtio-net,nat,mac=5a:94:ef:e4:0c:ee",
	"virtio-net",
	"virtio-net,unixSocketPath=/r/gv.sock,mac=52:54:00:70:2b:79",
	"virtio-net,type=unixgram,path=/r/gv.sock,vfkitMagic=off",
	"virtio-net,type=unixgram,path=/r/gv.sock,vfkitMagic=on,offloading=off",
	"virtio-net,fd=4,mac=aa:bb:cc:dd:ee:ff",
	"virtio-net,type=unixstream,path=/r/passt.sock,mac=52:54:00:70:2b:7a",
	"virtio-net,type=unixstream,fd=5",
	"virtio-net,type=unixgram,fd=6",
	"virtio-net,tap=kvtap0,mac=52:54:00:00:00:01",
	"virtio-net,tap=kvtap1,offloading=off",
	"virtio-net,tap=kvtap2,offloading=on",
	"virtio-net,nat,forward=tcp:127.0.0.1:2222:22,forward=udp::5353:53",
	"virtio-net,nat,hostLoopback,mac=52:54:00:00:00:02",
	"virtio-vsock,port=1025,socketURL=/r/ready.sock,listen",
	"virtio-vsock,connect,socketURL=/r/ssh.sock,port=2222",
	"virtio-vsock",
	"virtio-vsock,socketURL=/r/mux.sock,mux",
	"virtio-fs,sharedDir=/home/u",
	"virtio-fs,sharedDir=/src,mountTag=0123456789abcdef0123456789abcdef0123",
	"virtio-fs,sharedDir=/src,mountTag=s,cache=always",
	"virtio-fs,sharedDir=/src,mountTag=n,cache=never",
	"virtio-fs,sharedDir=/src,mountTag=x,dax=256",
	"rosetta,mountTag=rosetta,install,ignore-if-missing",
	"rosetta,ignoreIfMissing,mountTag=r2",
	"virtio-serial,logFilePath=/r/vm.log",
	"virtio-serial,stdio",
	"virtio-serial,pty",
	"virtio-gpu",
	"virtio-gpu,width=1024,height=768",
	"virtio-gpu,height=480",
	"virtio-gpu,width=1024,height=768,vnc=127.0.0.1:5900",
	"virtio-gpu,vnc=unix:/run/vm/vnc.sock",
	"virtio-input,pointing",
	"virtio-input,keyboard",
	"virtio-rng",
	"virtio-balloon",
};

/* parse(print(x)) == x for each device, and JSON -> model -> JSON is lossless */
static void argv_and_json_round_trips(void **s)
{
	(void)s;
	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
		struct kv_config a, b, c;
		char *args[] = { "--cpus", "3", "--memory", "3000", "--bootloader",
				 "efi,variable-store=/d/efi,create", "--device", (char *)devices[i] };
		assert_int_equal(parse_argv(8, args, &a), 0);
		char **pv;
		int pn;
		assert_int_equal(kv_config_to_argv(&a, &pv, &pn, err, sizeof(err)), 0);
		assert_int_equal(parse_argv(pn, pv, &b), 0);
		char *ja = json_of(&a), *jb = json_of(&b);
		if (strcmp(ja, jb))
			fail_msg("argv round trip of %s:\n%s\n%s", devices[i], ja, jb);
		kv_config_init(&c);
		if (a.devices[0].kind == KV_DEV_VIRTIO_NET && a.devices[0].u.net.fd >= 0) {
			/* an fd cannot travel in JSON: refused on input */
			char *plain = kv_config_to_json(&a, 0);
			assert_int_equal(kv_config_from_json(plain, &c, 0, err, sizeof(err)), -1);
			assert_non_null(strstr(err, "not serialisable"));
			free(plain);
		} else {
			assert_int_equal(kv_config_from_json(ja, &c, KV_JSON_KVKIT_KEYS | KV_JSON_RUNTIME, err, sizeof(err)), 0);
			char *jc = json_of(&c);
			if (strcmp(ja, jc))
				fail_msg("JSON round trip of %s:\n%s\n%s", devices[i], ja, jc);
			free(jc);
		}
		free(ja);
		free(jb);
		kv_free_strv(pv, pn);
		kv_config_free(&a);
		kv_config_free(&b);
		kv_config_free(&c);
	}
}

static void option_order_does_not_matter(void **s)
{
	(void)s;
	struct kv_config a, b;
	char *x[] = { "--bootloader", "linux,kernel=/k", "--device", "virtio-blk,path=/d,readonly,deviceId=s,type=dev" };
	char *y[] = { "--bootloader", "linux,kernel=/k", "--device", "virtio-blk,type=dev,deviceId=s,readonly,path=/d" };
	assert_int_equal(parse_argv(4, x, &a), 0);
	assert_int_equal(parse_argv(4, y, &b), 0);
	char *ja = json_of(&a), *jb = json_of(&b);
	assert_string_equal(ja, jb);
	free(ja);
	free(jb);
	kv_config_free(&a);
	kv_config_free(&b);
}

/* the example document of spec 5.1, byte for byte */
static const char *golden =
	"{\"vcpus\":2,\"memoryBytes\":2147483648,\"bootloader\":{\"kind\":\"efiBootloader\",\"efiVariableStorePath\":\"/d/efi\",\"createVariableStore\":true},"
	"\"devices\":[{\"kind\":\"virtioblk\",\"devName\":\"virtio-blk\",\"imagePath\":\"/d/disk.raw\"},"
	"{\"kind\":\"virtionet\",\"nat\":false,\"unixSocketPath\":\"/r/gv.sock\",\"vfkitMagic\":true,\"macAddress\":\"5a:94:ef:e4:0c:ee\"},"
	"{\"kind\":\"virtiosock\",\"port\":1025,\"socketURL\":\"/r/ready.sock\",\"listen\":true},"
	"{\"kind\":\"virtioserial\",\"logFile\":\"/r/vm.log\"}],\"timesync\":{\"vsockPort\":1234}}";

static void golden_vfkit_json(void **s)
{
	(void)s;
	struct kv_config c;
	kv_config_init(&c);
	assert_int_equal(kv_config_from_json(golden, &c, 0, err, sizeof(err)), 0);
	char *j = kv_config_to_json(&c, 0);
	assert_string_equal(j, golden);
	free(j);
	/* the same VM from podman's command line gives the same document */
	struct kv_config p;
	char *args[] = { "--cpus", "2", "--memory", "2048", "--bootloader", "efi,variable-store=/d/efi,create",
			 "--device", "virtio-blk,path=/d/disk.raw",
			 "--device", "virtio-net,unixSocketPath=/r/gv.sock,mac=5a:94:ef:e4:0c:ee",
			 "--device", "virtio-vsock,port=1025,socketURL=/r/ready.sock,listen",
			 "--device", "virtio-serial,logFilePath=/r/vm.log", "--timesync", "vsockPort=1234" };
	assert_int_equal(parse_argv(16, args, &p), 0);
	j = kv_config_to_json(&p, 0);
	assert_string_equal(j, golden);
	free(j);
	kv_config_free(&c);
	kv_config_free(&p);
}

static void json_details(void **s)
{
	(void)s;
	struct kv_config c;
	char *j;
	/* vfkitMagic:false survives (vfkit's writer loses it); nested is kept */
	kv_config_init(&c);
	assert_int_equal(kv_config_from_json("{\"vcpus\":1,\"memoryBytes\":1048576,\"nested\":true,\"devices\":[{\"kind\":\"virtionet\","
					     "\"nat\":false,\"unixSocketPath\":\"/g.sock\",\"vfkitMagic\":false}]}",
					     &c, 0, err, sizeof(err)), 0);
	assert_true(c.nested);
	assert_false(c.devices[0].u.net.vfkit_magic);
	j = kv_config_to_json(&c, 0);
	assert_non_null(strstr(j, "\"vfkitMagic\":false"));
	assert_non_null(strstr(j, "\"nested\":true"));
	free(j);
	kv_config_free(&c);
	/* absent vfkitMagic with a path means on; NBD timeout is nanoseconds; unknown keys and nulls ignored */
	kv_config_init(&c);
	assert_int_equal(kv_config_from_json("{\"future\":{\"x\":1},\"ignition\":null,\"devices\":[{\"kind\":\"virtionet\",\"unixSocketPath\":\"/g\"},"
					     "{\"kind\":\"nbd\",\"uri\":\"nbd://h/e\",\"Timeout\":2500000000,\"SynchronizationMode\":\"none\"}]}",
					     &c, 0, err, sizeof(err)), 0);
	assert_true(c.devices[0].u.net.vfkit_magic);
	assert_int_equal(c.devices[1].u.nbd.timeout_ms, 2500);
	assert_true(c.devices[1].u.nbd.sync_none);
	assert_null(c.ignition);
	kv_config_free(&c);
	/* a vsock entry without "listen" is connect mode */
	kv_config_init(&c);
	assert_int_equal(kv_config_from_json("{\"devices\":[{\"kind\":\"virtiosock\",\"port\":5,\"socketURL\":\"/s\"}]}", &c, 0, err,
					     sizeof(err)), 0);
	assert_false(c.devices[0].u.vsock.listen);
	kv_config_free(&c);
}

static void json_errors(void **s)
{
	(void)s;
	static const struct { const char *doc, *msg; } cases[] = {
		{ "{\"devices\":[{\"kind\":\"floppy\"}]}", "unknown 'kind' field: 'floppy'" },
		{ "{\"devices\":[{\"path\":\"/x\"}]}", "unknown 'kind' field: ''" },
		{ "{\"bootloader\":{\"kind\":\"grub\"}}", "unknown 'kind' field: 'grub'" },
		{ "{\"devices\":[{\"kind\":\"virtioserial\",\"usesPty\":true,\"ptyName\":\"/dev/pts/3\"}]}", "VirtioSerial.PtyName must be empty" },
		{ "{\"devices\":[{\"kind\":\"virtionet\",\"socket\":{}}]}", NULL },
		{ "{\"vcpus\":\"two\"}", "configuration: 'vcpus' must be an integer" },
		{ "{\"vcpus\":-1}", "configuration: 'vcpus' is out of range" },
		{ "{\"vcpus\":1", NULL },
		{ "[1,2]", "invalid JSON: the configuration must be an object" },
		{ "{} {}", "invalid JSON: unexpected data after the top-level value" },
		{ "{\"devices\":[{\"kind\":\"virtiofs\",\"sharedDir\":\"/x\",\"mountTag\":\"0123456789012345678901234567890123456789\"}]}", NULL },
		{ "{\"devices\":[{\"kind\":\"virtiofs\",\"sharedDir\":\"/x\",\"mountTag\":\"x\",\"dax\":3}]}",
		  "devices[0]: invalid virtio-fs 'dax' window: 3 (expected its size in MiB, a power of two from 2 to 16384)" },
		{ "{\"devices\":[{\"kind\":\"virtioblk\"}]}", "devices[0]: missing mandatory 'path' option for virtio-blk device" },
		{ "{\"devices\":[{\"kind\":\"virtionet\",\"macAddress\":\"zz\"}]}", "address zz: invalid MAC address" },
		{ "{\"timesync\":{}}", "missing 'vsockPort' option for timesync parameter" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kv_config c;
		kv_config_init(&c);
		if (kv_config_from_json(cases[i].doc, &c, 0, err, sizeof(err)) != -1)
			fail_msg("accepted: %s", cases[i].doc);
		assert_true(*err);
		if (cases[i].msg && strcmp(err, cases[i].msg))
			fail_msg("%s: got '%s', want '%s'", cases[i].doc, err, cases[i].msg);
		kv_config_free(&c);
	}
}

/* kv_config_to_argv refuses c's one device with want; c is left empty. */
static void printer_refuses(struct kv_config *c, const char *want)
{
	char **v;
	int n;
	assert_int_equal(c->ndevices, 1);
	assert_int_equal(kv_config_to_argv(c, &v, &n, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	kv_config_free(c);
}

/* One set of rules whatever built the device: the constructors' devices
 * are checked when printed, JSON documents when read, with the command
 * line's texts and defaults. */
static void same_rules_on_every_path(void **s)
{
	(void)s;
	struct kv_config c;
	/* constructors: kv_config_to_argv refuses what the parser would */
	kv_config_init(&c);
	assert_non_null(kv_add_disk(&c, KV_DEV_VIRTIO_BLK, "", false));
	printer_refuses(&c, "--device virtio-blk: missing mandatory 'path' option for virtio-blk device");
	struct kv_device *d = kv_add_net_nat(&c);
	assert_non_null(d);
	assert_int_equal(kv_net_add_forward(&d->u.net, "tcp::2222:22"), 0);
	d->u.net.nat = false;
	d->u.net.tap = strdup("tap0");
	printer_refuses(&c, "--device virtio-net: 'forward' needs a 'nat' network");
	assert_non_null(kv_add_fs(&c, "/src", "0123456789012345678901234567890123456789"));
	printer_refuses(&c, "--device virtio-fs: invalid virtio-fs mount tag '0123456789012345678901234567890123456789': "
			    "must be 1 to 36 bytes");
	assert_non_null(kv_add_vsock(&c, 5, "/s", true));
	c.devices[0].u.vsock.mux = true;
	printer_refuses(&c, "--device virtio-vsock: virtio-vsock 'mux' needs 'socketURL' and takes no 'port'");
	/* JSON: the command line's defaults and checks */
	kv_config_init(&c);
	assert_int_equal(kv_config_from_json("{\"devices\":[{\"kind\":\"virtiofs\",\"sharedDir\":\"/home/u/src/\"},"
					     "{\"kind\":\"virtionet\",\"macAddress\":\"5a-94-ef-e4-0c-ee\"}]}",
					     &c, 0, err, sizeof(err)), 0);
	assert_string_equal(c.devices[0].u.fs.mount_tag, "src");
	assert_true(c.devices[1].u.net.nat);
	assert_int_equal(c.devices[1].u.net.mac[5], 0xee);
	kv_config_free(&c);
	static const struct { const char *doc, *msg; } bad[] = {
		{ "{\"devices\":[{\"kind\":\"nbd\",\"uri\":\"http://h/e\"}]}",
		  "devices[0]: invalid NBD device 'uri': invalid scheme: http. Expected one of: 'nbd', 'nbds', 'nbd+unix', or 'nbds+unix'" },
		{ "{\"devices\":[{\"kind\":\"virtioblk\",\"imagePath\":\"/d\",\"cache\":\"writeback\"}]}",
		  "unexpected value for disk 'cache' option: writeback (expected automatic, cached or uncached)" },
		{ "{\"devices\":[{\"kind\":\"virtioblk\",\"imagePath\":\"/dev/sdz\",\"type\":\"dev\",\"format\":\"qcow2\"}]}",
		  "devices[0]: 'format=qcow2' is not supported with type=dev (block devices are raw)" },
		{ "{\"devices\":[{\"kind\":\"virtioserial\",\"usesStdio\":true,\"usesPty\":true}]}",
		  "devices[0]: 'stdio' and 'pty' cannot be set at the same time" },
		{ "{\"devices\":[{\"kind\":\"virtionet\",\"nat\":true,\"tap\":\"t0\"}]}",
		  "devices[0]: 'tap' and 'nat' cannot be set at the same time" },
		{ "{\"devices\":[{\"kind\":\"virtiogpu\",\"width\":0}]}", "devices[0]: invalid value for virtio-gpu width: 0" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kv_config_init(&c);
		assert_int_equal(kv_config_from_json(bad[i].doc, &c, 0, err, sizeof(err)), -1);
		if (strcmp(err, bad[i].msg))
			fail_msg("%s: got '%s', want '%s'", bad[i].doc, err, bad[i].msg);
		kv_config_free(&c);
	}
}

static void printer_forms(void **s)
{
	(void)s;
	struct kv_config c;
	char **v;
	int n;
	char *args[] = { "--memory", "1", "--bootloader", "linux,kernel=/k,initrd=/i,cmdline=\"console=hvc0 a=1,2\"",
			 "--device", "virtio-net,type=unixgram,path=/g,vfkitMagic=off", "--nested", "--timesync", "vsockPort=7",
			 "--restful-uri", "tcp://localhost:1", "--ignition", "/ign" };
	assert_int_equal(parse_argv(13, args, &c), 0);
	c.memory_bytes = (1 << 20) + 1; /* rounded up to a whole MiB */
	assert_int_equal(kv_config_to_argv(&c, &v, &n, err, sizeof(err)), 0);
	char joined[1024] = "";
	for (int i = 0; i < n; i++) {
		strcat(joined, v[i]);
		strcat(joined, " ");
	}
	assert_string_equal(joined, "--cpus 1 --memory 2 --bootloader linux,kernel=/k,initrd=/i,cmdline=\"console=hvc0 a=1,2\" "
				    "--device virtio-net,type=unixgram,path=/g,vfkitMagic=off --ignition /ign --nested "
				    "--timesync vsockPort=7 --restful-uri tcp://localhost:1 ");
	kv_free_strv(v, n);
	/* kernel command lines: every form that can be written reads back the same */
	static const char *cmdlines[] = { "console=hvc0 run=\"echo a; echo b\"", "a=\"x,y\"", "p=1,2 q=3", "\"quoted\" mid" };
	for (size_t i = 0; i < sizeof(cmdlines) / sizeof(cmdlines[0]); i++) {
		struct kv_config k, back;
		kv_config_init(&k);
		assert_int_equal(kv_config_set_linux_boot(&k, "/k", NULL, cmdlines[i]), 0);
		assert_int_equal(kv_config_to_argv(&k, &v, &n, err, sizeof(err)), 0);
		assert_int_equal(parse_argv(n, v, &back), 0);
		assert_string_equal(back.boot.cmdline, cmdlines[i]);
		kv_free_strv(v, n);
		kv_config_free(&k);
		kv_config_free(&back);
	}
	struct kv_config bad;
	kv_config_init(&bad);
	assert_int_equal(kv_config_set_linux_boot(&bad, "/k", NULL, "a=1,2 b=\"x y\""), 0);
	assert_int_equal(kv_config_to_argv(&bad, &v, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot be written"));
	kv_config_free(&bad);
	/* a comma cannot be written in device syntax */
	free(c.devices[0].u.net.unix_path);
	c.devices[0].u.net.unix_path = strdup("/a,b");
	assert_int_equal(kv_config_to_argv(&c, &v, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "comma"));
	kv_config_free(&c);
}

static void config_file_then_flags(void **s)
{
	(void)s;
	char path[] = "/tmp/kvkit-test-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *doc = "{\"vcpus\":2,\"memoryBytes\":1073741824,\"bootloader\":{\"kind\":\"linuxBootloader\",\"vmlinuzPath\":\"/k\","
			  "\"kernelCmdLine\":\"console=hvc0\",\"initrdPath\":\"/i\"},\"devices\":[{\"kind\":\"virtiorng\"}],"
			  "\"restfulURI\":\"unix:///r/api.sock\",\"logLevel\":\"debug\",\"cloudInit\":[\"/c/user-data\"],"
			  "\"sandbox\":\"off\",\"user\":\"nobody\"}";
	assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
	close(fd);
	struct kv_config c;
	/* flags override scalars and append devices, wherever --config stands */
	char *args[] = { "--cpus", "4", "--config", path, "--device", "virtio-balloon" };
	assert_int_equal(parse_argv(6, args, &c), 0);
	assert_int_equal(c.cpus, 4);
	assert_int_equal(c.memory_bytes, 1ULL << 30);
	assert_int_equal(c.boot.kind, KV_BOOT_LINUX);
	assert_string_equal(c.boot.cmdline, "console=hvc0");
	assert_int_equal(c.ndevices, 2);
	assert_int_equal(c.devices[0].kind, KV_DEV_VIRTIO_RNG);
	assert_int_equal(c.devices[1].kind, KV_DEV_VIRTIO_BALLOON);
	assert_string_equal(c.restful_uri, "unix:///r/api.sock");
	assert_int_equal(c.log_level, KV_LOG_DEBUG);
	assert_int_equal(c.ncloud_init, 1);
	assert_true(c.sandbox_off);
	assert_string_equal(c.user, "nobody");
	/* and back: JSON and the command line carry it */
	char *j = json_of(&c);
	assert_non_null(strstr(j, "\"sandbox\":\"off\""));
	assert_non_null(strstr(j, "\"user\":\"nobody\""));
	free(j);
	char **v;
	int n;
	assert_int_equal(kv_config_to_argv(&c, &v, &n, err, sizeof(err)), 0);
	int found = 0;
	for (int i = 0; i + 1 < n; i++)
		found += (!strcmp(v[i], "--sandbox") && !strcmp(v[i + 1], "off")) +
			 (!strcmp(v[i], "--user") && !strcmp(v[i + 1], "nobody"));
	assert_int_equal(found, 2);
	kv_free_strv(v, n);
	kv_config_free(&c);
	/* a bootloader flag replaces the file's */
	char *args2[] = { "--config", path, "--bootloader", "efi,variable-store=/v" };
	assert_int_equal(parse_argv(4, args2, &c), 0);
	assert_int_equal(c.boot.kind, KV_BOOT_EFI);
	assert_null(c.boot.kernel);
	kv_config_free(&c);
	/* errors name the file */
	char *args3[] = { "--config", "/nonexistent/kvkit.json" };
	assert_int_equal(parse_argv(2, args3, &c), -1);
	assert_string_equal(err, "--config /nonexistent/kvkit.json: No such file or directory");
	kv_config_free(&c);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "{\"vcpus\":", 9), 9);
	close(fd);
	char *args4[] = { "--config", path };
	assert_int_equal(parse_argv(2, args4, &c), -1);
	assert_non_null(strstr(err, "invalid JSON"));
	kv_config_free(&c);
	unlink(path);
}

/* the kvkit-only firmware options survive JSON and argv round trips */
static void efi_firmware_options_round_trip(void **state)
{
	(void)state;
	struct kv_config c, d;
	kv_config_init(&c);
	assert_int_equal(kv_config_set_efi_boot(&c, "/v/store", true), 0);
	c.boot.efi_firmware = strdup("/fw/MY_CODE.fd");
	c.boot.efi_vars_template = strdup("/fw/MY_VARS.fd");
	char *json = kv_config_to_json(&c, 0);
	assert_non_null(strstr(json, "\"firmwarePath\""));
	kv_config_init(&d);
	char err[256];
	assert_int_equal(kv_config_from_json(json, &d, 0, err, sizeof(err)), 0);
	assert_string_equal(d.boot.efi_firmware, "/fw/MY_CODE.fd");
	assert_string_equal(d.boot.efi_vars_template, "/fw/MY_VARS.fd");
	assert_true(d.boot.efi_create);
	free(json);
	char **argv;
	int argc;
	assert_int_equal(kv_config_to_argv(&c, &argv, &argc, err, sizeof(err)), 0);
	int found = 0;
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "efi,variable-store=/v/store,create,firmware=/fw/MY_CODE.fd,vars-template=/fw/MY_VARS.fd"))
			found = 1;
	assert_true(found);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
	kv_config_free(&c);
	kv_config_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(efi_firmware_options_round_trip),
		cmocka_unit_test(argv_and_json_round_trips),
		cmocka_unit_test(option_order_does_not_matter),
		cmocka_unit_test(golden_vfkit_json),
		cmocka_unit_test(json_details),
		cmocka_unit_test(json_errors),
		cmocka_unit_test(same_rules_on_every_path),
		cmocka_unit_test(printer_forms),
		cmocka_unit_test(config_file_then_flags),
	};
	return cmocka_run_group_tests_name("config library", tests, NULL, NULL);
}
