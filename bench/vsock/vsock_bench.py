#!/usr/bin/python3
"""bench/vsock: host<->guest stream throughput (MB/s) and connection setup
rate over kvkit's virtio-vsock, next to the same transfers over kvkit's
virtio-net nat to a loopback server on the host (the way a client reaches
a guest without vsock), in one VM, one run. The guest side is socat from a
read-only tools disk. Reports the kvkit process's host CPU seconds per GB
(transfers) and per 1000 connections."""
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from guest_tools import GUEST_RUN, cpu_seconds, tools_disk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.path.join(ROOT, "build", "kvkit")
KERNEL = os.path.join(ROOT, "build", "guest", "vmlinuz")
INITRD = os.path.join(ROOT, "build", "guest", "initrd.img")
BYTES = int(os.environ.get("BENCH_BYTES", str(64 << 20)))
CONNS = int(os.environ.get("BENCH_CONNS", "200"))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
CPUS, MEM = 2, 1024
TCP_SINK, TCP_FWD_DATA, TCP_FWD_CONN = 5301, 5302, 5303

GUEST = r"""S="chroot /t socat"
udhcpc -i eth0 -n -q -t 10 -T 1 >/dev/null 2>&1
$S -u VSOCK-LISTEN:6000,fork,reuseaddr OPEN:/dev/null &
$S -u TCP-LISTEN:6000,fork,reuseaddr OPEN:/dev/null &
$S -u VSOCK-LISTEN:6001,fork,reuseaddr,backlog=128 OPEN:/dev/null &
$S -u TCP-LISTEN:6001,fork,reuseaddr,backlog=128 OPEN:/dev/null &
$S -u VSOCK-LISTEN:6999 - > /dev/null & done_pid=$!
sleep 3
echo JOB g2h-vsock; $S -u -b 65536 OPEN:/dev/zero,readbytes=%(bytes)d VSOCK-CONNECT:2:5000; echo JOB-END $?
echo JOB g2h-nat; $S -u -b 65536 OPEN:/dev/zero,readbytes=%(bytes)d TCP:10.0.2.2:%(tcp)d; echo JOB-END $?
echo GUEST-READY
wait $done_pid
"""


class Sink:
    """Counts bytes per connection; records (bytes, seconds from accept to EOF)."""

    def __init__(self, sock):
        self.s = sock
        self.done = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            c, _ = self.s.accept()
            t0, n = time.monotonic(), 0
            while True:
                b = c.recv(1 << 18)
                if not b:
                    break
                n += len(b)
            self.done.append((n, time.monotonic() - t0))
            c.close()


def send_all(connect, nbytes):
    """Send nbytes, half-close, wait for the far end to close: all consumed."""
    s = connect()
    buf = b"\0" * (1 << 18)
    t0 = time.monotonic()
    left = nbytes
    while left:
        left -= s.send(buf[:min(left, len(buf))])
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    return time.monotonic() - t0


def conn_rate(connect, n):
    t0 = time.monotonic()
    for _ in range(n):
        s = connect()
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # the guest's socat child saw EOF and closed
        s.close()
    return time.monotonic() - t0


def unix(path):
    def c():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(path)
        return s
    return c


def tcp(port):
    def c():
        return socket.create_connection(("127.0.0.1", port), timeout=60)
    return c


