"""virtio-net end to end (issue 4): real guests on each backend. A python
peer plays gvproxy on the unixgram protocol; two guests share a socketpair
through fd=; the nat network reaches servers on the host's loopback and
serves the host through a port forward; a tap device in a network namespace
the test creates."""
import contextlib
import hashlib
import http.server
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

from conftest import KERNEL, KVKIT, kvkit_cmd, needs_kvm, wait_for_line

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "lib"))
from guest_tools import tools_disk  # noqa: E402

MAC = "5a:94:ef:e4:0c:ee"


def macb(s):
    return bytes(int(x, 16) for x in s.split(":"))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


class GvproxyPeer(threading.Thread):
    """The server side of gvproxy's vfkit protocol: checks the VFKT hello,
    then answers ARP for 192.168.127.1 and ICMP echo, and records frames."""
    IP = bytes([192, 168, 127, 1])
    HWADDR = bytes.fromhex("5a94efe40001")

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.5)
        self.hello, self.peer, self.frames, self.stop = None, None, [], False

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if self.hello is None:
                self.hello, self.peer = data, addr
                continue
            self.frames.append(data)
            reply = self.answer(data)
            if reply:
                self.sock.sendto(reply, addr)

    def answer(self, f):
        src, etype = f[6:12], struct.unpack("!H", f[12:14])[0]
        if etype == 0x0806 and f[20:22] == b"\0\1" and f[38:42] == self.IP:  # ARP request for us
            return (src + self.HWADDR + b"\x08\x06" + f[14:20] + b"\0\2" + self.HWADDR + self.IP + f[22:28] + f[28:32])
        if etype == 0x0800 and f[23] == 1 and f[14 + (f[14] & 15) * 4] == 8:  # ICMP echo request
            ihl = (f[14] & 15) * 4
            ip, icmp = bytearray(f[14:14 + ihl]), bytearray(f[14 + ihl:])
            ip[12:16], ip[16:20] = f[30:34], f[26:30]
            ip[10:12] = b"\0\0"
            ip[10:12] = struct.pack("!H", csum(bytes(ip)))
            icmp[0] = 0
            icmp[2:4] = b"\0\0"
            icmp[2:4] = struct.pack("!H", csum(bytes(icmp)))
            return src + self.HWADDR + b"\x08\x00" + bytes(ip) + bytes(icmp)
        return None


