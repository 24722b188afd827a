"""The sandbox (issue 23, docs/security.md): a guest that uses a disk, NAT,
vsock, a shared folder and the REST API runs under the default system-call
filter, and every kvkit thread shows NoNewPrivs 1 and Seccomp 2, the
threads that worked with their own list on top of the process-wide one, and
the shared folder's workers in a mount namespace holding only the folder; a
forbidden system call (a test hook built into ASan builds only) kills kvkit
with a line naming the call, also one the process-wide list allows but the
vCPU thread's does not; --sandbox off runs without the filter."""
import http.server
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

import pytest

from conftest import ROOT, kvkit_cmd, needs_kvm, run_vm, stream_vm

sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))
from guest_tools import GUEST_RUN, tools_disk  # noqa: E402

pytestmark = needs_kvm
SAN = os.environ.get("KVKIT_E2E_SAN") == "1"

GUEST = r"""S="chroot /t socat"
mkdir -p /m && mount -t virtiofs share /m && echo guest-wrote > /m/g.txt && echo SHARE-OK
echo disk-block | dd of=/dev/vdb bs=512 count=1 conv=sync,fsync 2>/dev/null && echo DISK-OK
udhcpc -i eth0 -n -q -t 10 -T 1 2>/dev/null | grep -q DHCP-BOUND && echo DHCP-OK
echo "NAT $(wget -q -O - http://10.0.2.2:%(port)d/)"
echo "VSOCK $(echo hello-host | $S -t 10 - VSOCK-CONNECT:2:5000)"
echo SANDBOX-CHECK
i=0; while [ ! -e /m/go ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
umount /m && echo DONE
"""


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "14")
        self.end_headers()
        self.wfile.write(b"page-from-host")

    def log_message(self, *a):
        pass


