"""Shared helpers for kvkit's end-to-end tests: they boot the real Debian
guest built by tests/guest/build.sh under a real KVM (directly, or inside
the nested rig: tests/run.sh decides) and assert on what a user sees."""
import os
import socket
import select
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


def run_to_end(cmd, timeout=120, stdin=subprocess.DEVNULL, input=None):
    """Run kvkit to its exit; returns a CompletedProcess. If it outlives the
    timeout it gets SIGTERM (it stops the VM and, at --log-level debug, logs
    each vCPU's state) and the test fails showing the end of both streams."""
    p = subprocess.Popen(cmd, stdin=stdin if input is None else subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        raise AssertionError("kvkit still ran after %d s (status after SIGTERM: %s)\n--- stdout:\n%s\n--- stderr:\n%s"
                             % (timeout, p.returncode, out.decode(errors="replace")[-3000:],
                                err.decode(errors="replace")[-5000:]))
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def run_vm(*args, timeout=120, stdin=subprocess.DEVNULL, input=None, **kw):
    """Boot a guest to completion; returns (exit status, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    p = run_to_end(kvkit_cmd(*args, **kw), timeout=timeout, stdin=stdin, input=input)
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


def stream_vm(cmd, errpath, on_line=None, timeout=900):
    """Run kvkit to its exit, reading the guest's console line by line;
    on_line(text) may act on the host meanwhile (the guest waits for it).
    stderr goes to a file (a full pipe would stall kvkit). Returns
    (exit status, lines, stderr text)."""
    errf = open(errpath, "w+")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
    lines = []
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        r, _, _ = select.select([proc.stdout], [], [], 5)
        if time.monotonic() > deadline:
            lines.append("TEST-TIMEOUT: the guest did not finish in %d s" % timeout)
            proc.terminate()  # kvkit logs (debug) its device state at exit
            break
        if not r:
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode(errors="replace").rstrip("\r")
            lines.append(text)
            if on_line:
                on_line(text)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    errf.seek(0)
    err = errf.read()
    errf.close()
    os.unlink(errpath)
    return rc, lines, err


def said(res, prefix):
    """What the guest printed after prefix (first such line) in a stream_vm result."""
    got = [l[len(prefix):].strip() for l in res["out"] if l.startswith(prefix)]
    assert got, "the guest never printed %r:\n%s\n%s" % (prefix, "\n".join(res["out"][-40:]), res["err"][-3000:])
    return got[0]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
