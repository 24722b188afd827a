#!/usr/bin/python3
"""bench/boot: the same kernel and initramfs under kvkit, QEMU -M microvm and
QEMU -M q35 (KVM, same vCPUs and memory), alternating, N runs each.

For each run: time from exec to the guest init's first console line
(KVKIT-INIT-STARTED) and to process exit, and the VMM's peak memory beyond
the guest RAM it touched (RssAnon + RssFile from /proc/PID/status, with guest RAM in a memfd for
every VMM so it is counted apart, as RssShmem). Prints medians and ratios.

Then the start-up anatomy (BENCH_PHASE_RUNS runs each of kvkit and QEMU
microvm): the VMM's own start-up, from exec to vCPU 0's first KVM_RUN, and
its shut-down, from the guest's power-off request to process exit, each in
wall time and CPU time. kvkit reports both events itself (--log-level debug:
"phase ...", with its CPU time from CLOCK_PROCESS_CPUTIME_ID); QEMU through
its trace events (the first kvm_vcpu_ioctl of KVM_RUN, and
qemu_system_shutdown_request), with its CPU time read from
/proc/PID/task/*/schedstat every 2 ms (so approximate: marked ~).
Inside the nested rig these are nested-emulation figures: read the ratios."""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from report import publish, table  # noqa: E402

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
PHASE_RUNS = int(os.environ.get("BENCH_PHASE_RUNS", "3"))
# BENCH_VMMS=kvkit,kvkit-nosb: only these (say, a long run pricing the sandbox)
ONLY = [x for x in os.environ.get("BENCH_VMMS", "").split(",") if x]
# what each VMM writes on stderr at the two events (the wall clock, seconds)
KVKIT_EVENTS = {"start": re.compile(r"phase first KVM_RUN: at ([\d.]+), [\d.]+ ms after start, CPU ([\d.]+) ms"),
                "stop": re.compile(r"phase power-off requested: at ([\d.]+), [\d.]+ ms after start, CPU ([\d.]+) ms"),
                "exit": re.compile(r"phase exit: at ([\d.]+), [\d.]+ ms after start, CPU ([\d.]+) ms")}
QEMU_EVENTS = {"start": re.compile(r"^\d+@([\d.]+):kvm_vcpu_ioctl cpu_index 0, type 0xae80\b", re.M),
               "stop": re.compile(r"^\d+@([\d.]+):qemu_system_shutdown_request", re.M)}
QEMU_TRACE = ["-trace", "kvm_vcpu_ioctl", "-trace", "qemu_system_shutdown_request", "-msg", "timestamp=on"]


def vmms():
    q = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-smp", str(CPUS), "-m", str(MEM),
         "-object", "memory-backend-memfd,id=ram,size=%dM" % MEM,
         "-kernel", KERNEL, "-initrd", INITRD, "-append", CMDLINE,
         "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-no-user-config"]
    kv = [KVKIT, "--cpus", str(CPUS), "--memory", str(MEM), "--bootloader",
          'linux,kernel=%s,initrd=%s,cmdline="%s"' % (KERNEL, INITRD, CMDLINE), "--device", "virtio-serial,stdio"]
    all_ = dict([("kvkit", kv)] + ([("kvkit-nosb", kv + ["--sandbox", "off"])] if SANDBOX else []) +
                ([("kvkit-old", [OLD] + kv[1:])] if OLD else []) + [
        ("qemu-microvm", q + ["-M", "microvm,memory-backend=ram,acpi=on"]),
        ("qemu-q35", q + ["-M", "q35,memory-backend=ram"]),
    ])
    return {k: c for k, c in all_.items() if not ONLY or k in ONLY}


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
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    t_exit = time.monotonic() - t0
    cpu = ru.ru_utime + ru.ru_stime
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
    return ok, seen, t_exit, peak[0] / 1024.0, cpu


