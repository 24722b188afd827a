"""Shared by the benchmarks: a read-only ext4 "tools disk" holding host
binaries with their libraries and a job script, built without mounting, so
the busybox test guest can chroot into it and run fio, iperf3, ..."""
import os
import re
import shutil
import subprocess
import tempfile

# what the guest runs: mount the tools disk (the last virtio disk) and its job
GUEST_RUN = ("mkdir -p /t; mount -o ro /dev/%s /t; mount -t proc p /t/proc; mount -t devtmpfs d /t/dev; "
             "mount -t tmpfs t /t/tmp; sh /t/run.sh")


def tools_disk(path, binaries, script, workdir, size="300M", extra=None):
    """binaries: host programs copied with their libraries;
    extra: {path in the disk: text}, made executable (e.g. stub scripts)."""
    root = tempfile.mkdtemp(dir=workdir)
    with open(os.path.join(root, "run.sh"), "w") as f:
        f.write(script)
    files = []
    for b in binaries:
        exe = shutil.which(b)
        files.append(exe)
        files += re.findall(r"(/\S+) \(0x", subprocess.run(["ldd", exe], capture_output=True, text=True).stdout)
    for f in files:
        dst = root + f
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.realpath(f), dst)
    for d in ("proc", "dev", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for name, text in (extra or {}).items():
        dst = root + name
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
        os.chmod(dst, 0o755)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", root, path, size], check=True)
    shutil.rmtree(root)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
