#!/usr/bin/python3
"""bench/api: the control plane, kvkit vs QEMU in one run on the same guest.
  ready    exec -> the control socket answers a state query: kvkit's
           GET /vm/state on --restful-uri unix://, QEMU's QMP greeting +
           qmp_capabilities + query-status on -qmp unix: (median of RUNS)
  rate     state queries per second from one client for SECONDS: kvkit a new
           connection per request (it sends Connection: close, as clients
           need), QEMU one persistent QMP session (QMP's only mode)
Both VMMs boot the test guest (1 vCPU, 512 MiB) with KVM."""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.path.join(ROOT, "build", "kvkit")
KERNEL = os.path.join(ROOT, "build", "guest", "vmlinuz")
INITRD = os.path.join(ROOT, "build", "guest", "initrd.img")
RUNS = int(os.environ.get("BENCH_RUNS", "10"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
CMDLINE = 'console=ttyS0 quiet run="sleep 600"'
SOCK = "/tmp/kvkit-bench-api.sock"


def connect(path, deadline):
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            time.sleep(0.001)
    raise RuntimeError("control socket never answered")


def http_get_state(path, deadline):
    s = connect(path, deadline)
    s.sendall(b"GET /vm/state HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while True:
        c = s.recv(4096)
        if not c:
            break
        buf += c
    s.close()
    if b"200 OK" not in buf.split(b"\r\n")[0]:
        raise RuntimeError(buf)
    return buf


class Qmp:
    def __init__(self, path, deadline):
        self.s = connect(path, deadline)
        self.f = self.s.makefile("rwb")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name):
        self.f.write(json.dumps({"execute": name}).encode() + b"\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r or "error" in r:
                return r


def kvkit_cmd():
    return [KVKIT, "--memory", "512", "--bootloader", "linux,kernel=%s,initrd=%s,cmdline=%s" % (KERNEL, INITRD, CMDLINE),
            "--device", "virtio-serial,logFilePath=/dev/null", "--restful-uri", "unix://" + SOCK]


def qemu_cmd():
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-m", "512", "-nographic", "-nodefaults",
            "-serial", "null", "-kernel", KERNEL, "-initrd", INITRD, "-append", CMDLINE,
            "-qmp", "unix:%s,server=on,wait=off" % SOCK]


def ready_time(which):
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    t0 = time.monotonic()
    p = subprocess.Popen(kvkit_cmd() if which == "kvkit" else qemu_cmd(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 30
    if which == "kvkit":
        http_get_state(SOCK, deadline)
        q = None
    else:
        q = Qmp(SOCK, deadline)
        q.cmd("query-status")
    return time.monotonic() - t0, p, q


def rate(which, q):
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < SECONDS:
        if which == "kvkit":
            http_get_state(SOCK, time.monotonic() + 5)
        else:
            q.cmd("query-status")
        n += 1
    return n / (time.monotonic() - t0)


def stop(p):
    p.kill()
    p.wait()


def main():
    print("bench/api: %d runs, rate over %.0f s" % (RUNS, SECONDS), flush=True)
    ready = {"kvkit": [], "qemu": []}
    for i in range(RUNS):
        for which in ("kvkit", "qemu"):  # alternating, one run each
            t, p, q = ready_time(which)
            ready[which].append(t)
            stop(p)
    rates = {}
    for which in ("kvkit", "qemu"):
        t, p, q = ready_time(which)
        rates[which] = rate(which, q)
        stop(p)
    for which in ("kvkit", "qemu"):
        print("%-6s ready %.1f ms (median; min %.1f, max %.1f)   %.0f state queries/s" % (
            which, statistics.median(ready[which]) * 1e3, min(ready[which]) * 1e3, max(ready[which]) * 1e3,
            rates[which]))
    print("ratio kvkit/qemu: ready %.2f, rate %.2f" % (statistics.median(ready["kvkit"]) / statistics.median(ready["qemu"]),
                                                       rates["kvkit"] / rates["qemu"]))


if __name__ == "__main__":
    sys.exit(main())
