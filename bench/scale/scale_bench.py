#!/usr/bin/python3
"""bench/scale: N small VMs started at once (1 vCPU, 128 MiB, the busybox
test guest that reports init, starts acpid and sleeps), under kvkit and
under QEMU -M microvm, N = BENCH_SCALE (default "10,25,50"), in one run.

For each N and VMM: the time from the first spawn until all N guests
printed their init line; per VM, the VMM's memory beyond guest RAM
(its proportional share, Pss_Anon + Pss_File, and its RSS; guest RAM is
a memfd for both, counted apart as RssShmem, which is the guest RAM
actually touched) and the host CPU time
spent until all were up; then SIGTERM to all and the time until all
exited (kvkit presses the power button and the guests power off; QEMU
quits at once), and whether every kvkit exited 0. Inside the nested rig
these are nested-emulation figures: read the ratios."""
import os
import select
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from guest_tools import cpu_seconds  # noqa: E402
from report import publish, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.path.join(ROOT, "build", "kvkit")
KERNEL = os.path.join(ROOT, "build", "guest", "vmlinuz")
INITRD = os.path.join(ROOT, "build", "guest", "initrd.img")
SIZES = [int(n) for n in os.environ.get("BENCH_SCALE", "10,25,50").replace(",", " ").split()]
MEM = 128
MARK = b"SCALE-UP"
CMDLINE = 'console=ttyS0 quiet hvcwait=0 run="acpid -d & echo SCALE-UP; sleep 100000"'


def vmms():
    kv = [KVKIT, "--cpus", "1", "--memory", str(MEM), "--bootloader",
          "linux,kernel=%s,initrd=%s,cmdline=%s" % (KERNEL, INITRD, CMDLINE), "--device", "virtio-serial,stdio"]
    q = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-smp", "1", "-m", str(MEM),
         "-object", "memory-backend-memfd,id=ram,size=%dM" % MEM, "-M", "microvm,memory-backend=ram,acpi=on",
         "-kernel", KERNEL, "-initrd", INITRD, "-append", CMDLINE,
         "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-no-user-config"]
    return {"kvkit": kv, "qemu-microvm": q}


def rss(pid):
    """MiB: the VMM's resident memory beyond guest RAM (RssAnon + RssFile),
    the guest RAM touched (RssShmem), and the VMM's proportional share
    (Pss_Anon + Pss_File: pages of the binary and libraries that N
    processes share count 1/N each, which is what N VMs cost a host)."""
    with open("/proc/%d/status" % pid) as f:
        v = {l.split(":")[0]: int(l.split()[1]) for l in f if l.split(":")[0] in ("RssAnon", "RssFile", "RssShmem")}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        v.update({l.split(":")[0]: int(l.split()[1]) for l in f if l.split(":")[0] in ("Pss_Anon", "Pss_File")})
    return ((v.get("RssAnon", 0) + v.get("RssFile", 0)) / 1024.0, v.get("RssShmem", 0) / 1024.0,
            (v.get("Pss_Anon", 0) + v.get("Pss_File", 0)) / 1024.0)


def run(name, cmd, n):
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
             for _ in range(n)]
    spawned = time.monotonic() - t0
    bufs = {p.stdout.fileno(): b"" for p in procs}
    up = set()
    deadline = t0 + 60 + 10 * n
    while len(up) < n and time.monotonic() < deadline:
        r, _, _ = select.select(list(bufs), [], [], 1)
        for fd in r:
            chunk = os.read(fd, 4096)
            if not chunk:
                bufs.pop(fd)
                continue
            bufs[fd] += chunk
            if MARK in bufs[fd]:
                up.add(fd)
                bufs[fd] = b""
    all_up = time.monotonic() - t0
    mem = [rss(p.pid) for p in procs if p.poll() is None]
    cpu = [cpu_seconds(p.pid) for p in procs if p.poll() is None]
    t1 = time.monotonic()
    for p in procs:
        p.terminate()
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=60))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    stopped = time.monotonic() - t1
    clean = sum(1 for c in codes if c == 0)
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731 (none left: all died)
    res = {"up": len(up), "all_up": all_up, "spawn": spawned, "vmm_mib": med([m[2] for m in mem]),
           "vmm_rss": med([m[0] for m in mem]), "guest_mib": med([m[1] for m in mem]), "cpu": med(cpu),
           "stop": stopped, "clean": clean}
    print("%-13s N=%-3d up %d/%d in %6.2f s  VMM %5.2f MiB/VM PSS (%5.2f RSS; guest RAM touched %5.1f MiB)  "
          "CPU %5.3f s/VM  stopped in %5.2f s, %d exited 0" %
          (name, n, len(up), n, all_up, res["vmm_mib"], res["vmm_rss"], res["guest_mib"], res["cpu"], stopped, clean),
          flush=True)
    return res


def main():
    res = {}
    for n in SIZES:
        for name, cmd in vmms().items():
            res[(name, n)] = run(name, cmd, n)
    print("\nkvkit/qemu-microvm, same run:")
    print("%-5s %14s %14s %12s %10s" % ("N", "time to all up", "VMM MiB/VM", "CPU/VM", "all up"))
    for n in SIZES:
        k, q = res[("kvkit", n)], res[("qemu-microvm", n)]
        print("%-5d %14.2f %14.2f %12.2f %6d/%d" % (n, k["all_up"] / q["all_up"], k["vmm_mib"] / q["vmm_mib"],
                                                   k["cpu"] / q["cpu"], k["up"], n))
    rows = [[n, name, "%d/%d" % (r["up"], n), "%.1f s" % r["all_up"], "%.2f MiB" % r["vmm_mib"],
             "%.2f MiB" % r["vmm_rss"], "%.1f MiB" % r["guest_mib"], "%.3f s" % r["cpu"],
             "%.1f s, %d exited 0" % (r["stop"], r["clean"])]
            for n in SIZES for name in vmms() for r in [res[(name, n)]]]
    lines = table(["N", "VMM", "up", "time to all up", "VMM memory per VM (PSS)", "(RSS)", "guest RAM touched",
                   "CPU per VM", "SIGTERM to all gone"], rows)
    lines += [""] + ["N=%d: kvkit/qemu-microvm %s%.2f of the time to all up, %.2f of the VMM memory, %.2f of the CPU%s." %
                     (n, "at most " if res[("qemu-microvm", n)]["up"] < n else "",
                      res[("kvkit", n)]["all_up"] / res[("qemu-microvm", n)]["all_up"],
                      res[("kvkit", n)]["vmm_mib"] / res[("qemu-microvm", n)]["vmm_mib"],
                      res[("kvkit", n)]["cpu"] / res[("qemu-microvm", n)]["cpu"],
                      " (QEMU had %d of %d up when the bench stopped waiting: its time is the wait, its CPU "
                      "what it had used by then)" % (res[("qemu-microvm", n)]["up"], n)
                      if res[("qemu-microvm", n)]["up"] < n else "") for n in SIZES]
    publish("scale", "N VMs started at once (1 vCPU, %d MiB, the busybox test guest), kvkit vs QEMU microvm" % MEM,
            lines)


main()