def threads(pid):
    """{tid: (name, NoNewPrivs, Seccomp, Uid, CapEff, CapPrm, Seccomp_filters)} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        f = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as s:
            for line in s:
                k, _, v = line.partition(":")
                f[k] = v.strip()
        out[tid] = (f["Name"], f["NoNewPrivs"], f["Seccomp"], f["Uid"].split()[0], f["CapEff"], f["CapPrm"],
                    f["Seccomp_filters"])
    return out


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    d = tmp_path_factory.mktemp("sandbox-tools")
    img = str(d / "tools.img")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Page)
    tools_disk(img, ["socat"], GUEST % {"port": httpd.server_address[1]}, str(d), size="32M")
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield img
    httpd.shutdown()


@pytest.mark.parametrize("user", [None, "nobody"])
def test_sandboxed_guest_uses_disk_nat_vsock_share_and_api(tmp_path, tools, user):
    """user: kvkit starts as root and becomes it (--user) before the vCPUs start."""
    # sockets, the pidfile and the share where the user can reach and remove them
    run_dir = tempfile.mkdtemp(prefix="kvkit-sb-")
    os.chmod(run_dir, 0o755)
    share, disk = os.path.join(run_dir, "share"), tmp_path / "d.raw"
    sock, api, pidf = (os.path.join(run_dir, n) for n in ("v.sock", "api.sock", "pid"))
    os.mkdir(share)
    uid = pwd.getpwnam(user).pw_uid if user else 0
    if user:
        os.chown(run_dir, uid, -1)
        os.chown(share, uid, -1)
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    got = []
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock)
    os.chmod(sock, 0o777)
    srv.listen(4)

    def echo():
        c, _ = srv.accept()
        got.append(c.recv(100))
        c.sendall(b"hello-guest\n")
        c.close()
    threading.Thread(target=echo, daemon=True).start()
    seen = {}

    def on_line(text):
        if text == "SANDBOX-CHECK":
            seen["state"] = subprocess.run(["curl", "-s", "--unix-socket", api, "http://kvkit/vm/state"],
                                           capture_output=True, text=True, timeout=30).stdout
            with open(pidf) as f:
                seen["pid"] = f.read().strip()
                seen["threads"] = threads(int(seen["pid"]))
            seen["mounts"] = {tid: open("/proc/%s/task/%s/mountinfo" % (seen["pid"], tid)).read().splitlines()
                              for tid in seen["threads"]}
            with open(os.path.join(share, "go"), "w") as f:
                f.write("go\n")
    args = ["--pidfile", pidf, "--restful-uri", "unix://" + api] + (["--user", user] if user else [])
    cmd = kvkit_cmd(*args, memory=512, run=GUEST_RUN.replace("/dev/%s", "/dev/vda"),
                    devices=["virtio-serial,stdio", "virtio-blk,path=%s,readonly" % tools, "virtio-blk,path=%s" % disk,
                             "virtio-net,nat,hostLoopback", "virtio-vsock,port=5000,socketURL=%s,listen" % sock,
                             "virtio-fs,sharedDir=%s,mountTag=share" % share, "virtio-rng", "virtio-balloon"])
    try:
        rc, lines, err = stream_vm(cmd, str(tmp_path / "kvkit.err"), on_line, timeout=400)
        out = "\n".join(lines)
        assert rc == 0, "status %s\n%s\n%s" % (rc, out[-3000:], err[-3000:])
        assert "sandbox:" not in err, err[-3000:]
        for mark in ("SHARE-OK", "DISK-OK", "DHCP-OK", "NAT page-from-host", "VSOCK hello-guest", "DONE"):
            assert mark in lines, (mark, out[-3000:], err[-2000:])
        assert got == [b"hello-host\n"]
        st = os.stat(os.path.join(share, "g.txt"))
        assert open(os.path.join(share, "g.txt")).read() == "guest-wrote\n" and st.st_uid == uid
        with open(disk, "rb") as f:
            assert f.read(10) == b"disk-block"
        assert '"state":"VirtualMachineStateRunning"' in seen["state"].replace(" ", ""), seen["state"]
        names = [t[0] for t in seen["threads"].values()]
        # the vCPU, the main loop, the shared folder's workers at least
        assert len(names) >= 3 and any(n.startswith("virtio-fs") for n in names), names
        want = ("1", "2", str(uid)) + (("0000000000000000", "0000000000000000") if user else ())
        bad = {tid: t for tid, t in seen["threads"].items() if t[1:1 + len(want)] != want}
        assert not bad, "threads not as %s (NoNewPrivs, Seccomp, Uid, CapEff, CapPrm): %s" % (want, bad)
        # each kind of thread that worked took its own list (2 filters):
        # the main loop, the vCPU, a shared-folder worker, the REST API
        two = {t[0] for tid, t in seen["threads"].items() if t[6] == "2"}
        assert seen["threads"][seen["pid"]][6] == "2", seen["threads"]
        assert {"vcpu0", "virtio-fs", "rest-api"} <= two, seen["threads"]
        # the shared folder's workers live in a mount namespace that holds
        # the folder alone, as its root; the other threads see the host
        for tid, t in seen["threads"].items():
            m = seen["mounts"][tid]
            if t[0] == "virtio-fs":
                assert len(m) == 1 and m[0].split()[4] == "/" and m[0].split()[3].endswith("/share"), m
            else:
                assert len(m) > 1, (t, m)
        if not user:
            # root without --user: each thread keeps only what its work
            # needs; the shared folder's workers chown, reach and chmod
            # files as the guest's root does (CHOWN, DAC_OVERRIDE,
            # DAC_READ_SEARCH, FOWNER, FSETID) and create them as the
            # guest user asking (SETGID, SETUID), no other thread keeps any
            # (io_uring's own kernel workers, iou-wrk-*, run no kvkit code)
            caps = {(t[0], t[4], t[5]) for t in seen["threads"].values() if not t[0].startswith("iou-")}
            assert caps == {(n, c, c) for n, c in (("kvkit", "0" * 16), ("vcpu0", "0" * 16),
                                                   ("virtio-fs", "00000000000000df"), ("rest-api", "0" * 16))} | \
                ({("blk-io", "0" * 16, "0" * 16)} if any(t[0] == "blk-io" for t in seen["threads"].values()) else set()), \
                seen["threads"]
        if user:
            assert "running as uid %d" % uid in err
        # what kvkit removes at exit is gone, as the user too
        assert not os.path.exists(pidf) and not os.path.exists(api)
    finally:
        srv.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_user_needs_root_and_a_real_user(tmp_path):
    def bad(*args, preexec=None):
        p = subprocess.run(kvkit_cmd(*args), capture_output=True, text=True, timeout=60, preexec_fn=preexec)
        return p.returncode, p.stderr.strip().splitlines()[-1]
    assert bad("--user", "no-such-user-here") == (1, "Error: --user no-such-user-here: no such user")
    assert bad("--user", "root") == (1, "Error: --user root: that is root, which keeps every privilege")
    nobody = pwd.getpwnam("nobody")

    def as_nobody():
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    assert bad("--user", "nobody", preexec=as_nobody) == \
        (1, "Error: --user nobody: kvkit must be started as root to change its user")


@pytest.mark.skipif(not SAN, reason="the test hook is in ASan builds only; the plain build's test checks it is absent")
@pytest.mark.parametrize("hook,call,thread", [
    ("ptrace", "ptrace (101)", "kvkit"),      # no thread may: the process-wide list
    ("vcpu:mkdirat", "mkdirat (258)", "vcpu0"),  # a shared-folder call: not in the vCPU thread's list
])
def test_forbidden_system_call_kills_kvkit_and_names_it(hook, call, thread):
    env = dict(os.environ, KVKIT_TEST_FORBIDDEN_SYSCALL=hook)
    p = subprocess.run(kvkit_cmd(run="echo SHOULD-NOT-RUN"), env=env, capture_output=True, timeout=120)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == -signal.SIGSYS, (p.returncode, err[-2000:])
    assert "sandbox: the system call %s is not allowed (thread %s); kvkit stops" % (call, thread) in err, err[-2000:]
    assert "test hook: %s returned" % hook.split(":")[-1] not in err
    assert b"SHOULD-NOT-RUN" not in p.stdout


@pytest.mark.skipif(SAN, reason="release builds only: the hook is compiled out")
def test_release_build_has_no_test_hook_and_sandbox_off_has_no_filter(tmp_path):
    pidf = tmp_path / "pid"
    seen = {}

    def on_line(text):
        if text == "CHECK":
            seen["threads"] = threads(int(pidf.read_text()))
    env_cmd = ["env", "KVKIT_TEST_FORBIDDEN_SYSCALL=ptrace"] + kvkit_cmd("--pidfile", str(pidf), "--sandbox", "off",
                                                                       run="echo CHECK; sleep 2; echo HOOK-ABSENT")
    rc, lines, err = stream_vm(env_cmd, str(tmp_path / "kvkit.err"), on_line, timeout=120)
    assert rc == 0 and "HOOK-ABSENT" in lines, (rc, err[-2000:])
    assert "test hook" not in err
    assert "the sandbox is off (--sandbox off)" in err
    assert seen["threads"] and all(t[1:3] == ("1", "0") for t in seen["threads"].values()), seen
    # the default: on, for every thread
    rc, out, err, _ = run_vm("--sandbox", "on", run="echo ON-OK")
    assert rc == 0 and "ON-OK" in out, err[-2000:]
