"""REST API end to end (spec section 4, issue 7): real guests driven through
--restful-uri over a unix socket and TCP, the way podman and minikube do."""
import errno
import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import KERNEL, INITRD, KVKIT, kvkit_cmd, needs_kvm, wait_for_line


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Api:
    def __init__(self, unix=None, port=None):
        self.unix, self.port = unix, port

    def conn(self):
        if self.unix:
            return UnixHTTPConnection(self.unix)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, method, path, body=None):
        c = self.conn()
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, r.read().decode(), r.getheader("Content-Type")
        finally:
            c.close()

    def state(self):
        st, body, _ = self.request("GET", "/vm/state")
        assert st == 200, body
        return json.loads(body)["state"]

    def post(self, state):
        return self.request("POST", "/vm/state", json.dumps({"state": state}))

    def refused(self):
        """True once connecting fails the way clients treat as 'stopped'."""
        try:
            self.request("GET", "/vm/state")
            return False
        except OSError as e:
            # a unix socket file is removed at exit (spec 3.4): ENOENT after that
            return e.errno in (errno.ECONNREFUSED, errno.ENOENT)


class Lines:
    """Collects a process's stdout lines on a thread."""

    def __init__(self, stream):
        self.lines = []
        self.t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.t.start()

    def _run(self, stream):
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode(errors="replace").strip())

    def ticks(self):
        return [int(l.split("-")[1]) for l in self.lines if re.fullmatch(r"TICK-\d+", l)]

    def wait(self, pred, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return
            time.sleep(0.1)
        raise AssertionError("timed out; output so far:\n" + "\n".join(self.lines[-30:]))


TICKER = "acpid -d & i=0; while true; do echo TICK-$i; i=$((i+1)); sleep 0.2; done"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


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
    p = subprocess.run([KVKIT, "--config", str(path), "--cpus", "2", "--device", "virtio-rng"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
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
