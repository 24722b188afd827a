"""Shared helpers for kvkit's end-to-end tests: they boot the real Debian
guest built by tests/guest/build.sh under a real KVM (directly, or inside
the nested rig: tests/run.sh decides) and assert on what a user sees."""
import os
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.environ.get("KVKIT", os.path.join(ROOT, "build", "kvkit"))
GUEST = os.environ.get("KVKIT_GUEST", os.path.join(ROOT, "build", "guest"))
KERNEL = os.path.join(GUEST, "vmlinuz")
INITRD = os.path.join(GUEST, "initrd.img")


def have_kvm():
    return os.environ.get("KVKIT_E2E_KVM") == "1"


needs_kvm = pytest.mark.skipif(not have_kvm(), reason="no KVM able to boot a stock kernel (run through tests/run.sh)")


def bootloader(run=None, extra=""):
    cmd = "console=ttyS0 quiet " + extra
    if run is not None:
        # the kernel hands run=... to init as an environment variable
        cmd += ' run="%s"' % run
    # no outer quotes: they would be trimmed together with run's closing quote
    return 'linux,kernel=%s,initrd=%s,cmdline=%s' % (KERNEL, INITRD, cmd.strip())


def kvkit_cmd(*args, cpus=1, memory=512, run=None, devices=("virtio-serial,stdio",), extra_cmdline=""):
    cmd = [KVKIT, "--cpus", str(cpus), "--memory", str(memory), "--bootloader", bootloader(run, extra_cmdline)]
    for d in devices:
        cmd += ["--device", d]
    return cmd + list(args)


def run_vm(*args, timeout=120, stdin=subprocess.DEVNULL, input=None, **kw):
    """Boot a guest to completion; returns (exit status, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    p = subprocess.run(kvkit_cmd(*args, **kw), stdin=stdin if input is None else None, input=input,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), time.monotonic() - t0


def start_vm(*args, **kw):
    return subprocess.Popen(kvkit_cmd(*args, **kw), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def wait_for_line(stream, needle, timeout=90):
    """Read a binary stream until a line contains needle; returns all text read."""
    import select
    buf = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        if needle.encode() in buf:
            return buf.decode(errors="replace")
    raise AssertionError("did not see %r; got:\n%s" % (needle, buf.decode(errors="replace")))
