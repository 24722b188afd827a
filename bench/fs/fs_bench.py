#!/usr/bin/python3
"""bench/fs: a shared folder, in one run, three ways:
  host    the jobs run on the host itself, on the folder (the physical limit)
  kvkit   the guest mounts kvkit's virtio-fs: default cache=auto, then
          cache=always (the guest trusts its cache, as 9p's cache=loose),
          then cache=auto with a DAX window as big as the big file (the
          guest reads and writes the host's page cache in place), mounted
          -o dax (every file) and, as kvkit-daxi, -o dax=inode (kvkit
          picks the files of 2 MiB and more)
  virtiofsd  QEMU 10 with vhost-user-fs-pci and the C virtiofsd of
          Debian 12's QEMU 7.2 (build/virtiofsd, run.sh extracts it): what
          QEMU users share folders with; -o cache=auto, and as
          virtiofsd-always -o cache=always (the pairs of kvkit's modes);
          no DAX (that virtiofsd has none)
  9p      the guest mounts QEMU's virtio-9p (-virtfs, security_model=none,
          msize 512 KiB, cache=loose): what Linux users have built in
Jobs (seconds, lower is better): untar 10,000 small files, re-read them all
(caches dropped first), stat every file (caches dropped), write 1 GiB
sequentially (fsync at the end), read it back (caches dropped), and read it
again with the guest's readahead for the share raised from the kernel's
128 KiB to 1 MiB (read_ahead_kb: docs/shares.md; both guests), and once
more without dropping the guest's caches (read-warm: the guest's page
cache, or with DAX the window still mapped, as the host keeps its page
cache for all of its jobs). The guest
uses the full Debian kernel for both VMMs (the cloud kernel has no 9p)."""
import io
import os
import re
import select
import shutil
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from guest_tools import GUEST_RUN, tools_disk  # noqa: E402
from report import publish, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.path.join(ROOT, "build", "kvkit")
GUEST = os.path.join(ROOT, "build", "guest-full")
KERNEL, INITRD = os.path.join(GUEST, "vmlinuz"), os.path.join(GUEST, "initrd.img")
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
FILES = int(os.environ.get("BENCH_FILES", "10000"))
BIG_MIB = int(os.environ.get("BENCH_BIG_MIB", "1024"))
# BENCH_SHARE_TMPFS=1: the folder is a tmpfs with 2 MiB pages (huge=always),
# where a DAX chunk is one huge page for the host and for KVM
SHARE_TMPFS = os.environ.get("BENCH_SHARE_TMPFS") == "1"
CPUS, MEM = 1, 2048  # one vCPU: see docs/testing.md on two-vCPU guests in the rig
# which guests run (BENCH_VMMS, comma-separated; the host always does)
VMMS = os.environ.get("BENCH_VMMS", "kvkit,kvkit-always,kvkit-dax,kvkit-daxi,virtiofsd,virtiofsd-always,9p").split(",")
VIRTIOFSD = os.path.join(ROOT, "build", "virtiofsd", "virtiofsd")
VIRTIOFSD_CACHE = {"virtiofsd": "auto", "virtiofsd-always": "always"}
# each kvkit mode and the virtiofsd mode it is compared with
PEERS = {"kvkit": "virtiofsd", "kvkit-always": "virtiofsd-always"}
# the DAX window (BENCH_DAX_MIB to choose): by default the power of two at
# least 1.25 times the big file, as the guest's driver starts giving pieces
# back once less than 20% of the window is free; kvkit-dax256 is -o dax
# with the 256 MiB window that was kvkit's ceiling below 4 GiB (not run
# unless asked for)
DAX_MIB = int(os.environ.get("BENCH_DAX_MIB") or 1 << max(8, (BIG_MIB * 5 // 4 - 1).bit_length()))
KVKIT_OPTS = {"kvkit": "", "kvkit-always": ",cache=always", "kvkit-dax": ",dax=%d" % DAX_MIB,  # and mount -o dax
              "kvkit-daxi": ",dax=%d" % DAX_MIB,  # and mount -o dax=inode
              "kvkit-dax256": ",dax=256"}  # and mount -o dax
JOBS = ("untar", "reread", "stat", "write", "read", "read-ra1m", "read-warm")

# $M is the folder; t() prints seconds since the last mark (from /proc/uptime).
# DROP=1 (the guests): drop the guest's caches before the read jobs; the host
# keeps its page cache in every run, so the host run keeps it too.
JOBS_SH = r"""t0=0
mark() { t0=$(cut -d' ' -f1 /proc/uptime); }
t() { echo "JOB $1 $(awk -v a=$t0 '{printf "%%.3f", $1 - a}' /proc/uptime)"; }
drop() { sync; [ -n "$DROP" ] && echo 3 > /proc/sys/vm/drop_caches; }
ra() { [ -n "$DROP" ] || return 0; b=/sys/class/bdi/0:$(stat -c %%d $M)/read_ahead_kb
  [ -w "$b" ] || b=$(ls /sys/class/bdi/9p-*/read_ahead_kb 2>/dev/null | head -1)  # 9p names its own
  [ -w "$b" ] && echo $1 > "$b" || echo "READAHEAD-NOT-SET $b"; }
mark; tar -xf %(tar)s -C $M; sync; t untar
echo "FILES $(find $M/tree -type f | wc -l)"
drop; mark; find $M/tree -type f -exec cat {} + > /dev/null; t reread
drop; mark; find $M/tree -type f -exec stat -c %%s {} + > /dev/null; t stat
mark; dd if=/dev/zero of=$M/big bs=1M count=%(mib)d conv=fsync 2>/dev/null; t write
drop; mark; dd if=$M/big of=/dev/null bs=1M 2>/dev/null; t read
ra 1024; drop; mark; dd if=$M/big of=/dev/null bs=1M 2>/dev/null; t read-ra1m
mark; dd if=$M/big of=/dev/null bs=1M 2>/dev/null; t read-warm
rm -rf $M/tree $M/big
echo JOBS-DONE
"""


def make_tar(path):
    """FILES small files (100 B to 4 KiB) in 100 folders, like a source tree."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for i in range(FILES):
            data = (b"line %d of a small source file\n" % i) * (3 + i % 120)
            info = tarfile.TarInfo("tree/d%03d/f%05d.c" % (i % 100, i))
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def parse(lines):
    out = {}
    for l in lines:
        m = re.match(r"JOB (\S+) ([\d.]+)", l)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def stop(p, grace):
    """SIGTERM, then SIGKILL after grace seconds."""
    p.terminate()
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_guest(name, cmd):
    # stderr to a file: a full pipe would stall the VMM
    # BENCH_LOG_DIR: keep the VMM's stderr and the console there, to watch a run
    logdir = os.environ.get("BENCH_LOG_DIR")
    err = open(os.path.join(logdir or WORK, "bench-fs-%s.err" % name), "w+")
    console = open(os.path.join(logdir, "bench-fs-%s.console" % name), "w") if logdir else None
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    lines = []
    deadline = time.monotonic() + 1500
    buf = b""
    while time.monotonic() < deadline and not any("JOBS-DONE" in l for l in lines):
        r, _, _ = select.select([p.stdout], [], [], 5)
        chunk = os.read(p.stdout.fileno(), 65536) if r else b""
        if r and not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            lines.append(raw.decode(errors="replace").strip())
            if console:
                console.write(lines[-1] + "\n")
                console.flush()
            if lines[-1].startswith("JOB"):
                print("  %s: %s" % (name, lines[-1]), flush=True)  # progress, for a log read live
    # kvkit stops on SIGTERM and (at --log-level debug) counts the requests
    stop(p, 30)
    err.seek(0)
    text = err.read()
    err.close()
    if not logdir:
        os.unlink(err.name)
    res = parse(lines)
    files = [l.split()[1] for l in lines if l.startswith("FILES ")]
    if files != [str(FILES)]:  # a bench that does not check its work can flatter
        sys.exit("%s: the untar made %s files of %d; console:\n%s\nstderr:\n%s" %
                 (name, files, FILES, "\n".join(lines[-30:]), text[-3000:]))
    if any(l.startswith("READAHEAD-NOT-SET") for l in lines):
        sys.exit("%s: the guest could not set the share's readahead; console:\n%s" % (name, "\n".join(lines[-30:])))
    if len(res) != len(JOBS):
        sys.exit("%s: jobs missing; console:\n%s\nstderr:\n%s" % (name, "\n".join(lines[-30:]), text[-3000:]))
    for l in text.splitlines():
        if "requests:" in l:
            print("  " + l.split("msg=", 1)[-1].strip('"'))
    return res


def run_virtiofsd(name, share, disk, append, d):
    """QEMU 10 and its own virtiofsd on the folder: the daemon listens, QEMU
    connects (guest RAM in a shared memfd, which vhost-user needs)."""
    sock = os.path.join(d, "virtiofsd.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    log = open(os.path.join(os.environ.get("BENCH_LOG_DIR") or WORK, "bench-fs-%s.virtiofsd" % name), "w")
    daemon = subprocess.Popen([VIRTIOFSD, "--socket-path=%s" % sock, "-o", "source=%s" % share,
                               "-o", "cache=%s" % VIRTIOFSD_CACHE[name]], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=log)
    try:
        for _ in range(100):
            if os.path.exists(sock) or daemon.poll() is not None:
                break
            time.sleep(0.1)
        if not os.path.exists(sock):
            sys.exit("%s: virtiofsd did not listen (see %s)" % (name, log.name))
        return run_guest(name, [
            "qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-smp", str(CPUS), "-m", str(MEM),
            "-object", "memory-backend-memfd,id=mem,size=%dM,share=on" % MEM, "-numa", "node,memdev=mem",
            "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-kernel", KERNEL, "-initrd", INITRD,
            "-append", append,
            "-drive", "file=%s,if=none,id=d1,format=raw,readonly=on" % disk, "-device", "virtio-blk-pci,drive=d1",
            "-chardev", "socket,id=vfs,path=%s" % sock, "-device", "vhost-user-fs-pci,chardev=vfs,tag=share"])
    finally:
        stop(daemon, 10)
        log.close()


def report(results):
    """The table: seconds per job, then ratios against virtiofsd, 9p and
    the host."""
    label = {"host": "host", "kvkit": "auto", "kvkit-always": "always", "kvkit-dax": "dax", "kvkit-daxi": "daxi",
             "kvkit-dax256": "dax256", "virtiofsd": "vfsd", "virtiofsd-always": "vfsd-alw", "9p": "9p"}
    cols = [c for c in ("host", "kvkit", "kvkit-always", "kvkit-dax", "kvkit-daxi", "kvkit-dax256", "virtiofsd",
                        "virtiofsd-always", "9p") if c in results]
    kv = [c for c in cols if c.startswith("kvkit")]
    pairs = [(k, v) for k, v in PEERS.items() if k in results and v in results]
    print("seconds, lower is better (auto, always, dax, daxi: kvkit's cache=auto, cache=always, cache=auto with "
          "dax=%d mounted -o dax and -o dax=inode; dax256: dax=256, -o dax; vfsd, vfsd-alw: virtiofsd -o cache=auto, "
          "-o cache=always); vfsd/auto, vfsd-alw/always, 9p/X above 1: kvkit faster; host/X: 1 = host speed" % DAX_MIB)
    head = ["job"] + [label[c] for c in cols]
    head += ["%s/%s" % (label[v], label[k]) for k, v in pairs]
    if "9p" in results:
        head += ["9p/" + label[c] for c in kv]
    head += ["host/" + label[c] for c in kv]
    print("%-9s" % head[0] + "".join(" %11s" % h for h in head[1:]))
    for j in JOBS:
        line = "%-9s" % j + "".join(" %10.2fs" % results[c][j] for c in cols)
        line += "".join(" %14.2fx" % (results[v][j] / results[k][j]) for k, v in pairs)
        if "9p" in results:
            line += "".join(" %10.2fx" % (results["9p"][j] / results[c][j]) for c in kv)
        line += "".join(" %11.2f" % (results["host"][j] / results[c][j]) for c in kv)
        print(line)
    mb = BIG_MIB * 1.048576
    for j in ("write", "read", "read-ra1m", "read-warm"):
        print("%-9s MB/s  " % j + "  ".join("%s %.0f" % (label[c], mb / results[c][j]) for c in cols))
    head = ["job"] + [label[c] for c in cols] + ["%s/%s" % (label[v], label[k]) for k, v in pairs]
    head += ["9p/" + label[c] for c in kv if "9p" in results]
    rows = [[j] + ["%.2f s" % results[c][j] for c in cols] +
            ["**%.2f**" % (results[v][j] / results[k][j]) for k, v in pairs] +
            ["%.2f" % (results["9p"][j] / results[c][j]) for c in kv if "9p" in results] for j in JOBS]
    publish("fs", "a shared folder: %d small files, a %d MiB file, seconds (lower is better); X/Y columns: above 1, "
            "kvkit's Y is faster than X" % (FILES, BIG_MIB),
            table(head, rows), "auto, always: kvkit's cache=auto and cache=always; dax, daxi: cache=auto with a "
            "%d MiB DAX window, mounted -o dax and -o dax=inode; vfsd, vfsd-alw: QEMU 10 with Debian 12's C virtiofsd, "
            "-o cache=auto and -o cache=always; 9p: QEMU's virtio-9p, cache=loose." % DAX_MIB)


def main():
    d = os.path.join(WORK, "kvkit-bench-fs")
    shutil.rmtree(d, ignore_errors=True)
    share = os.path.join(d, "share")
    os.makedirs(share)
    if SHARE_TMPFS:  # host and guests alike work on it
        subprocess.run(["mount", "-t", "tmpfs", "-o", "huge=always,size=%dM" % (BIG_MIB + 512), "kvkit-bench",
                        share], check=True)
        # the small files on a tmpfs of their own with 4 KiB pages: with
        # huge=always each one took a 2 MiB page, the tmpfs filled up and
        # the kernel split pages, so the big file ended up in 4 KiB pages
        os.makedirs(os.path.join(share, "tree"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "huge=never", "kvkit-bench-tree", os.path.join(share, "tree")],
                       check=True)
    tar = os.path.join(d, "tree.tar")
    make_tar(tar)
    print("bench/fs: %d files, %d MiB sequential, guest %d vCPU %d MiB, kernel %s, folder on %s" %
          (FILES, BIG_MIB, CPUS, MEM, os.path.basename(os.readlink(KERNEL)) if os.path.islink(KERNEL) else "full",
           "tmpfs (huge=always)" if SHARE_TMPFS else WORK), flush=True)
    results = {}
    # host: the same shell jobs on the folder
    host_sh = os.path.join(d, "host.sh")
    with open(host_sh, "w") as f:
        f.write("M=%s\nDROP=\n" % share + JOBS_SH % {"tar": tar, "mib": BIG_MIB})
    r = subprocess.run(["sh", host_sh], capture_output=True, text=True)
    results["host"] = parse(r.stdout.splitlines())
    if "FILES %d" % FILES not in r.stdout.splitlines():
        sys.exit("host: the untar did not make %d files:\n%s%s" % (FILES, r.stdout, r.stderr))
    print("host   " + " ".join("%s=%.2fs" % (j, results["host"][j]) for j in JOBS), flush=True)
    # the guests: the tar and the job script on a small read-only disk
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    disk = os.path.join(d, "jobs.img")
    mount = {"kvkit": "mount -t virtiofs share /mnt", "kvkit-dax": "mount -t virtiofs -o dax share /mnt",
             "kvkit-dax256": "mount -t virtiofs -o dax share /mnt",
             "kvkit-daxi": "mount -t virtiofs -o dax=inode share /mnt",
             "9p": "mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose share /mnt"}
    # the guest first touches most of its RAM once: in the nested rig the first
    # touch of a guest page costs a nested page fault, which would be charged
    # to whichever file system fills the page cache first
    script = ("M=/mnt\nDROP=1\n%%(mount)s || echo MOUNT-FAILED\n"
              "dd if=/dev/zero of=/dev/null bs=%dM count=1 2>/dev/null\n" % (MEM * 3 // 4) +
              JOBS_SH % {"tar": "/t/tree.tar", "mib": BIG_MIB})
    tools_disk(disk, [], "", d, size="64M",
               extra={"/%s.sh" % k: script.replace("%(mount)s", v) for k, v in mount.items()})
    subprocess.run(["debugfs", "-w", "-R", "write %s tree.tar" % tar, disk], check=True, capture_output=True)
    run = GUEST_RUN.replace("/dev/%s", "/dev/vda")
    cmdline = lambda s: 'console=ttyS0 quiet hvcwait=0 run="%s"' % run.replace("sh /t/run.sh", "sh /t/" + s)  # noqa: E731
    # kvkit: its default (cache=auto: names and attributes trusted for 1 s,
    # then asked again), cache=always, the mode that trusts the guest's
    # cache like 9p's cache=loose, and cache=auto with a DAX window
    for name in [v for v in VMMS if v in KVKIT_OPTS]:
        opt = KVKIT_OPTS[name]
        results[name] = run_guest(name, [
            KVKIT, "--log-level", "debug", "--cpus", str(CPUS), "--memory", str(MEM), "--bootloader",
            "linux,kernel=%s,initrd=%s,cmdline=%s" % (KERNEL, INITRD, cmdline(name + ".sh" if "dax" in name
                                                                             else "kvkit.sh")),
            "--device", "virtio-serial,stdio", "--device", "virtio-blk,path=%s,readonly" % disk,
            "--device", "virtio-fs,sharedDir=%s,mountTag=share%s" % (share, opt)])
        print("%-13s" % name + " ".join("%s=%.2fs" % (j, results[name][j]) for j in JOBS), flush=True)
    for name in [v for v in VMMS if v in VIRTIOFSD_CACHE]:
        results[name] = run_virtiofsd(name, share, disk, cmdline("kvkit.sh"), d)
        print("%-13s" % name + " ".join("%s=%.2fs" % (j, results[name][j]) for j in JOBS), flush=True)
    if "9p" in VMMS:
        results["9p"] = run_guest("9p", [
            "qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-smp", str(CPUS), "-m", str(MEM),
            "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-kernel", KERNEL, "-initrd", INITRD,
            "-append", cmdline("9p.sh"),
            "-drive", "file=%s,if=none,id=d1,format=raw,readonly=on" % disk, "-device", "virtio-blk-pci,drive=d1",
            "-virtfs", "local,path=%s,mount_tag=share,security_model=none" % share])
        print("%-13s" % "9p" + " ".join("%s=%.2fs" % (j, results["9p"][j]) for j in JOBS), flush=True)
    report(results)
    if SHARE_TMPFS:
        subprocess.run(["umount", os.path.join(share, "tree")])
        subprocess.run(["umount", share])
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
