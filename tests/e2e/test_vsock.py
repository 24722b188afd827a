"""virtio-vsock end to end: a real guest with socat (built with vsock
support, from the host's Debian package, on a tools disk) talks to unix
sockets on the host through kvkit's userspace device. One guest runs every
stream scenario (both directions, 50 at once, peers that quit halfway, a
missing socket, podman's ready signal, Ignition, the mux socket); a second
guest runs qemu-guest-agent for --timesync."""
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, kvkit_cmd, needs_kvm

sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))
from guest_tools import GUEST_RUN, tools_disk  # noqa: E402

pytestmark = needs_kvm
SAN = os.environ.get("KVKIT_E2E_SAN") == "1"
BIG = (16 if SAN else 64) << 20
HWCLOCK = "#!%(bb)s sh\n# the test guest has no RTC to write: qemu-ga runs this after setting the clock\nexit 0\n"


def have_tools():
    return all(os.path.exists(p) for p in ("/usr/bin/socat", "/usr/sbin/qemu-ga", "/bin/busybox"))


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    if not have_tools():
        pytest.fail("socat, qemu-guest-agent and busybox-static must be installed (scripts/setup.sh)")
    d = tmp_path_factory.mktemp("vsock-tools")
    img = str(d / "tools.img")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    # explicit paths: busybox's chroot would run its own date applet
    paths = {"bb": shutil.which("busybox"), "date": shutil.which("date"), "big": BIG}
    tools_disk(img, ["socat", "qemu-ga", "date", "busybox"], "", str(d), size="96M",
               extra={"/sbin/hwclock": HWCLOCK % paths, "/streams.sh": GUEST_STREAMS % paths,
                      "/timesync.sh": GUEST_TIMESYNC % paths})
    return img


def guest_run(script):
    """The kernel command line only mounts the tools disk and starts a script on it."""
    return GUEST_RUN.replace("/dev/%s", "/dev/vda").replace("sh /t/run.sh", "sh /t/" + script)


class Server:
    """A unix stream listener on the host; handler(conn) runs per connection."""

    def __init__(self, path, handler):
        self.path = path
        self.results = []
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.bind(path)
        self.s.listen(128)
        self.handler = handler
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            self.results.append(self.handler(c))
        except OSError as e:
            self.results.append(("error", str(e)))
        finally:
            c.close()


def echo(c):
    """Echo with reading and writing decoupled: a client that writes
    everything before it reads (socat) must never wait for this side."""
    import queue
    q, h, n = queue.Queue(), hashlib.sha256(), [0]

    def reader():
        while True:
            b = c.recv(1 << 16)
            q.put(b)
            if not b:
                return
            h.update(b)
            n[0] += len(b)

    threading.Thread(target=reader, daemon=True).start()
    while True:
        b = q.get()
        if not b:
            break
        c.sendall(b)
    c.shutdown(socket.SHUT_WR)
    return ("echo", n[0], h.hexdigest())


def close_after_1mib(c):
    n = 0
    while n < (1 << 20):
        b = c.recv(1 << 16)
        if not b:
            break
        n += len(b)
    return ("closed", n)


def sink(c):
    data = b""
    while True:
        b = c.recv(1 << 16)
        if not b:
            return ("sink", data)
        data += b