@needs_kvm
def test_unixgram_gvproxy_peer_hello_arp_icmp_and_mtu_4000(tmp_path):
    path = str(tmp_path / "gvproxy.sock")
    peer = GvproxyPeer(path)
    peer.start()
    run = ("ip addr add 192.168.127.2/24 dev eth0; ip link set eth0 mtu 4000 up; "
           "ping -c 3 -W 3 192.168.127.1 | grep transmitted | sed s/^/PING=/; "
           "ping -c 2 -W 3 -s 3972 192.168.127.1 | grep transmitted | sed s/^/BIGPING=/")
    try:
        p = subprocess.run(kvkit_cmd("--log-level", "debug", run=run, devices=[
            "virtio-serial,stdio", "virtio-net,unixSocketPath=%s,mac=%s" % (path, MAC)]),
            stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    finally:
        peer.stop = True
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, err
    assert peer.hello == b"VFKT"
    # the client bound a name next to the server's, removed at exit
    assert re.fullmatch(r"vfkit-[0-9a-f]+-[0-9a-f]+\.sock", os.path.basename(peer.peer)), peer.peer
    assert os.path.dirname(peer.peer) == str(tmp_path)
    assert not os.path.exists(peer.peer)
    assert "Using unix socket %s" % path in err and "sent vfkit magic packet (VFKT)" in err
    assert "Adding virtio-net device (nat: false macAddress: [%s])" % MAC in err
    assert "PING=3 packets transmitted, 3 packets received" in out, out
    assert "BIGPING=2 packets transmitted, 2 packets received" in out, out
    # the guest's MAC is honoured, frames carry no virtio header, and a
    # full 4014-byte frame (MTU 4000) crossed both ways
    assert all(f[6:12] == macb(MAC) for f in peer.frames)
    assert max(len(f) for f in peer.frames) == 4014


@needs_kvm
def test_unixgram_without_magic(tmp_path):
    path = str(tmp_path / "vmnet.sock")
    peer = GvproxyPeer(path)
    peer.start()
    try:
        p = subprocess.run(kvkit_cmd(run="ip link set eth0 up; ip addr add 192.168.127.2/24 dev eth0; "
                                         "ping -c 1 -W 3 192.168.127.1 >/dev/null && echo PONG", devices=[
            "virtio-serial,stdio", "virtio-net,type=unixgram,path=%s,vfkitMagic=off" % path]),
            stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    finally:
        peer.stop = True
    assert p.returncode == 0, p.stderr.decode()
    assert peer.hello is not None and peer.hello != b"VFKT"  # the first datagram is already a frame
    assert "PONG" in p.stdout.decode()


@needs_kvm
def test_two_guests_on_a_socketpair_ping_and_move_100mib(tmp_path):
    # 100 MiB; 16 MiB with the sanitizer build (two ASan VMMs in the nested
    # rig move ~10x slower): the same code path, a size that fits the timeout
    mib = 16 if os.environ.get("KVKIT_E2E_SAN") else 100
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    server = ("ip addr add 192.168.50.1/24 dev eth0; ip link set eth0 up; mkdir -p /www; "
              "dd if=/dev/urandom of=/www/blob bs=1M count=%d 2>/dev/null; md5sum /www/blob | sed s/^/SENT=/; " % mib +
              "httpd -p 8080 -h /www; echo SERVING; sleep 600")
    client = ("ip addr add 192.168.50.2/24 dev eth0; ip link set eth0 up; "
              "i=0; until ping -c 1 -W 1 192.168.50.1 >/dev/null; do i=$((i+1)); [ $i -gt 120 ] && break; done; "
              "ping -c 3 192.168.50.1 | grep transmitted | sed s/^/PING=/; "
              "until wget -q -O /dev/null http://192.168.50.1:8080/ 2>/dev/null || [ $i -gt 300 ]; do i=$((i+1)); sleep 0.5; done; "
              "wget -q -O - http://192.168.50.1:8080/blob | md5sum | sed s/^/GOT=/")
    pa = subprocess.Popen(kvkit_cmd(run=server, memory=768, devices=["virtio-serial,stdio", "virtio-net,fd=%d" % a.fileno()]),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=[a.fileno()])
    pb = subprocess.Popen(kvkit_cmd(run=client, devices=["virtio-serial,stdio", "virtio-net,fd=%d" % b.fileno()]),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=[b.fileno()])
    a.close()
    b.close()
    try:
        sent = wait_for_line(pa.stdout, "SERVING", timeout=180)
        out, err = pb.communicate(timeout=300)
        out = out.decode()
        assert pb.returncode == 0, err.decode()
        assert "PING=3 packets transmitted, 3 packets received" in out, out
        want = re.search(r"SENT=([0-9a-f]{32})", sent).group(1)
        assert "GOT=" + want in out, (want, out)
    finally:
        for p in (pa, pb):
            if p.poll() is None:
                p.kill()


class TokenHandler(http.server.BaseHTTPRequestHandler):
    token = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.token)))
        self.end_headers()
        self.wfile.write(self.token)

    def log_message(self, *a):
        pass


def dns_server(sock, name, addr):
    """Answers A queries for one name (NXDOMAIN otherwise) until closed."""
    while True:
        try:
            q, peer = sock.recvfrom(512)
        except OSError:
            return
        labels, i = [], 12
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode())
            i += 1 + q[i]
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
        question = q[12:i + 5]
        hit = ".".join(labels).lower() == name and qtype == 1
        hdr = q[:2] + struct.pack("!HHHHH", 0x8180 if hit else 0x8183, 1, 1 if hit else 0, 0, 0)
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr) if hit else b""
        sock.sendto(hdr + question + ans, peer)


def loopback_servers(tmp_path, body):
    """On 127.0.0.1: an HTTP server answering any path with body (the
    TokenHandler's token) and a DNS server answering kvkit.test with
    192.0.2.7; and a resolv.conf naming that DNS server, for a mount
    namespace. Returns (httpd, dns socket, resolv.conf path)."""
    TokenHandler.token = body
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    threading.Thread(target=dns_server, args=(dns, "kvkit.test", "192.0.2.7"), daemon=True).start()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    return httpd, dns, resolv