def main():
    d = os.path.join(WORK, "kvkit-bench-vsock")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    tools = os.path.join(d, "tools.img")
    tools_disk(tools, ["socat"], "", d, size="64M",
               extra={"/bench.sh": GUEST % {"bytes": BYTES, "tcp": TCP_SINK}})
    us = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    us.bind(os.path.join(d, "sink.sock"))
    us.listen(16)
    ts = socket.create_server(("127.0.0.1", TCP_SINK))
    sinks = {"vsock": Sink(us), "nat": Sink(ts)}
    run = GUEST_RUN.replace("/dev/%s", "/dev/vda").replace("sh /t/run.sh", "sh /t/bench.sh")
    cmd = [KVKIT, "--cpus", str(CPUS), "--memory", str(MEM), "--bootloader",
           'linux,kernel=%s,initrd=%s,cmdline=console=ttyS0 quiet run="%s"' % (KERNEL, INITRD, run),
           "--device", "virtio-serial,stdio", "--device", "virtio-blk,path=%s,readonly" % tools,
           "--device", "virtio-net,nat,hostLoopback,forward=tcp:127.0.0.1:%d:6000,forward=tcp:127.0.0.1:%d:6001" % (TCP_FWD_DATA,
                                                                                                    TCP_FWD_CONN),
           "--device", "virtio-vsock,port=5000,socketURL=%s/sink.sock,listen" % d,
           "--device", "virtio-vsock,port=6000,socketURL=%s/data.sock,connect" % d,
           "--device", "virtio-vsock,port=6001,socketURL=%s/conn.sock,connect" % d,
           "--device", "virtio-vsock,port=6999,socketURL=%s/done.sock,connect" % d]
    print("bench/vsock: %d MiB per transfer, %d connections, guest %d vCPU %d MiB, vsock vs nat (kvkit both)"
          % (BYTES >> 20, CONNS, CPUS, MEM), flush=True)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    res, cpu0 = {}, {}
    for raw in p.stdout:
        line = raw.decode(errors="replace").strip()
        m = re.match(r"JOB (\S+)", line)
        if m:
            job, cpu0[m.group(1)] = m.group(1), cpu_seconds(p.pid)
        m = re.match(r"JOB-END (\d+)", line)
        if m:
            if m.group(1) != "0":
                sys.exit("guest job %s failed" % job)
            sink = sinks[job.split("-")[1]]
            deadline = time.monotonic() + 60  # nat: the last bytes may still be in slirp
            while not sink.done and time.monotonic() < deadline:
                time.sleep(0.05)
            n, secs = sink.done.pop()
            res[job] = (n / secs / 1e6, cpu_seconds(p.pid) - cpu0[job], n)
            print("  %s: %.1f MB/s" % (job, res[job][0]), flush=True)
        if line == "GUEST-READY":
            break
    for name, connect in (("h2g-vsock", unix(d + "/data.sock")), ("h2g-nat", tcp(TCP_FWD_DATA))):
        c0 = cpu_seconds(p.pid)
        secs = send_all(connect, BYTES)
        res[name] = (BYTES / secs / 1e6, cpu_seconds(p.pid) - c0, BYTES)
        print("  %s: %.1f MB/s" % (name, res[name][0]), flush=True)
    for name, connect in (("conn-vsock", unix(d + "/conn.sock")), ("conn-nat", tcp(TCP_FWD_CONN))):
        conn_rate(connect, 10)  # warm up the guest's socat
        c0 = cpu_seconds(p.pid)
        secs = conn_rate(connect, CONNS)
        res[name] = (CONNS / secs, cpu_seconds(p.pid) - c0, CONNS)
        print("  %s: %.1f conn/s" % (name, res[name][0]), flush=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d + "/done.sock")
    s.close()
    p.wait(timeout=60)
    print("%-16s %12s %12s %9s   %s" % ("", "vsock", "nat (TCP)", "vsock/nat", "kvkit CPU: vsock nat"))
    for what, unit, per in (("g2h", "MB/s", "s/GB"), ("h2g", "MB/s", "s/GB"), ("conn", "conn/s", "s/1000")):
        v, n = res[what + "-vsock"], res[what + "-nat"]
        scale = (lambda r: r[1] / (r[2] / 1e9)) if per == "s/GB" else (lambda r: r[1] / (r[2] / 1000))
        label = {"g2h": "guest -> host", "h2g": "host -> guest", "conn": "connect+close"}[what]
        print("%-16s %7.1f %-4s %7.1f %-4s %9.2f   %.2f %.2f %s" % (label, v[0], unit, n[0], unit, v[0] / n[0],
                                                                   scale(v), scale(n), per))


if __name__ == "__main__":
    main()
