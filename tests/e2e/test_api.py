"""REST API end to end (spec section 4, issue 7): real guests driven through
--restful-uri over a unix socket and TCP, the way podman and minikube do."""
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import KERNEL, INITRD, KVKIT, free_port, kvkit_cmd, needs_kvm, run_to_end
from rest_client import Api, Lines


TICKER = "acpid -d & i=0; while true; do echo TICK-$i-$(cut -d' ' -f1 /proc/uptime); i=$((i+1)); sleep 0.2; done"


def start(args, run):
    p = subprocess.Popen(kvkit_cmd(*args, run=run), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    return p


@needs_kvm
def test_unix_socket_state_inspect_pause_resume_then_stop(tmp_path):
    sock = str(tmp_path / "api.sock")
    p = start(["--restful-uri", "unix://" + sock], TICKER)
    out = Lines(p.stdout)
    try:
        api = Api(unix=sock)
        out.wait(lambda o: len(o.ticks()) >= 3)
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        assert api.state() == "VirtualMachineStateRunning"
        st, body, ctype = api.request("GET", "/vm/inspect")
        assert st == 200 and ctype == "application/json; charset=utf-8"
        got = json.loads(body)
        assert got["vcpus"] == 1 and got["memoryBytes"] == 512 << 20
        assert got["bootloader"]["kind"] == "linuxBootloader"
        assert got["bootloader"]["vmlinuzPath"] == KERNEL and got["bootloader"]["initrdPath"] == INITRD
        assert "TICK-" in got["bootloader"]["kernelCmdLine"]
        assert got["devices"] == [{"kind": "virtioserial", "usesStdio": True}]

        # Pause: the guest's counter stops advancing
        st, body, _ = api.post("Pause")
        assert (st, body) == (202, "")
        assert api.state() == "VirtualMachineStatePaused"
        time.sleep(0.5)  # output already in flight
        frozen = len(out.ticks())
        time.sleep(2.5)
        assert len(out.ticks()) == frozen, "guest ran while paused"
        st, body, _ = api.post("Pause")
        assert st == 500 and "cannot pause" in json.loads(body)["error"]
        # Resume: it advances again
        st, _, _ = api.post("Resume")
        assert st == 202
        assert api.state() == "VirtualMachineStateRunning"
        out.wait(lambda o: len(o.ticks()) >= frozen + 5, timeout=30)
        # the guest's clock stood still too (kvmclock saved and restored):
        # across ~3 s of pause its uptime moved by far less
        up = dict(out.uptimes())
        last_before, first_after = frozen - 1, frozen
        assert last_before in up and first_after in up, out.lines[-20:]
        assert up[first_after] - up[last_before] < 1.5, (up[last_before], up[first_after])

        # Stop: the guest's own power-button handler powers it off
        st, body, _ = api.post("Stop")
        assert (st, body) == (202, "")
        p.wait(timeout=30)
        assert p.returncode == 0, p.stderr.read().decode()
        out.t.join(5)
        assert "KVKIT-POWER-BUTTON" in out.lines
        assert api.refused()
        assert not os.path.exists(sock)
    finally:
        if p.poll() is None:
            p.kill()


@needs_kvm
def test_tcp_podman_stop_sequence():
    # podman: POST Stop (reply ignored), then GET every 0.5 s until the
    # request fails; ECONNREFUSED means stopped
    port = free_port()
    p = start(["--restful-uri", "tcp://localhost:%d" % port], TICKER)
    out = Lines(p.stdout)
    try:
        api = Api(port=port)
        out.wait(lambda o: len(o.ticks()) >= 3)
        assert api.state() == "VirtualMachineStateRunning"
        api.post("Stop")
        t0 = time.monotonic()
        polls = 0
        while not api.refused():
            polls += 1
            assert polls < 180, "still answering after 90 s"
            time.sleep(0.5)
        assert time.monotonic() - t0 < 15
        p.wait(timeout=10)
        assert p.returncode == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
    finally:
        if p.poll() is None:
            p.kill()


@needs_kvm
def test_bad_requests_slow_client_then_hard_stop(tmp_path):
    # a guest that ignores the power button; bad requests change nothing;
    # HardStop is answered before kvkit exits
    port = free_port()
    p = start(["--restful-uri", "tcp://127.0.0.1:%d" % port], "i=0; while true; do echo TICK-$i; i=$((i+1)); sleep 0.2; done")
    out = Lines(p.stdout)
    try:
        api = Api(port=port)
        out.wait(lambda o: len(o.ticks()) >= 3)
        for body, status in [("{", 400), ("", 400), ('{"state":"Start"}', 500), ('{"state":"Resume"}', 500),
                             ('{"state":5}', 400), ("x" * (1 << 20), 413)]:
            try:
                st, text, _ = api.request("POST", "/vm/state", body)
            except (ConnectionResetError, BrokenPipeError):
                assert status == 413  # a server may close on an oversized body
                continue
            assert st == status, (body[:20], st, text)
            if text:
                assert "error" in json.loads(text)
        st, text, _ = api.request("GET", "/nope")
        assert (st, text) == (404, "404 page not found\n")
        # what a web page can send: a cross-site text POST, a form POST, a
        # request under its own (rebound) name; each refused, the VM runs on
        for hdrs, path, status in [({"Origin": "http://evil.example", "Content-Type": "text/plain"}, "/vm/state", 403),
                                   ({"Content-Type": "application/x-www-form-urlencoded"}, "/vm/state", 415),
                                   ({"Host": "evil.example:%d" % port}, "/vm/inspect", 403)]:
            method, body = ("GET", None) if path == "/vm/inspect" else ("POST", '{"state":"HardStop"}')
            st, text, _ = api.request(method, path, body, hdrs)
            assert st == status and "error" in json.loads(text), (hdrs, st, text)
        st, text, _ = api.request("GET", "/vm/inspect", headers={"Host": "127.0.0.1:%d" % port})
        assert st == 200, text
        # a slow client holding a half-sent request does not block others
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /vm/state HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"st")
        assert api.state() == "VirtualMachineStateRunning"
        n = len(out.ticks())
        out.wait(lambda o: len(o.ticks()) > n + 2, timeout=30)  # the guest kept running

        t0 = time.monotonic()
        st, body, _ = api.post("HardStop")
        assert (st, body) == (202, "")
        p.wait(timeout=10)
        assert time.monotonic() - t0 < 5
        assert p.returncode == 0
        assert api.refused()
        slow.close()
    finally:
        if p.poll() is None:
            p.kill()