def task_cpu_ms(pid):
    """CPU time of the live threads of pid, from the scheduler (ns)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e6


def one_phases(name, cmd):
    """One run for the anatomy: {start_wall, start_cpu, stop_wall, stop_cpu}
    in ms, or None if the run failed or an event is missing."""
    err = tempfile.TemporaryFile()
    samples = []  # (wall clock, CPU ms)
    t0 = time.time()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                samples.append((time.time(), task_cpu_ms(p.pid)))
            except OSError:
                pass
            time.sleep(0.002)

    th = threading.Thread(target=sample)
    th.start()
    while os.read(p.stdout.fileno(), 65536):
        pass
    _, status, ru = os.wait4(p.pid, 0)
    t_exit = time.time()
    p.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    th.join()
    err.seek(0)
    text = err.read().decode(errors="replace")
    err.close()
    events = KVKIT_EVENTS if name.startswith("kvkit") else QEMU_EVENTS
    got = {k: r.search(text) for k, r in events.items()}
    if p.returncode != 0 or not all(got.values()):
        print("%s: anatomy run failed (status %d, events %s)\n  %s" %
              (name, p.returncode, {k: bool(v) for k, v in got.items()}, text[-800:]), file=sys.stderr)
        return None

    def cpu_at(t):  # the sampled CPU time at wall clock t, interpolated
        before = [x for x in samples if x[0] <= t]
        after = [x for x in samples if x[0] > t]
        if not before:
            return 0.0
        if not after:
            return before[-1][1]
        (ta, ca), (tb, cb) = before[-1], after[0]
        return ca + (cb - ca) * (t - ta) / (tb - ta)
    start, stop = float(got["start"].group(1)), float(got["stop"].group(1))
    r = {"start_wall": (start - t0) * 1e3, "stop_wall": (t_exit - stop) * 1e3}
    if name.startswith("kvkit"):  # kvkit's own clock
        # the part before its last line (the rest: the kernel tearing the
        # process, its guest RAM and its VM down)
        r["stop_own"] = (float(got["exit"].group(1)) - stop) * 1e3
        r["start_cpu"] = float(got["start"].group(2))
        r["stop_cpu"] = float(got["exit"].group(2)) - float(got["stop"].group(2))
    else:
        r["start_cpu"] = cpu_at(start)
        r["stop_cpu"] = (ru.ru_utime + ru.ru_stime) * 1e3 - cpu_at(stop)
    return r


def anatomy(v):
    """The phases of kvkit and QEMU microvm, alternating, medians."""
    cmds = {k: v[k] + (["--log-level", "debug"] if k.startswith("kvkit") else QEMU_TRACE)
            for k in ("kvkit", "kvkit-nosb", "qemu-microvm") if k in v}
    res = {k: [] for k in cmds}
    for i in range(PHASE_RUNS):
        for name, cmd in cmds.items():
            r = one_phases(name, cmd)
            if r:
                res[name].append(r)
                print("phases %2d %-13s exec->first KVM_RUN %.1f ms (CPU %.1f ms)  power-off->exit %.1f ms (CPU %.1f ms)%s"
                      % (i, name, r["start_wall"], r["start_cpu"], r["stop_wall"], r["stop_cpu"],
                         "  of which to kvkit's last line %.1f ms" % r["stop_own"] if "stop_own" in r else ""),
                      flush=True)
    med = {k: {f: statistics.median(x[f] for x in r) for f in r[0]} for k, r in res.items() if r}
    print("\nstart-up anatomy, medians over %d runs (ms; QEMU's CPU time sampled: ~)" % PHASE_RUNS)
    print("%-13s %14s %12s %16s %13s" % ("VMM", "exec->KVM_RUN", "its CPU", "power-off->exit", "its CPU"))
    for name, m in med.items():
        q = "~" if name.startswith("qemu") else " "
        print("%-13s %13.1f %11s%s %15.1f %12s%s" % (name, m["start_wall"], "%.1f" % m["start_cpu"], q, m["stop_wall"],
                                                  "%.1f" % m["stop_cpu"], q))
    if "kvkit" in med and "qemu-microvm" in med:
        k, q = med["kvkit"], med["qemu-microvm"]
        print("kvkit/qemu-microvm  exec->KVM_RUN %.2f (CPU %.2f)  power-off->exit %.2f (CPU %.2f)" %
              (k["start_wall"] / q["start_wall"], k["start_cpu"] / max(q["start_cpu"], 0.001),
               k["stop_wall"] / q["stop_wall"], k["stop_cpu"] / max(q["stop_cpu"], 0.001)))
    return med


def main():
    v = vmms()
    res = {k: [] for k in v}
    for i in range(RUNS):
        for name, cmd in v.items():
            ok, (ti,), te, mib, cpu = one(cmd)
            if not ok:
                print("run %d %s failed" % (i, name), file=sys.stderr)
                continue
            res[name].append((ti, te, mib, cpu))
            print("run %2d %-13s init %.3f s  exit %.3f s  overhead %.1f MiB  CPU %.3f s" % (i, name, ti, te, mib, cpu),
                  flush=True)
    med = {}
    print("\nmedians over %d runs (%d vCPU, %d MiB)" % (RUNS, CPUS, MEM))
    print("%-13s %10s %10s %14s %10s" % ("VMM", "to init", "to exit", "VMM overhead", "VMM CPU"))
    for name, r in res.items():
        if not r:
            continue
        med[name] = tuple(statistics.median(x[i] for x in r) for i in range(4))
        print("%-13s %9.3fs %9.3fs %11.1f MiB %9.3fs" % ((name,) + med[name]))
    k = med.get("kvkit")
    if k and "kvkit-nosb" in med:
        nosb = med["kvkit-nosb"]
        print("kvkit/kvkit --sandbox off  to init %.3f  to exit %.3f  overhead %.3f  CPU %.3f" %
              (k[0] / nosb[0], k[1] / nosb[1], k[2] / nosb[2], k[3] / nosb[3]))
    if k and "kvkit-old" in med:
        old = med["kvkit-old"]
        print("kvkit/kvkit-old            to init %.3f  to exit %.3f  overhead %.3f" %
              (k[0] / old[0], k[1] / old[1], k[2] / old[2]))
    for peer in ("qemu-microvm", "qemu-q35"):
        if k and peer in med:
            print("kvkit/%-12s to init %.2f  to exit %.2f  overhead %.2f" %
                  (peer, k[0] / med[peer][0], k[1] / med[peer][1], k[2] / med[peer][2]))
    phases = {}
    if PHASE_RUNS:
        print()
        phases = anatomy(v)
    rows = [[name, "%.2f s" % m[0], "%.2f s" % m[1], "%.1f MiB" % m[2], "%.2f s" % m[3]] for name, m in med.items()]
    lines = table(["VMM", "exec → init", "exec → exit", "VMM memory beyond guest RAM", "VMM CPU"], rows)
    if k and "kvkit-nosb" in med:
        nosb = med["kvkit-nosb"]
        lines += ["", "The sandbox's cost, kvkit/kvkit --sandbox off: %.3f to init, %.3f to exit, %.3f of the CPU." %
                  (k[0] / nosb[0], k[1] / nosb[1], k[3] / nosb[3])]
    if k:
        lines += [""] + ["kvkit/%s: %.2f to init, %.2f to exit, %.2f of the memory." %
                         (peer, k[0] / med[peer][0], k[1] / med[peer][1], k[2] / med[peer][2])
                         for peer in ("qemu-microvm", "qemu-q35") if peer in med]
    if "kvkit" in phases and "qemu-microvm" in phases:
        lines += ["", "Start-up anatomy (medians of %d runs; QEMU's CPU time sampled, so approximate):" % PHASE_RUNS,
                  ""]
        lines += table(["VMM", "exec → first KVM_RUN", "its CPU", "power-off request → exit", "its CPU"],
                       [[n, "%.0f ms" % m["start_wall"], "%.0f ms" % m["start_cpu"], "%.0f ms" % m["stop_wall"],
                         "%.0f ms" % m["stop_cpu"]] for n, m in phases.items()])
        pk, pq = phases["kvkit"], phases["qemu-microvm"]
        lines += ["", "kvkit/qemu-microvm: exec → first KVM_RUN %.2f (CPU %.2f), power-off → exit %.2f (CPU %.2f); "
                  "kvkit's last line comes %.0f ms after the power-off request, the rest is the kernel tearing "
                  "the process down." % (pk["start_wall"] / pq["start_wall"], pk["start_cpu"] / max(pq["start_cpu"], 0.001),
                                         pk["stop_wall"] / pq["stop_wall"], pk["stop_cpu"] / max(pq["stop_cpu"], 0.001),
                                         pk.get("stop_own", 0))]
    # a run of some VMMs only (BENCH_VMMS) does not replace the full table
    publish("boot" if not ONLY else "boot-" + "-".join(ONLY), "%d vCPU, %d MiB, the busybox test guest, medians of %d runs" % (CPUS, MEM, RUNS), lines)


if __name__ == "__main__":
    main()
