"""virtio-net on unix stream sockets (type=unixstream, issue 25): QEMU's
length-prefixed framing, as passt and gvproxy -listen-qemu speak it. Two
guests talk through a Python relay that splits frames at every byte
boundary, merges several into one write and stalls for seconds; one guest
connects by path=, the other gets an inherited socket (fd=). A peer that
closes mid-transfer takes the guest's link down. The real passt from Debian
gives a guest its address, DNS, a download and a port forward."""
import ctypes
import hashlib
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

from conftest import kvkit_cmd, needs_kvm, wait_for_line
from test_net import GvproxyPeer, TokenHandler, loopback_servers


def frames_of(buf):
    """Whole frames at the front of buf (QEMU framing); returns (frames, rest)."""
    out = []
    while len(buf) >= 4:
        n = struct.unpack("!I", buf[:4])[0]
        assert n <= 65550, "a frame length no Ethernet frame has: %d" % n
        if len(buf) < 4 + n:
            break
        out.append(buf[4:4 + n])
        buf = buf[4 + n:]
    return out, buf


class NastyRelay(threading.Thread):
    """Carries frames between two stream peers the hard way: frame i of a
    direction is written in two parts split i bytes into its encoding (so
    over the first frames every boundary, header bytes included, falls
    between two reads of the VMM), later frames go eight to a write, and
    every STALL_EVERY bytes the relay stops for STALL seconds."""
    SPLIT_FRAMES, STALL_EVERY, STALL = 1600, 3 << 20, 2.0

    def __init__(self, listener, other):
        super().__init__(daemon=True)
        self.listener, self.other = listener, other
        self.sent = {}
        self.stalls, self.split, self.merged, self.error = 0, 0, 0, None

    def forward(self, dst, frames):
        enc = [struct.pack("!I", len(f)) + f for f in frames]
        i = 0
        while i < len(enc):
            k = self.sent.get(dst, 0)
            if k < self.SPLIT_FRAMES:
                cut = k % len(enc[i]) or 1
                dst.sendall(enc[i][:cut])
                time.sleep(0.002)
                dst.sendall(enc[i][cut:])
                self.split += 1
                i, k = i + 1, k + 1
            else:
                batch = enc[i:i + 8]
                dst.sendall(b"".join(batch))
                self.merged += len(batch) > 1
                i, k = i + len(batch), k + len(batch)
            before = self.sent.get(("bytes", dst), 0)
            after = before + sum(len(e) for e in enc[:i])
            self.sent[dst], self.sent[("bytes", dst)] = k, after
            if after // self.STALL_EVERY != before // self.STALL_EVERY:
                self.stalls += 1
                time.sleep(self.STALL)

    def run(self):
        try:
            self.listener.settimeout(300)
            a, _ = self.listener.accept()
            b = self.other
            bufs = {a: b"", b: b""}
            peer = {a: b, b: a}
            while True:
                r, _, _ = select.select([a, b], [], [], 600)
                for s in r:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        return
                    frames, bufs[s] = frames_of(bufs[s] + chunk)
                    self.forward(peer[s], frames)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e