@needs_kvm
def test_nat_dhcp_outbound_tcp_dns_and_port_forward(tmp_path):
    # a server on the host's loopback, reached through the gateway 10.0.2.2
    # by a NIC with hostLoopback only
    # the host resolver the nat DNS forwards to: a DNS server of ours on
    # 127.0.0.1, seen through a private /etc/resolv.conf (mount namespace)
    httpd, dns, resolv = loopback_servers(tmp_path, os.urandom(8).hex().encode())
    fwd = socket.socket()
    fwd.bind(("127.0.0.1", 0))
    hport = fwd.getsockname()[1]
    fwd.close()
    # eth0: plain nat, where the host's loopback is off limits (the default);
    # then eth1 with hostLoopback, where the same server answers
    run = ("udhcpc -i eth0 -n -q -t 10 -T 1 2>/dev/null | grep DHCP-BOUND; "
           "wget -q -T 5 -O - http://10.0.2.2:%d/ >/dev/null 2>&1 && echo LOOPBACK-OPEN || echo LOOPBACK-CLOSED; "
           "ip link set eth0 down; ip addr flush dev eth0; "
           "udhcpc -i eth1 -n -q -t 10 -T 1 2>/dev/null | grep DHCP-BOUND; "
           "wget -q -O - http://10.0.2.2:%d/ | sed s/^/TOKEN=/; echo; "
           "nslookup kvkit.test 2>&1 | grep -A1 kvkit.test | grep -o 'Address[ 0-9:]*192.0.2.7' | sed s/^/DNS=/; "
           "mkdir -p /www; echo guest-page-$RANDOM > /www/index.html; cat /www/index.html | sed s/^/PAGE=/; "
           "httpd -p 8080 -h /www; echo SERVING; sleep 600") % (httpd.server_address[1], httpd.server_address[1])
    cmd = kvkit_cmd(run=run, devices=["virtio-serial,stdio", "virtio-net,nat",
                                      "virtio-net,nat,hostLoopback,forward=tcp:127.0.0.1:%d:8080" % hport])
    p = subprocess.Popen(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv)] + cmd,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = wait_for_line(p.stdout, "SERVING", timeout=180)
        assert "DHCP-BOUND ip=10.0.2.15 router=10.0.2.2 dns=10.0.2.3" in out, out
        assert "LOOPBACK-CLOSED" in out, out
        assert "TOKEN=" + TokenHandler.token.decode() in out, out
        assert "DNS=" in out, out
        page = re.search(r"PAGE=(guest-page-\d+)", out).group(1)
        # the host reaches the guest's web server through the forward
        import urllib.request
        got = ""
        for _ in range(50):
            try:
                got = urllib.request.urlopen("http://127.0.0.1:%d/index.html" % hport, timeout=10).read().decode().strip()
                break
            except OSError:
                time.sleep(0.2)
        assert got == page, got
    finally:
        p.kill()
        p.wait()
        httpd.shutdown()
        dns.close()


