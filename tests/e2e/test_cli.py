"""What the kvkit binary says and does before any guest runs (no KVM needed)."""
import os
import subprocess
import tempfile

from conftest import KVKIT, KERNEL


def kv(*args, argv0=None, env=None):
    exe = KVKIT
    if argv0:
        exe = os.path.join(os.path.dirname(KVKIT), argv0)
    return subprocess.run([exe] + list(args), capture_output=True, timeout=30, env=env, stdin=subprocess.DEVNULL)


def one_error(p, text):
    assert p.returncode == 1, p
    lines = p.stderr.decode().splitlines()
    assert lines == ["Error: " + text], lines
    assert p.stdout == b""


def test_version_as_vfkit_and_kvkit():
    p = kv("-v", argv0="vfkit")
    assert p.returncode == 0 and p.stdout == b"vfkit version: 0.6.1\n"
    env = dict(os.environ, KVKIT_VFKIT_VERSION="0.6.4")
    assert kv("--version", argv0="vfkit", env=env).stdout == b"vfkit version: 0.6.4\n"
    p = kv("--version")
    assert p.returncode == 0 and p.stdout.startswith(b"kvkit version: ")


def test_vfkit_hard_link_process_name():
    vf = os.path.join(os.path.dirname(KVKIT), "vfkit")
    assert os.stat(vf).st_ino == os.stat(KVKIT).st_ino


def test_help():
    p = kv("--help")
    assert p.returncode == 0 and b"--bootloader" in p.stdout


def test_missing_kernel_file():
    with tempfile.TemporaryDirectory() as d:
        missing = os.path.join(d, "nope")
        p = kv("--bootloader", "linux,kernel=" + missing)
        one_error(p, "cannot open kernel %s: No such file or directory" % missing)


def test_not_a_kernel():
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"not a kernel at all" * 100)
        f.flush()
        p = kv("--bootloader", "linux,kernel=" + f.name)
        one_error(p, "kernel %s is not an x86_64 Linux kernel (neither bzImage nor ELF vmlinux)" % f.name)


def test_missing_initrd():
    p = kv("--bootloader", "linux,kernel=%s,initrd=/nonexistent/initrd" % KERNEL)
    one_error(p, "cannot open initrd /nonexistent/initrd: No such file or directory")


def test_unsupported_device_is_refused_and_nothing_created():
    with tempfile.TemporaryDirectory() as d:
        pidfile = os.path.join(d, "pid")
        sock = os.path.join(d, "ssh.sock")
        # the vsock entry would create a socket and --pidfile a file: the
        # refusal comes before either
        p = kv("--pidfile", pidfile, "--bootloader", "linux,kernel=" + KERNEL,
               "--device", "virtio-vsock,port=2222,socketURL=%s,connect" % sock,
               "--device", "usb-mass-storage,path=%s" % os.path.join(d, "usb.img"))
        one_error(p, "--device usb-mass-storage: not supported yet")
        assert os.listdir(d) == []


def test_macos_and_rosetta():
    one_error(kv("--bootloader", "macos,machineIdentifierPath=/x"), "macOS guests are not supported on Linux")
    one_error(kv("--bootloader", "linux,kernel=" + KERNEL, "--device", "rosetta,mountTag=r"),
              "rosetta is unsupported on non-arm64 platforms")


def test_parse_errors():
    one_error(kv("--cpus", "abc"),
              'invalid argument "abc" for "-c, --cpus" flag: strconv.ParseUint: parsing "abc": invalid syntax')
    one_error(kv("--bogus"), "unknown flag: --bogus")
    one_error(kv("stray"), "unexpected argument: stray")
    one_error(kv("--cpus", "2"), "empty option list in --bootloader command line argument")
    one_error(kv("--kernel", "/k"),
              "if any flags in the group [kernel initrd kernel-cmdline] are set they must all be set; missing [initrd kernel-cmdline]")