@needs_kvm
def test_config_file_with_flags_on_top(tmp_path):
    cfg = {"vcpus": 1, "memoryBytes": 512 << 20,
           "bootloader": {"kind": "linuxBootloader", "vmlinuzPath": KERNEL, "initrdPath": INITRD,
                          "kernelCmdLine": 'console=ttyS0 quiet run="grep -c ^processor /proc/cpuinfo | sed s/^/CPUS=/; '
                                           'grep MemTotal /proc/meminfo"'},
           "devices": [{"kind": "virtioserial", "usesStdio": True}]}
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(cfg))
    # --cpus overrides the file; the extra device is appended
    p = run_to_end([KVKIT, "--config", str(path), "--cpus", "2", "--device", "virtio-rng", "--log-level", "debug"])
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    assert "CPUS=2" in out, out
    assert "\tvCPUs: 2" in p.stderr.decode().replace("\\t", "\t")


def test_rest_startup_errors(tmp_path):
    """Bad --restful-uri values, an unwritable socket path and a busy port:
    one line, exit 1, nothing left behind (no KVM guest boots here)."""
    base = [KVKIT, "--bootloader", "linux,kernel=%s" % KERNEL, "--pidfile", str(tmp_path / "pid")]
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    cases = [
        ("tcp://localhost", "Error: invalid TCP uri: missing port"),
        ("tcp://localhost:80/x", "Error: invalid TCP uri: path is forbidden"),
        ("unix://", "Error: invalid unix uri: missing path"),
        ("ftp://h:1", "Error: invalid scheme ftp"),
        ("unix:///nonexistent-dir/api.sock", "Error: cannot listen on unix:///nonexistent-dir/api.sock: No such file or directory"),
        ("tcp://127.0.0.1:%d" % busy.getsockname()[1], "Error: cannot listen on tcp://127.0.0.1:%d: Address already in use" % busy.getsockname()[1]),
    ]
    for uri, msg in cases:
        if "cannot listen" in msg and not os.path.exists("/dev/kvm"):
            continue  # binding happens after the VM is created
        p = subprocess.run(base + ["--restful-uri", uri], capture_output=True, timeout=60)
        err = p.stderr.decode().strip().splitlines()
        assert p.returncode == 1, (uri, p.stderr)
        assert err[-1] == msg, (uri, err)
        assert not [l for l in err if l.startswith("Error:")][1:], err  # one error line
        assert not os.path.exists(tmp_path / "pid")
    busy.close()
    # a live socket is not stolen; a stale one is replaced
    live = tmp_path / "live.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(live))
    srv.listen(1)
    p = subprocess.run(base + ["--restful-uri", "unix://%s" % live], capture_output=True, timeout=60)
    if os.path.exists("/dev/kvm"):
        assert p.returncode == 1 and b"another process is serving this socket" in p.stderr, p.stderr
    srv.close()
    assert os.path.exists(live)