def host_echo(path, size, port=None, chunk=1 << 16, timeout=120):
    """Send size random bytes through a host->guest connection whose far
    end echoes; returns (sent sha256, received sha256, received bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    if port is not None:  # the mux protocol
        s.sendall(b"CONNECT %d\n" % port)
        line = b""
        while not line.endswith(b"\n"):
            line += s.recv(1)
        assert re.match(rb"OK \d+\n$", line), line
    data = os.urandom(size)
    got = hashlib.sha256()
    n = [0]

    def reader():
        while True:
            b = s.recv(1 << 16)
            if not b:
                return
            got.update(b)
            n[0] += len(b)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(0, size, chunk):
        s.sendall(data[i:i + chunk])
    s.shutdown(socket.SHUT_WR)
    t.join(timeout)
    s.close()
    return hashlib.sha256(data).hexdigest(), got.hexdigest(), n[0]


class Console:
    def __init__(self, p):
        self.lines = []
        self.p = p
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        for raw in self.p.stdout:
            self.lines.append((time.time(), raw.decode(errors="replace").rstrip("\r\n")))

    def wait(self, prefix, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if line.startswith(prefix):
                    return t, line
            if self.p.poll() is not None and not any(line.startswith(prefix) for _, line in self.lines):
                time.sleep(0.5)
                break
            time.sleep(0.05)
        raise AssertionError("guest never printed %r; console:\n%s" % (prefix, "\n".join(l for _, l in self.lines)))

    def text(self):
        return "\n".join(l for _, l in self.lines)


GUEST_STREAMS = r"""S="chroot /t socat"
# -b 4096: socat writes at most PIPE_BUF into its own echo pipe, or it can
# block on the pipe only it drains (select promises just PIPE_BUF free)
$S -t 30 -b 4096 VSOCK-LISTEN:6000,fork,reuseaddr,backlog=64 PIPE &
$S -u VSOCK-LISTEN:6001,fork,reuseaddr,readbytes=1048576 OPEN:/dev/null &
$S -u VSOCK-LISTEN:6999 - > /dev/null & done_pid=$!
sleep 3; echo GUEST-READY  # socat is slow to start in the nested rig
echo Ready | $S - VSOCK-CONNECT:2:1025; echo "READY-SENT rc=$?"
head -c %(big)d /dev/urandom > /tmp/g.bin
echo "G2H-SRC $(sha256sum < /tmp/g.bin)"
echo "G2H-ECHO $($S -t 30 - VSOCK-CONNECT:2:5000 < /tmp/g.bin | sha256sum)"
rm /tmp/g.bin
pids=""; for i in $(seq 1 50); do (echo "hello $i" | $S -t 60 - VSOCK-CONNECT:2:5000 > /tmp/c$i.out 2>&1) & pids="$pids $!"; done
wait $pids; ok=0; for i in $(seq 1 50); do grep -qx "hello $i" /tmp/c$i.out && ok=$((ok+1)) || echo "G2H-LOST $i: $(head -c 200 /tmp/c$i.out | tr '\n' ' ')"; done
echo "G2H-CONCURRENT $ok"
head -c 16777216 /dev/zero | timeout 60 $S -t 5 - VSOCK-CONNECT:2:5001 2>/dev/null; echo "G2H-HALFWAY rc=$?"
timeout 20 $S - VSOCK-CONNECT:2:5002 </dev/null 2>/tmp/miss.err; echo "G2H-MISSING rc=$? $(cat /tmp/miss.err)"
timeout 20 $S - VSOCK-CONNECT:2:5999 </dev/null 2>/tmp/none.err; echo "G2H-NOENTRY rc=$? $(cat /tmp/none.err)"
echo "G2H-AFTER $(echo still-alive | $S -t 10 - VSOCK-CONNECT:2:5000)"
echo "MUX-G2H $(echo via-mux | $S -t 10 - VSOCK-CONNECT:2:7000)"
printf 'GET http://d/ HTTP/1.1\r\nHost: d\r\nAccept: application/json\r\n\r\n' > /tmp/req
printf 'HEAD /any/path HTTP/1.1\r\nHost: d\r\n\r\n' >> /tmp/req
printf 'GET /r HTTP/1.1\r\nHost: d\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n' >> /tmp/req
$S -t 10 - VSOCK-CONNECT:2:1024,shut-none < /tmp/req > /tmp/ign.out; echo "IGN-FETCHED rc=$?"
$S -u - VSOCK-CONNECT:2:5003 < /tmp/ign.out; echo "IGN-SENT rc=$?"
echo GUEST-TESTS-DONE
wait $done_pid; echo GUEST-ALL-DONE
"""


@pytest.fixture(scope="module")
def streams(tools, tmp_path_factory):
    d = tmp_path_factory.mktemp("vsock")
    p = lambda n: str(d / n)  # noqa: E731
    servers = {
        "echo": Server(p("echo.sock"), echo),
        "halfway": Server(p("half.sock"), close_after_1mib),
        "ready": Server(p("ready.sock"), sink),
        "ign": Server(p("ign.sock"), sink),
        "mux7000": Server(p("mux.sock") + "_7000", echo),
    }
    ign = os.urandom(48 << 10).hex().encode()  # a 96 KiB "config"
    with open(p("config.ign"), "wb") as f:
        f.write(ign)
    devices = ["virtio-serial,stdio", "virtio-blk,path=%s,readonly" % tools,
               "virtio-vsock,port=5000,socketURL=%s,listen" % p("echo.sock"),
               "virtio-vsock,port=5001,socketURL=%s,listen" % p("half.sock"),
               "virtio-vsock,port=5002,socketURL=%s,listen" % p("nobody-here.sock"),
               "virtio-vsock,port=1025,socketURL=%s,listen" % p("ready.sock"),
               "virtio-vsock,port=5003,socketURL=%s,listen" % p("ign.sock"),
               "virtio-vsock,port=6000,socketURL=%s,connect" % p("g6000.sock"),
               "virtio-vsock,port=6001,socketURL=%s,connect" % p("g6001.sock"),
               "virtio-vsock,port=6999,socketURL=%s,connect" % p("done.sock"),
               "virtio-vsock,socketURL=%s,mux" % p("mux.sock")]
    cmd = kvkit_cmd("--ignition", p("config.ign"), "--log-level", "debug", memory=1024, run=guest_run("streams.sh"),
                    devices=devices)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    con = Console(proc)
    res = {"ign": ign, "con": con, "servers": servers, "dir": d}
    try:
        con.wait("GUEST-READY")
        # kvkit created the connect-mode sockets before the guest ran
        res["sockets_made"] = all(os.path.exists(p(n)) for n in ("g6000.sock", "g6001.sock", "done.sock", "mux.sock"))
        res["h2g_big"] = host_echo(p("g6000.sock"), BIG)
        out = {}

        def one(i):
            out[i] = host_echo(p("g6000.sock"), 64 << 10, timeout=60)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(90)
        res["h2g_concurrent"] = out
        # the guest reads 1 MiB and quits: the host's sender must fail, not hang
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(p("g6001.sock"))
        t0 = time.monotonic()
        try:
            s.sendall(b"\0" * (16 << 20))
            s.shutdown(socket.SHUT_WR)
            res["h2g_halfway"] = ("eof", s.recv(10), time.monotonic() - t0)
        except OSError as e:
            res["h2g_halfway"] = ("error", type(e).__name__, time.monotonic() - t0)
        s.close()
        res["mux_h2g"] = host_echo(p("mux.sock"), 1 << 20, port=6000)
        con.wait("GUEST-TESTS-DONE", timeout=300)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(p("done.sock"))
        s.sendall(b"done\n")
        s.close()
        con.wait("GUEST-ALL-DONE", timeout=60)
        res["rc"] = proc.wait(timeout=60)
    except Exception as e:
        # stop kvkit the way a user would: at exit it logs (debug) what each
        # vsock connection was waiting for
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
        dump = "\n".join(l for l in err.splitlines() if "vsock" in l)
        raise AssertionError("%s\nkvkit's vsock log:\n%s\nconsole:\n%s" % (e, dump[-6000:], con.text())) from e
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        res["stderr"] = proc.stderr.read().decode(errors="replace")
    res["left"] = [n for n in ("g6000.sock", "g6001.sock", "done.sock", "mux.sock") if os.path.exists(p(n))]
    return res


def field(res, prefix):
    return res["con"].wait(prefix, timeout=1)[1][len(prefix):].strip()


def test_vsock_guest_to_host_echo_64mib(streams):
    src = field(streams, "G2H-SRC").split()[0]
    echoed = field(streams, "G2H-ECHO").split()[0]
    big = [r for r in streams["servers"]["echo"].results if r[0] == "echo" and r[1] == BIG]
    assert big, streams["servers"]["echo"].results[:3]
    assert src == echoed == big[0][2]


def test_vsock_host_to_guest_echo_64mib(streams):
    sent, got, n = streams["h2g_big"]
    assert n == BIG and sent == got


def test_vsock_50_concurrent_connections_both_ways(streams):
    lost = [line for _, line in streams["con"].lines if line.startswith("G2H-LOST")]
    assert field(streams, "G2H-CONCURRENT") == "50", lost
    out = streams["h2g_concurrent"]
    assert len(out) == 50
    assert all(sent == got and n == 64 << 10 for sent, got, n in out.values())


def test_vsock_peer_closing_halfway_resets_the_other_side(streams):
    # guest -> host: the host server takes 1 MiB and closes; socat fails
    m = re.match(r"rc=(\d+)", field(streams, "G2H-HALFWAY"))
    assert m and m.group(1) not in ("0", "124", "143"), field(streams, "G2H-HALFWAY")
    assert any(r[0] == "closed" for r in streams["servers"]["halfway"].results)
    # host -> guest: the guest reads 1 MiB and quits; the host sees an error or EOF quickly
    kind, _, secs = streams["h2g_halfway"]
    assert secs < 30
    # and the device still works afterwards
    assert field(streams, "G2H-AFTER") == "still-alive"


def test_vsock_missing_host_socket_resets_the_guest(streams):
    for key in ("G2H-MISSING", "G2H-NOENTRY"):
        v = field(streams, key)
        assert re.match(r"rc=1\b", v), v
        assert "reset" in v.lower() or "refused" in v.lower(), v
    assert "nobody-here.sock" in streams["stderr"]  # one warning names the socket


def test_podman_ready_signal(streams):
    assert field(streams, "READY-SENT") == "rc=0"
    assert ("sink", b"Ready\n") in streams["servers"]["ready"].results


def test_ignition_served_over_vsock_1024(streams):
    assert field(streams, "IGN-FETCHED") == "rc=0"
    raw = [r[1] for r in streams["servers"]["ign"].results if r[0] == "sink"][0]
    ign = streams["ign"]
    # three pipelined requests on one keep-alive connection: GET, HEAD, Range
    head1, rest = raw.split(b"\r\n\r\n", 1)
    assert head1.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: %d" % len(ign) in head1
    assert rest[:len(ign)] == ign
    rest = rest[len(ign):]
    head2, rest = rest.split(b"\r\n\r\n", 1)
    assert head2.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % len(ign) in head2
    head3, body3 = rest.split(b"\r\n\r\n", 1)
    assert head3.startswith(b"HTTP/1.1 206") and b"Content-Range: bytes 10-19/%d" % len(ign) in head3
    assert body3 == ign[10:20]


def test_vsock_mux_socket_both_ways(streams):
    sent, got, n = streams["mux_h2g"]
    assert n == 1 << 20 and sent == got
    assert field(streams, "MUX-G2H") == "via-mux"


def test_vsock_sockets_created_and_removed(streams):
    assert streams["sockets_made"]
    assert streams["rc"] == 0, streams["stderr"][-2000:]
    assert streams["left"] == []


def test_vsock_bad_entries_refused(tmp_path):
    cases = [
        (["--device", "virtio-vsock,port=1024,socketURL=%s/x,listen" % tmp_path, "--ignition", __file__],
         "vsock port 1024 is used by --ignition"),
        (["--device", "virtio-vsock,port=5,socketURL=%s/a,connect" % tmp_path,
          "--device", "virtio-vsock,port=5,socketURL=%s/b,connect" % tmp_path], "port 5 is given twice"),
        (["--device", "virtio-vsock,port=5,socketURL=/%s,connect" % ("x" * 120)], "exceeds 107 bytes"),
        (["--ignition", str(tmp_path / "missing.ign")], "failed to add ignition file"),
    ]
    (tmp_path / "file").write_text("not a socket")
    cases.append((["--device", "virtio-vsock,port=5,socketURL=%s,connect" % (tmp_path / "file")], "not a socket"))
    for args, msg in cases:
        p = subprocess.run(kvkit_cmd(*args, run="true"), capture_output=True, timeout=30)
        assert p.returncode == 1 and msg in p.stderr.decode(), (args, p.stderr.decode())
        assert p.stderr.decode().count("\n") <= 3
    assert (tmp_path / "file").read_text() == "not a socket"


GUEST_TIMESYNC = r"""T="chroot /t"
$T date -s @1000000000 > /dev/null; echo "CLOCK-WRONG-1 $($T date +%%s)"
$T qemu-ga -m vsock-listen -p 3:1234 -t /tmp -l /tmp/qga.log &
i=0; while [ "$($T date +%%Y)" -lt 2020 ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done
echo "SYNC1 $($T %(date)s +%%s.%%N)"
$T date -s @1000000000 > /dev/null; echo "CLOCK-WRONG-2 $($T date +%%s)"
i=0; while [ "$($T date +%%Y)" -lt 2020 ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done
echo "SYNC2 $($T %(date)s +%%s.%%N)"
cat /t/tmp/qga.log | tail -3
"""


def test_timesync_with_qemu_guest_agent(tools, tmp_path):
    sock = str(tmp_path / "api.sock")
    cmd = kvkit_cmd("--timesync", "vsockPort=1234", "--restful-uri", "unix://" + sock, memory=512,
                    run=guest_run("timesync.sh"),
                    devices=["virtio-serial,stdio", "virtio-blk,path=%s,readonly" % tools])
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    con = Console(proc)
    try:
        con.wait("CLOCK-WRONG-1")
        # boot trigger: kvkit syncs once the agent first answers
        t, line = con.wait("SYNC1", timeout=120)
        assert abs(float(line.split()[1]) - t) < 1.0, con.text()
        con.wait("CLOCK-WRONG-2")
        # REST Resume is a trigger too
        for state in ("Pause", "Resume"):
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", sock,
                                "-d", '{"state":"%s"}' % state, "http://localhost/vm/state"],
                               capture_output=True, text=True, timeout=10)
            assert r.stdout == "202"
        t, line = con.wait("SYNC2", timeout=90)
        assert abs(float(line.split()[1]) - t) < 1.0, con.text()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode(errors="replace")
    assert err.count("timesync: guest clock set through vsock port 1234") >= 2, err