@needs_kvm
def test_two_guests_through_a_relay_that_splits_merges_and_stalls(tmp_path):
    mib = 4 if os.environ.get("KVKIT_E2E_SAN") else 16
    path = str(tmp_path / "relay.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    vm_end, relay_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    relay = NastyRelay(listener, relay_end)
    relay.start()
    server = ("ip addr add 192.168.60.1/24 dev eth0; ip link set eth0 up; mkdir -p /www; "
              "dd if=/dev/urandom of=/www/blob bs=1M count=%d 2>/dev/null; md5sum /www/blob | sed s/^/SENT=/; " % mib +
              "httpd -p 8080 -h /www; echo SERVING; sleep 900")
    client = ("ip addr add 192.168.60.2/24 dev eth0; ip link set eth0 up; "
              "i=0; until ping -c 1 -W 1 192.168.60.1 >/dev/null; do i=$((i+1)); [ $i -gt 120 ] && break; done; "
              "ping -c 3 192.168.60.1 | grep transmitted | sed s/^/PING=/; "
              "until wget -q -O /dev/null http://192.168.60.1:8080/ 2>/dev/null || [ $i -gt 300 ]; do i=$((i+1)); sleep 0.5; done; "
              "wget -q -O - http://192.168.60.1:8080/blob | md5sum | sed s/^/GOT=/")
    pa = subprocess.Popen(kvkit_cmd(run=server, memory=768, devices=[
        "virtio-serial,stdio", "virtio-net,type=unixstream,path=%s" % path]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pb = subprocess.Popen(kvkit_cmd(run=client, devices=[
        "virtio-serial,stdio", "virtio-net,type=unixstream,fd=%d" % vm_end.fileno()]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=[vm_end.fileno()])
    vm_end.close()
    try:
        sent = wait_for_line(pa.stdout, "SERVING", timeout=240)
        out, err = pb.communicate(timeout=600)
        out = out.decode()
        assert pb.returncode == 0, err.decode()
        assert relay.error is None, relay.error
        assert "PING=3 packets transmitted, 3 packets received" in out, out
        want = re.search(r"SENT=([0-9a-f]{32})", sent).group(1)
        assert "GOT=" + want in out, (want, out)
        # the relay really did split, merge and stall
        assert relay.split >= NastyRelay.SPLIT_FRAMES, relay.split
        assert relay.merged > 0 and relay.stalls >= 1, (relay.merged, relay.stalls)
    finally:
        for p in (pa, pb):
            if p.poll() is None:
                p.kill()
                p.wait()
        listener.close()
        relay_end.close()
    assert "Using unix stream socket %s" % path in pa.stderr.read().decode()


class StreamPeer(GvproxyPeer):
    """GvproxyPeer's ARP and ICMP answers over QEMU's stream framing, on an
    accepted connection; close() ends it."""

    def __init__(self, path):
        threading.Thread.__init__(self, daemon=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.frames, self.conn, self.stop = [], None, False

    def run(self):
        self.conn, _ = self.listener.accept()
        buf = b""
        while not self.stop:
            try:
                chunk = self.conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            frames, buf = frames_of(buf + chunk)
            for f in frames:
                self.frames.append(f)
                reply = self.answer(f)
                if reply and not self.stop:
                    self.conn.sendall(struct.pack("!I", len(reply)) + reply)

    def close(self):
        self.stop = True
        self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()


@needs_kvm
def test_peer_closing_mid_transfer_takes_the_link_down(tmp_path):
    path = str(tmp_path / "peer.sock")
    peer = StreamPeer(path)
    peer.start()
    run = ("ip addr add 192.168.127.2/24 dev eth0; ip link set eth0 up; "
           "ping -c 2 -W 3 192.168.127.1 | grep transmitted | sed s/^/PING=/; "
           "cat /sys/class/net/eth0/carrier | sed s/^/CARRIER-BEFORE=/; "
           "ping -i 0.05 192.168.127.1 >/dev/null 2>&1 & echo FLOODING; "
           "i=0; while grep -q 1 /sys/class/net/eth0/carrier && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
           "cat /sys/class/net/eth0/carrier | sed s/^/CARRIER-AFTER=/; "
           "cat /sys/class/net/eth0/operstate | sed s/^/OPERSTATE=/; "
           "ping -c 1 -W 1 192.168.127.1 >/dev/null 2>&1 || echo UNREACHABLE")
    p = subprocess.Popen(kvkit_cmd(run=run, devices=["virtio-serial,stdio", "virtio-net,type=unixstream,path=%s" % path]),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = wait_for_line(p.stdout, "FLOODING", timeout=180)
        n = len(peer.frames)
        time.sleep(1)
        assert len(peer.frames) > n, "the guest's pings should still be flowing"
        peer.close()
        rest, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out += rest.decode()
    err = err.decode()
    assert p.returncode == 0, err
    assert "PING=2 packets transmitted, 2 packets received" in out, out
    assert "CARRIER-BEFORE=1" in out and "CARRIER-AFTER=0" in out, out
    assert "OPERSTATE=down" in out and "UNREACHABLE" in out, out
    # one line says why, the VM ran on to its end
    lines = [l for l in err.splitlines() if "the link is down" in l]
    assert len(lines) == 1 and "the peer closed the connection" in lines[0], err


def in_new_netns(fn):
    """fn() on a thread of its own in a fresh network namespace (the
    sockets it makes and the processes it starts live there too), so passt
    gets an uplink of its own and the host's network is left alone."""
    res = {}

    def body():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET, this thread only
            res["err"] = OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            return
        try:
            res["val"] = fn()
        except BaseException as e:  # noqa: BLE001 (re-raised below)
            res["err"] = e
    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "err" in res:
        raise res["err"]
    return res["val"]


def passt_run(tmp_path, inherit):
    """The guest on passt: DHCP, DNS through passt's forwarder to our
    resolver on the namespace's loopback, a download from a server there,
    and a port passt forwards to a server in the guest."""
    # the namespace's uplink, which passt copies its addresses from
    for c in ("ip link set lo up", "ip tuntap add dev kvp0 mode tap", "ip addr add 10.88.0.2/24 dev kvp0",
              "ip link set kvp0 up", "ip route add default via 10.88.0.1 dev kvp0 onlink"):
        subprocess.run(c.split(), check=True)
    mib = 16 if os.environ.get("KVKIT_E2E_SAN") else 64
    # a loopback resolver: passt tells the guest the gateway's address and
    # forwards what it sends there to port 53 on the host's loopback
    httpd, dns, resolv = loopback_servers(tmp_path, os.urandom(mib << 20))
    hport = 18080
    # passt drops root for nobody before it binds: its socket goes in a
    # directory nobody can reach (pytest's tmp_path is root's alone)
    sockdir = tempfile.mkdtemp(prefix="kvkit-passt-")
    os.chmod(sockdir, 0o777)
    sock = os.path.join(sockdir, "passt.sock")
    passt = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv),
             "passt", "-f", "-t", "%d:8080" % hport]
    fds = []
    if inherit:
        vm_end, passt_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        passt += ["-F", str(passt_end.fileno())]
        fds = [passt_end.fileno()]
        nic = "virtio-net,type=unixstream,fd=%d,mac=5a:94:ef:e4:0c:ef" % vm_end.fileno()
    else:
        passt += ["-s", sock]
        nic = "virtio-net,type=unixstream,path=%s,mac=5a:94:ef:e4:0c:ef" % sock
    passt_log = open(os.path.join(sockdir, "passt.log"), "w+b")  # a pipe nobody reads would stall it
    pp = subprocess.Popen(passt, stdin=subprocess.DEVNULL, stdout=passt_log, stderr=subprocess.STDOUT, pass_fds=fds)
    run = ("udhcpc -i eth0 -n -q -t 10 -T 1 2>&1 | sed s/^/UDHCPC:/; "
           "nslookup kvkit.test 2>&1 | sed s/^/NSLOOKUP:/; "
           "wget -q -O - http://10.88.0.1:%d/blob | md5sum | sed s/^/GOT=/; " % httpd.server_address[1] +
           "mkdir -p /www; echo guest-page-$RANDOM > /www/index.html; sed s/^/PAGE=/ /www/index.html; "
           "httpd -p 8080 -h /www; echo SERVING; sleep 600")
    p = None
    try:
        if inherit:
            passt_end.close()
        else:
            for _ in range(100):
                if os.path.exists(sock):
                    break
                time.sleep(0.1)
        p = subprocess.Popen(kvkit_cmd(run=run, memory=768, devices=["virtio-serial,stdio", nic]),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             pass_fds=[vm_end.fileno()] if inherit else [])
        if inherit:
            vm_end.close()
        try:
            out = wait_for_line(p.stdout, "SERVING", timeout=400)
        except AssertionError as e:
            out = str(e)
        if "DHCP-BOUND" not in out:  # say what passt and kvkit said
            p.kill()
            pp.kill()
            out += "\n--- kvkit:\n" + p.stderr.read().decode(errors="replace")[-3000:]
            passt_log.seek(0)
            out += "\n--- passt:\n" + passt_log.read().decode(errors="replace")[-3000:]
        assert "DHCP-BOUND ip=10.88.0.2 router=10.88.0.1 dns=10.88.0.1" in out, out
        assert re.search(r"NSLOOKUP:Address[ 0-9:]*192\.0\.2\.7", out), out
        assert "GOT=" + hashlib.md5(TokenHandler.token).hexdigest() in out, out
        page = re.search(r"PAGE=(guest-page-\d+)", out).group(1)
        got = ""
        for _ in range(50):  # passt's forward reaches the guest's server
            try:
                got = urllib.request.urlopen("http://127.0.0.1:%d/index.html" % hport, timeout=10).read().decode().strip()
                break
            except OSError:
                time.sleep(0.2)
        assert got == page, got
    finally:
        for q in (p, pp):
            if q is not None and q.poll() is None:
                q.kill()
                q.wait()
        httpd.shutdown()
        dns.close()
        passt_log.close()
        shutil.rmtree(sockdir, ignore_errors=True)


@needs_kvm
@pytest.mark.skipif(not shutil.which("passt"), reason="passt is not installed (scripts/setup.sh installs it)")
@pytest.mark.parametrize("inherit", [False, True], ids=["path", "fd"])
def test_passt_dhcp_dns_download_and_port_forward(tmp_path, inherit):
    in_new_netns(lambda: passt_run(tmp_path, inherit))


def test_stream_socket_errors(tmp_path):
    """Refused before the guest runs, with one line."""
    from conftest import KERNEL, KVKIT
    missing = str(tmp_path / "none.sock")
    dgram_a, dgram_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    cases = [
        ("virtio-net,type=unixstream,fd=%d" % dgram_a.fileno(),
         "Error: fd=%d is not a stream socket (type=unixstream)" % dgram_a.fileno()),
        ("virtio-net,type=unixstream,path=/" + "a" * 200,
         "Error: unixstream path '/%s' is too long: 201 >= 108 bytes" % ("a" * 200)),
        ("virtio-net,type=unixstream,path=/x,vfkitMagic=on",
         "Error: 'vfkitMagic=on' is for unixgram sockets, not type=unixstream"),
        ("virtio-net,type=unixstream", "Error: 'type' option requires 'path' to be specified"),
    ]
    if os.path.exists("/dev/kvm"):  # found when the device is opened
        cases.append(("virtio-net,type=unixstream,path=" + missing,
                      "Error: cannot connect to unixstream socket %s: No such file or directory" % missing))
    for dev, want in cases:
        p = subprocess.run([KVKIT, "--bootloader", "linux,kernel=%s" % KERNEL, "--device", dev], capture_output=True,
                           pass_fds=[dgram_a.fileno()], timeout=60)
        lines = p.stderr.decode().strip().splitlines()
        assert p.returncode == 1, (dev, p.stderr)
        assert lines[-1] == want, (dev, lines)
    dgram_a.close()
    dgram_b.close()
