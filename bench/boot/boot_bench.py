#!/usr/bin/python3
"""bench/boot: the same kernel and initramfs under kvkit, QEMU -M microvm and
QEMU -M q35 (KVM, same vCPUs and memory), alternating, N runs each.

For each run: time from exec to the guest init's first console line
(KVKIT-INIT-STARTED) and to process exit, and the VMM's peak memory beyond
the guest RAM it touched (RssAnon + RssFile from /proc/PID/status, with guest RAM in a memfd for
every VMM so it is counted apart, as RssShmem). Prints medians and ratios.
Inside the nested rig these are nested-emulation figures: read the ratios."""
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.path.join(ROOT, "build", "kvkit")
KERNEL = os.path.join(ROOT, "build", "guest", "vmlinuz")
INITRD = os.path.join(ROOT, "build", "guest", "initrd.img")
RUNS = int(os.environ.get("BENCH_RUNS", "10"))
CPUS, MEM = 1, 512
CMDLINE = "console=ttyS0 quiet hvcwait=0"
MARK = b"KVKIT-INIT-STARTED"
# BENCH_SANDBOX=1: kvkit also with --sandbox off, to price the sandbox
SANDBOX = os.environ.get("BENCH_SANDBOX", "0") == "1"
# BENCH_KVKIT_OLD=PATH: another kvkit build (say, before a redesign) in the
# same run, so the two are compared under the same load
OLD = os.environ.get("BENCH_KVKIT_OLD", "")


def vmms():
    q = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-smp", str(CPUS), "-m", str(MEM),
         "-object", "memory-backend-memfd,id=ram,size=%dM" % MEM,
         "-kernel", KERNEL, "-initrd", INITRD, "-append", CMDLINE,
         "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-no-user-config"]
    kv = [KVKIT, "--cpus", str(CPUS), "--memory", str(MEM), "--bootloader",
          'linux,kernel=%s,initrd=%s,cmdline="%s"' % (KERNEL, INITRD, CMDLINE), "--device", "virtio-serial,stdio"]
    return dict([("kvkit", kv)] + ([("kvkit-nosb", kv + ["--sandbox", "off"])] if SANDBOX else []) +
                ([("kvkit-old", [OLD] + kv[1:])] if OLD else []) + [
        ("qemu-microvm", q + ["-M", "microvm,memory-backend=ram,acpi=on"]),
        ("qemu-q35", q + ["-M", "q35,memory-backend=ram"]),
    ])


def overhead_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            v = {l.split(":")[0]: int(l.split()[1]) for l in f if l.split(":")[0] in ("RssAnon", "RssFile", "RssShmem")}
        return v.get("RssAnon", 0) + v.get("RssFile", 0)
    except (OSError, ValueError, IndexError):
        return None


def one(cmd, marks=(MARK,)):
    """Run one VM to its end: (ok, [seconds to each mark on stdout], seconds
    to exit, peak VMM memory beyond guest RAM in MiB); ok needs exit status 0
    and every mark seen."""
    err = tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            o = overhead_kib(p.pid)
            if o:
                peak[0] = max(peak[0], o)
            time.sleep(0.01)

    th = threading.Thread(target=sample)
    th.start()
    seen = [None] * len(marks)
    buf = b""
    while True:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
        for i, mark in enumerate(marks):
            if seen[i] is None and mark in buf:
                seen[i] = time.monotonic() - t0
    p.wait()
    t_exit = time.monotonic() - t0
    done.set()
    th.join()
    ok = p.returncode == 0 and None not in seen
    if not ok:
        # why a run failed: the VMM's last words and the console's
        err.seek(0)
        tail = err.read()[-1500:].decode(errors="replace").strip()
        print("%s: exit status %d, marks %s\n  stderr: %s\n  console: %s" %
              (os.path.basename(cmd[0]), p.returncode, seen, tail or "(empty)",
               buf[-800:].decode(errors="replace").strip()), file=sys.stderr)
    err.close()
    return ok, seen, t_exit, peak[0] / 1024.0


def main():
    v = vmms()
    res = {k: [] for k in v}
    for i in range(RUNS):
        for name, cmd in v.items():
            ok, (ti,), te, mib = one(cmd)
            if not ok:
                print("run %d %s failed" % (i, name), file=sys.stderr)
                continue
            res[name].append((ti, te, mib))
            print("run %2d %-13s init %.3f s  exit %.3f s  overhead %.1f MiB" % (i, name, ti, te, mib), flush=True)
    med = {}
    print("\nmedians over %d runs (%d vCPU, %d MiB)" % (RUNS, CPUS, MEM))
    print("%-13s %10s %10s %14s" % ("VMM", "to init", "to exit", "VMM overhead"))
    for name, r in res.items():
        if not r:
            continue
        med[name] = tuple(statistics.median(x[i] for x in r) for i in range(3))
        print("%-13s %9.3fs %9.3fs %11.1f MiB" % ((name,) + med[name]))
    k = med.get("kvkit")
    if k and "kvkit-nosb" in med:
        nosb = med["kvkit-nosb"]
        print("kvkit/kvkit --sandbox off  to init %.3f  to exit %.3f  overhead %.3f" %
              (k[0] / nosb[0], k[1] / nosb[1], k[2] / nosb[2]))
    if k and "kvkit-old" in med:
        old = med["kvkit-old"]
        print("kvkit/kvkit-old            to init %.3f  to exit %.3f  overhead %.3f" %
              (k[0] / old[0], k[1] / old[1], k[2] / old[2]))
    for peer in ("qemu-microvm", "qemu-q35"):
        if k and peer in med:
            print("kvkit/%-12s to init %.2f  to exit %.2f  overhead %.2f" %
                  (peer, k[0] / med[peer][0], k[1] / med[peer][1], k[2] / med[peer][2]))


if __name__ == "__main__":
    main()
