#!/usr/bin/python3
"""bench/blk: one raw image file, three ways in one run:
  host    fio on the file itself (the physical limit; in the rig, L1)
  kvkit   fio in the guest on /dev/vda = that file, cache=uncached (O_DIRECT)
  qemu    the same guest under QEMU, virtio-blk-pci, aio=io_uring, cache=none
Jobs: sequential 1 MiB direct read/write (MB/s), 4 KiB random read/write IOPS
at queue depth 1 and 32, and the VMM's host CPU seconds per GB moved.
fio runs in the guest from a read-only tools disk (/dev/vdb) built here.
BENCH_JOBS picks jobs by name (comma list; default all).
BENCH_DISK=nvme puts the image on an NVMe controller instead, in both VMMs
(kvkit's nvme device, QEMU's -device nvme).
BENCH_FORMAT=qcow2 adds kvkit on a qcow2 copy of the image (format=qcow2)
and puts QEMU on that qcow2 too (aio=io_uring,cache=none), beside kvkit on
the raw file, plus a job writing once through a new, empty disk (raw: a
sparse file; qcow2: every cluster allocated as it goes).
BENCH_ROUNDS (default 3) rounds of host, kvkit, qemu, one after the other;
each job's median round is the figure: in the nested rig one run of a job
can differ from the next by 2x, and interleaving keeps a slow spell of the
rig from landing on one side only."""
import json
import os
import re
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from guest_tools import GUEST_RUN, cpu_seconds, tools_disk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.path.join(ROOT, "build", "kvkit")
KERNEL = os.path.join(ROOT, "build", "guest", "vmlinuz")
INITRD = os.path.join(ROOT, "build", "guest", "initrd.img")
RUNTIME = int(os.environ.get("BENCH_RUNTIME", "5"))
SIZE_MIB = int(os.environ.get("BENCH_SIZE_MIB", "512"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
DISK = os.environ.get("BENCH_DISK", "virtio-blk")
if DISK not in ("virtio-blk", "nvme"):
    sys.exit("bench/blk: BENCH_DISK is virtio-blk or nvme, not %s" % DISK)
FORMAT = os.environ.get("BENCH_FORMAT", "raw")
if FORMAT not in ("raw", "qcow2"):
    sys.exit("bench/blk: BENCH_FORMAT is raw or qcow2, not %s" % FORMAT)
# BENCH_SANDBOX=1: kvkit also with --sandbox off, to price the sandbox
SANDBOX = os.environ.get("BENCH_SANDBOX", "0") == "1"
TARGET, TOOLS_DEV = ("/dev/vda", "vdb") if DISK == "virtio-blk" else ("/dev/nvme0n1", "vda")
# qcow2 runs: the new, empty disk after the tools disk
NEW_TARGET = "/dev/vdc" if DISK == "virtio-blk" else "/dev/vdb"
CPUS, MEM = 1, 1024  # one vCPU: two-vCPU guests in the nested rig now and then lose their timer (docs/testing.md)

JOBS = [  # name, rw, bs, iodepth
    ("seq-read", "read", "1M", 8),
    ("seq-write", "write", "1M", 8),
    ("rand-read-qd1", "randread", "4k", 1),
    ("rand-read-qd32", "randread", "4k", 32),
    ("rand-write-qd1", "randwrite", "4k", 1),
    ("rand-write-qd32", "randwrite", "4k", 32),
]
if FORMAT == "qcow2":  # once through, not time-based: every write allocates
    JOBS.insert(2, ("seq-write-new", "write", "1M", 8))
if os.environ.get("BENCH_JOBS"):  # a comma list of job names: only those run
    _wanted = os.environ["BENCH_JOBS"].split(",")
    _unknown = set(_wanted) - {j[0] for j in JOBS}
    if _unknown:
        sys.exit("bench/blk: unknown BENCH_JOBS entries: %s" % ", ".join(sorted(_unknown)))
    JOBS = [j for j in JOBS if j[0] in _wanted]


def fio_args(target, name, rw, bs, qd, new_target=None):
    once = name == "seq-write-new"
    return ["fio", "--name=" + name, "--filename=" + (new_target if once else target), "--rw=" + rw, "--bs=" + bs,
            "--iodepth=%d" % qd, "--direct=1", "--ioengine=libaio"] + ([] if once else
                                                                        ["--time_based", "--runtime=%d" % RUNTIME]) + \
        ["--size=%dM" % SIZE_MIB, "--randrepeat=0", "--norandommap", "--output-format=json"]


def result(j):
    """(MB/s, IOPS, bytes moved, fio's own CPU seconds) of one fio job."""
    job = j["jobs"][0]
    r, w = job["read"], job["write"]
    bw = (r["bw_bytes"] + w["bw_bytes"]) / 1e6
    iops = r["iops"] + w["iops"]
    moved = r["io_bytes"] + w["io_bytes"]
    cpu = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["job_runtime"] / 1000
    return bw, iops, moved, cpu


def guest_jobs():
    return "".join("echo JOB-START %s; chroot /t %s | tr -d '\\n'; echo; echo JOB-END %s\n" %
                   (n, " ".join(fio_args(TARGET, n, rw, bs, qd, NEW_TARGET)), n) for n, rw, bs, qd in JOBS)


def run_vmm(name, cmd):
    """Boot, collect each job's fio JSON and the VMM's CPU time over the job;
    None if the guest did not finish in 10 minutes (the nested rig sometimes
    loses a guest: that round is left out and the table says so)."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(600, p.kill)  # reading stdout blocks: the deadline cannot be polled
    watchdog.start()
    out = {}
    start = None
    for raw in p.stdout:
        line = raw.decode(errors="replace").strip()
        m = re.search(r"JOB-START (\S+)", line)
        if m:
            start = cpu_seconds(p.pid)
            continue
        if line.startswith("{"):
            js = json.loads(line[line.index("{"):line.rindex("}") + 1])
            out[js["jobs"][0]["jobname"]] = (result(js), cpu_seconds(p.pid) - start)
        if len(out) == len(JOBS):
            break
    watchdog.cancel()
    p.kill()
    p.wait()
    if len(out) != len(JOBS):
        print("%s: only %d of %d jobs reported; this round is left out; stderr:\n%s" %
              (name, len(out), len(JOBS), p.stderr.read().decode()[-1500:]), flush=True)
        return None
    return out


def figure_index(bs):
    """Which of result()'s figures a job is judged by: MB/s for sequential, IOPS for random."""
    return 0 if bs == "1M" else 1


def show(who, res):
    """Raw figures as soon as one side is done (a later failure keeps them)."""
    if res is None:
        return
    print("%-12s " % who + "  ".join("%s=%.1f%s" % (n, res[n][0][figure_index(bs)], "MB/s" if bs == "1M" else "IOPS")
                                    for n, _, bs, _ in JOBS), flush=True)


def median_round(rounds):
    """Per job, the round with the median figure (MB/s or IOPS), with its CPU."""
    out = {}
    for n, _, bs, _ in JOBS:
        runs = sorted((r[n] for r in rounds), key=lambda v: v[0][figure_index(bs)])
        out[n] = runs[len(runs) // 2]
    return out


def fresh(path, fmt):
    """A new, empty disk of SIZE_MIB: a sparse raw file or an empty qcow2."""
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, "%dM" % SIZE_MIB], check=True)
    return path


def main():
    img = os.path.join(WORK, "kvkit-bench-blk.raw")
    qimg = os.path.join(WORK, "kvkit-bench-blk.qcow2")
    new = os.path.join(WORK, "kvkit-bench-new")
    tools = os.path.join(WORK, "kvkit-bench-tools.img")
    print("bench/blk: %d MiB %s image in %s on %s, %d s per job, guest %d vCPU %d MiB, %d rounds (medians)" %
          (SIZE_MIB, FORMAT, WORK, DISK, RUNTIME, CPUS, MEM, ROUNDS))
    subprocess.run(["dd", "if=/dev/urandom", "of=" + img, "bs=1M", "count=%d" % SIZE_MIB, "conv=fsync"],
                   check=True, capture_output=True)
    if FORMAT == "qcow2":  # the same data, every cluster allocated
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", img, qimg], check=True)
        print("qcow2: kvkit format=qcow2,cache=uncached and QEMU aio=io_uring,cache=none on the same qcow2 "
              "file; kvkit is the raw file, cache=uncached")
    tools_disk(tools, ["fio"], guest_jobs(), WORK)
    cmdline = 'console=ttyS0 quiet hvcwait=0 run="%s"' % (GUEST_RUN % TOOLS_DEV)
    sides = ["host", "kvkit"] + (["kvkit-nosb"] if SANDBOX else []) + \
        (["kvkit-qcow2"] if FORMAT == "qcow2" else []) + ["qemu"]
    rounds = {w: [] for w in sides}

    def kvkit(data, opts, new_fmt):
        newdev = ["--device", "virtio-blk,path=%s%s" % (fresh(new + "." + new_fmt, new_fmt), opts)] \
            if FORMAT == "qcow2" else []
        return [KVKIT, "--cpus", str(CPUS), "--memory", str(MEM), "--bootloader",
                "linux,kernel=%s,initrd=%s,cmdline=%s" % (KERNEL, INITRD, cmdline),
                "--device", "virtio-serial,stdio",
                "--device", "%s,path=%s%s" % (DISK, data, opts),
                "--device", "virtio-blk,path=%s,readonly" % tools] + newdev

    for _ in range(ROUNDS):
        host = {}
        for n, rw, bs, qd in JOBS:
            js = json.loads(subprocess.run(fio_args(img, n, rw, bs, qd, fresh(new + ".raw", "raw")),
                                           capture_output=True, text=True, check=True).stdout)
            r = result(js)
            host[n] = (r, r[3])
        rounds["host"].append(host)
        show("host", host)
        rounds["kvkit"].append(run_vmm("kvkit", kvkit(img, ",cache=uncached", "raw")))
        show("kvkit", rounds["kvkit"][-1])
        if SANDBOX:
            rounds["kvkit-nosb"].append(run_vmm("kvkit-nosb", kvkit(img, ",cache=uncached", "raw") + ["--sandbox", "off"]))
            show("kvkit-nosb", rounds["kvkit-nosb"][-1])
        if FORMAT == "qcow2":
            rounds["kvkit-qcow2"].append(run_vmm("kvkit-qcow2", kvkit(qimg, ",format=qcow2,cache=uncached", "qcow2")))
            show("kvkit-qcow2", rounds["kvkit-qcow2"][-1])
        qdata, qfmt = (qimg, "qcow2") if FORMAT == "qcow2" else (img, "raw")
        qnew = ["-drive", "file=%s,if=none,id=d2,format=qcow2,aio=io_uring,cache=none" % fresh(new + ".qcow2", "qcow2"),
                "-device", "virtio-blk-pci,drive=d2"] if FORMAT == "qcow2" else []
        rounds["qemu"].append(run_vmm("qemu", [
            "qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35",
            "-smp", str(CPUS), "-m", str(MEM), "-nographic", "-nodefaults", "-no-reboot",
            "-serial", "stdio", "-kernel", KERNEL, "-initrd", INITRD, "-append", cmdline,
            "-drive", "file=%s,if=none,id=d0,format=%s,aio=io_uring,cache=none" % (qdata, qfmt),
            "-device", "virtio-blk-pci,drive=d0" if DISK == "virtio-blk" else "nvme,drive=d0,serial=bench0",
            "-drive", "file=%s,if=none,id=d1,format=raw,readonly=on" % tools,
            "-device", "virtio-blk-pci,drive=d1"] + qnew))
        show("qemu", rounds["qemu"][-1])
    rounds = {w: [r for r in rs if r] for w, rs in rounds.items()}
    if not all(rounds.values()):
        sys.exit("no complete round for %s" % ", ".join(w for w, rs in rounds.items() if not rs))
    results = {w: median_round(r) for w, r in rounds.items()}
    print("medians of the complete rounds (%s of %d):" %
          (", ".join("%s %d" % (w, len(rounds[w])) for w in sides), ROUNDS))
    ratios = [("kv/host", "kvkit", "host"), ("kv/qemu", "kvkit", "qemu")]
    if FORMAT == "qcow2":
        ratios = [("q/qemu", "kvkit-qcow2", "qemu"), ("q/kvraw", "kvkit-qcow2", "kvkit"), ("kv/host", "kvkit", "host")]
    if SANDBOX:  # the sandbox's price: kvkit as it runs over kvkit --sandbox off
        ratios.append(("sb/off", "kvkit", "kvkit-nosb"))
    print("%-16s " % "job" + " ".join("%12s" % w for w in sides) + " " + " ".join("%8s" % r[0] for r in ratios) +
          "   CPU s/GB " + " ".join(sides))
    for n, rw, bs, qd in JOBS:
        vals = {w: results[w][n][0][figure_index(bs)] for w in sides}
        cpu = ["%.2f" % (results[w][n][1] / (results[w][n][0][2] / 1e9)) if results[w][n][0][2] else "-"
               for w in sides]
        fmt = "%.1f MB/s" if bs == "1M" else "%.0f IOPS"
        print("%-16s " % n + " ".join("%12s" % (fmt % vals[w]) for w in sides) + " " +
              " ".join("%8.2f" % (vals[a] / vals[b]) for _, a, b in ratios) + "   " + " ".join(cpu))
    for f in (img, qimg, new + ".raw", new + ".qcow2", tools):
        if os.path.exists(f):
            os.unlink(f)


if __name__ == "__main__":
    main()