@contextlib.contextmanager
def tap_namespace(tmp_path, size, multi_queue=False):
    """A network namespace with a tap kvtap0 at 10.9.0.1/24 (multiqueue if
    asked) and an HTTP server there serving a random blob: yields (exec
    prefix, sha256)."""
    ns = "kvkit-test-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    www = tmp_path / "www"
    www.mkdir()
    blob = os.urandom(size)
    (www / "blob").write_bytes(blob)
    srv = None
    try:
        ex = ["ip", "netns", "exec", ns]
        subprocess.run(ex + ["ip", "tuntap", "add", "dev", "kvtap0", "mode", "tap"] +
                       (["multi_queue"] if multi_queue else []), check=True)
        subprocess.run(ex + ["ip", "addr", "add", "10.9.0.1/24", "dev", "kvtap0"], check=True)
        subprocess.run(ex + ["ip", "link", "set", "kvtap0", "up"], check=True)
        subprocess.run(ex + ["ip", "link", "set", "lo", "up"], check=True)
        srv = subprocess.Popen(ex + ["python3", "-m", "http.server", "-b", "10.9.0.1", "-d", str(www), "8000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield ex, hashlib.sha256(blob).hexdigest()
    finally:
        if srv:
            srv.kill()
        subprocess.run(["ip", "netns", "del", ns])


def run_until(cmd, marker, timeout):
    """Run kvkit until the guest prints marker, then stop it: (stdout so
    far, all of stderr, which has kvkit's lines from its exit too)."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = wait_for_line(p.stdout, marker, timeout=timeout)
    finally:
        p.terminate()
        err = p.communicate(timeout=60)[1].decode(errors="replace")
    return out, err


TAP_GUEST_UP = ("ip addr add 10.9.0.2/24 dev eth0; ip link set eth0 up; "
                "for d in /sys/bus/virtio/devices/*; do [ $(cat $d/device) = 0x0001 ] && echo FEATURES=$(cat $d/features); done; "
                "ping -c 2 -W 3 10.9.0.1 | grep transmitted | sed s/^/PING=/; ")


@needs_kvm
def test_tap_reaches_a_network_namespace_with_offloads(tmp_path):
    """tap carries the virtio-net header: the guest negotiates checksum and
    TSO offloads, and 32 MiB cross both ways intact (TSO frames of up to
    64 KiB, partial checksums finished by the host kernel)."""
    with tap_namespace(tmp_path, 32 << 20) as (ex, want):
        run = (TAP_GUEST_UP +
               "wget -q -O - http://10.9.0.1:8000/blob | sha256sum | sed s/^/H2G=/; "
               "wget -q -O /tmp/blob http://10.9.0.1:8000/blob; mkdir -p /tmp/www; mv /tmp/blob /tmp/www/; "
               "httpd -p 8080 -h /tmp/www; echo GUEST-SERVING; sleep 60")
        p = subprocess.Popen(ex + kvkit_cmd(run=run, memory=1024, devices=["virtio-serial,stdio",
                                                                           "virtio-net,tap=kvtap0,offloading=on"]),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out = wait_for_line(p.stdout, "GUEST-SERVING", timeout=180)
            g2h = subprocess.run(ex + ["curl", "-s", "--max-time", "120", "http://10.9.0.2:8080/blob"],
                                 capture_output=True, timeout=150).stdout
        finally:
            p.kill()
            p.wait()
        assert "PING=2 packets transmitted, 2 packets received" in out, out
        feats = re.search(r"FEATURES=([01]+)", out).group(1)
        # CSUM, GUEST_CSUM, GUEST_TSO4, HOST_TSO4 negotiated
        assert all(feats[b] == "1" for b in (0, 1, 7, 11)), feats
        assert "H2G=" + want in out, out
        assert len(g2h) == 32 << 20 and hashlib.sha256(g2h).hexdigest() == want


@needs_kvm
def test_tap_with_offloading_off(tmp_path):
    """offloading=off (krunkit's option): the same tap, no offload offered,
    and a download still arrives intact, in frames the guest checksummed."""
    with tap_namespace(tmp_path, 4 << 20) as (ex, want):
        run = TAP_GUEST_UP + "wget -q -O - http://10.9.0.1:8000/blob | sha256sum | sed s/^/H2G=/; echo TAP-DONE"
        # two vCPUs on a tap made without multi_queue: one pair, said once
        out, err = run_until(ex + kvkit_cmd(run=run, cpus=2, memory=512,
                                            devices=["virtio-serial,stdio", "virtio-net,tap=kvtap0,offloading=off"]),
                             "TAP-DONE", 180)
        assert "one queue pair (the tap was made without multi_queue" in err, err
        assert "PING=2 packets transmitted, 2 packets received" in out, out
        feats = re.search(r"FEATURES=([01]+)", out).group(1)
        assert all(feats[b] == "0" for b in (0, 1, 7, 8, 11, 12)), feats  # no CSUM, GUEST_CSUM, TSO either way
        assert feats[15] == "1", feats  # MRG_RXBUF: the NIC is otherwise the same
        assert "H2G=" + want in out, out


@needs_kvm
def test_tap_multiqueue_with_two_vcpus(tmp_path):
    """A multiqueue tap and 2 vCPUs: a queue pair per vCPU. The guest sees
    two receive and two transmit queues; downloads started from each vCPU
    (the driver sends from CPU i on queue i, and the tap answers a flow on
    the queue it came from) all arrive intact, and both pairs carried
    frames both ways."""
    # ethtool (and its libraries) on a disk of their own: the test guest's
    # initramfs stays small enough for the 80 MiB boot test
    tools = str(tmp_path / "ethtool.img")
    tools_disk(tools, ["ethtool"], "", str(tmp_path), size="16M")
    with tap_namespace(tmp_path, 8 << 20, multi_queue=True) as (ex, want):
        get = "wget -q -O - http://10.9.0.1:8000/blob | sha256sum | sed s/^/H2G=/"
        run = ("mkdir -p /t; mount -o ro /dev/vda /t; " + TAP_GUEST_UP +
               "echo QUEUES=$(ls /sys/class/net/eth0/queues); "
               "echo CHANNELS=$(chroot /t ethtool -l eth0 | grep Combined); " +
               # one pair, then two again: the tap's second queue is
               # detached and attached, and traffic goes on
               "chroot /t ethtool -L eth0 combined 1 && " + get.replace("H2G=", "ONE=") +
               "; chroot /t ethtool -L eth0 combined 2; " +
               "".join("(taskset %d sh -c '%s') & " % (cpu, get) for cpu in (1, 2, 1, 2, 1, 2)) +
               "wait; echo TAP-DONE")
        out, err = run_until(ex + kvkit_cmd("--log-level", "debug", run=run, cpus=2, memory=512,
                                            devices=["virtio-serial,stdio", "virtio-blk,path=%s,readonly" % tools,
                                                     "virtio-net,tap=kvtap0"]),
                             "TAP-DONE", 240)
        assert "QUEUES=rx-0 rx-1 tx-0 tx-1" in out, out
        assert "CHANNELS=Combined: 2 Combined: 2" in out, out  # maximum and current
        assert "ONE=" + want in out, out
        assert out.count("H2G=" + want) == 6, out
        assert "virtio-net tap kvtap0: 2 queue pairs, each with its own thread" in err, err
        uses = re.findall(r"the driver uses (\d) of 2 queue pairs", err)
        assert uses[-3:] == ["2", "1", "2"], uses  # at probe, then ethtool -L 1 and 2
        pairs = re.findall(r"queue pair (\d) received (\d+) and sent (\d+) frames", err)
        assert [p_[0] for p_ in pairs] == ["0", "1"], err
        assert all(int(rx) > 100 and int(tx) > 100 for _, rx, tx in pairs), pairs


def test_bad_network_options(tmp_path):
    base = [KVKIT, "--bootloader", "linux,kernel=%s" % KERNEL]
    missing = str(tmp_path / "nobody.sock")
    cases = [
        ("virtio-net,mac=zz:zz", "Error: address zz:zz: invalid MAC address"),
        ("virtio-net,nat,fd=3", "Error: 'nat' and 'fd' cannot be set at the same time"),
        ("virtio-net,unixSocketPath=/x,fd=3", "Error: 'fd' and 'unixSocketPath' cannot be set at the same time"),
        ("virtio-net,nat,bogus=1", "Error: unknown option for virtio-net devices: bogus"),
        ("virtio-net,unixSocketPath=/" + "a" * 200, "Error: unixgram path '/%s' is too long: 201 >= 108 bytes" % ("a" * 200)),
        ("virtio-net,forward=tcp:1.2.3.4:x:1", "Error: invalid forward 'tcp:1.2.3.4:x:1': expected tcp|udp:[HOSTADDR]:HOSTPORT:GUESTPORT"),
        ("virtio-net,fd=77", "Error: invalid file descriptor: 77"),
        ("virtio-net,fd=0", "Error: fd=0 is not a datagram socket"),
    ]
    if os.path.exists("/dev/kvm"):  # found when the device is opened
        cases.append(("virtio-net,unixSocketPath=" + missing,
                      "Error: cannot connect to unixgram socket %s: No such file or directory" % missing))
    for dev, msg in cases:
        p = subprocess.run(base + ["--device", dev], capture_output=True, timeout=60)
        lines = p.stderr.decode().strip().splitlines()
        assert p.returncode == 1, (dev, p.stderr)
        assert lines[-1] == msg, (dev, lines)
        assert not [f for f in os.listdir(tmp_path) if f.startswith("vfkit-")]  # no client socket left