@needs_kvm
def test_example_program_launches_a_vm():
    # docs/examples/launch_vm.c builds the VM with libkvkit and execs kvkit
    example = os.path.join(os.path.dirname(KVKIT), "examples", "launch_vm")
    if not os.path.exists(example):  # the sanitizer build dir has its own copy
        example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "build", "examples", "launch_vm")
    p = subprocess.run([example, KVKIT, KERNEL, INITRD,
                        'console=ttyS0 quiet run="grep -c ^processor /proc/cpuinfo | sed s/^/CPUS=/; echo EXAMPLE-OK"'],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    assert "EXAMPLE-OK" in out and "CPUS=2" in out, out


@needs_kvm
def test_cloud_init_seed_disk_seen_by_guest(tmp_path):
    ud = tmp_path / "user-data"
    ud.write_bytes(b"#cloud-config\nhostname: kvkit-test\n" + os.urandom(16).hex().encode() + b"\n")
    md = tmp_path / "meta-data"
    md.write_text("instance-id: i-1\n")
    # a seed image left by a dead kvkit is removed at start
    seeddir = tmp_path / "tmp" / ("vfkit-cloudinit-%d" % os.getuid())
    seeddir.mkdir(parents=True, mode=0o700)
    stale = seeddir / "vfkit-cloudinit-999999-abcd.iso"
    stale.write_bytes(b"x")
    disk = tmp_path / "d.raw"
    disk.write_bytes(b"\0" * (1 << 20))
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    # the Joliet volume label (sector 17, UCS-2) is what blkid and cloud-init see
    run = ("dd if=/dev/vdb bs=1 skip=$((17*2048+40)) count=12 2>/dev/null | tr -d '\\000' | sed s/^/JOLIET=/; echo; mount -t iso9660 -o ro /dev/vdb /mnt && md5sum /mnt/user-data && "
           "ls /mnt | tr '\\n' ' ' | sed s/^/FILES=/; echo; wc -c < /mnt/network-config | sed s/^/NETCFG=/")
    p = subprocess.run(kvkit_cmd("--cloud-init", "%s,%s" % (ud, md), run=run,
                                 devices=["virtio-serial,stdio", "virtio-blk,path=%s" % disk]),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120, env=env)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    import hashlib
    assert hashlib.md5(ud.read_bytes()).hexdigest() + "  /mnt/user-data" in out, out
    assert "FILES=meta-data network-config user-data" in out, out
    assert "NETCFG=0" in out, out
    assert "JOLIET=cidata" in out, out
    assert not stale.exists()
    assert os.listdir(seeddir) == []  # ours is deleted at exit too


def test_cloud_init_errors(tmp_path):
    other = tmp_path / "vendor"
    other.write_text("x")
    for files, msg in [(str(tmp_path / "missing" / "user-data"), "failed to open cloud-init file"),
                       (str(other), "cloud-init needs user-data and meta-data files to work")]:
        p = subprocess.run([KVKIT, "--bootloader", "linux,kernel=%s" % KERNEL, "--cloud-init", files],
                           capture_output=True, timeout=30)
        assert p.returncode == 1
        assert msg in p.stderr.decode().splitlines()[-1], p.stderr
