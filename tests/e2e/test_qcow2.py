"""qcow2 disks end to end (issue 22): images made by qemu-img, used by a real
guest through kvkit, then judged by QEMU's own tools: qemu-img check finds
no error, the content (read back through qemu-img convert) is what the
guest wrote, qemu-img map shows discarded ranges unallocated, backing files
stay untouched, and SIGKILL at random moments never corrupts an image nor
loses a write the guest flushed."""
import hashlib
import json
import os
import random
import signal
import subprocess
import time

from conftest import needs_kvm, run_vm, start_vm, wait_for_line

MiB = 1 << 20


def qemu_img(*args, ok=(0,)):
    p = subprocess.run(["qemu-img"] + list(args), capture_output=True, text=True)
    assert p.returncode in ok, "qemu-img %s: %s%s" % (" ".join(args), p.stdout, p.stderr)
    return p


def md5(data):
    return hashlib.md5(data).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def flat(tmp_path, img):
    """The image's content as a raw file (qemu-img's reading, not kvkit's)."""
    raw = str(tmp_path / (os.path.basename(img) + ".flat"))
    qemu_img("convert", "-O", "raw", img, raw)
    return raw


def read_at(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def unallocated(img, off, length):
    """qemu-img map says no data anywhere in [off, off+length)."""
    m = json.loads(qemu_img("map", "--output=json", img).stdout)
    for e in m:
        if e["start"] < off + length and e["start"] + e["length"] > off and e["data"]:
            return False
    return True


# One guest, five disks: each image kind gets an ext4 file system with a blob,
# a deleted file trimmed away (960 MiB of blob on the first), and a raw stretch at 1200 MiB half discarded.
GUEST = "; ".join([
    "dd if=/dev/urandom of=/tmp/p bs=1M count=64 2>/dev/null",
    "echo PATTERN2 $(dd if=/tmp/p bs=1M skip=4 count=4 2>/dev/null | md5sum)",
    "echo PATTERN8 $(dd if=/tmp/p bs=1M count=8 2>/dev/null | md5sum)",
    "echo COMPRESSED $(dd if=/dev/vdd bs=1M skip=1300 count=32 2>/dev/null | md5sum)",
    "echo CHAINREAD $(dd if=/dev/vde bs=1M count=64 2>/dev/null | md5sum)",
    "dd if=/tmp/p of=/dev/vde bs=1M seek=16 count=8 conv=fsync 2>/dev/null && echo CHAINWRITTEN",
    "t() { d=$1; n=$2; mkfs.ext4 -q -E nodiscard /dev/$d 1150M && mount /dev/$d /mnt || return 1; "
    "i=0; while [ $i -lt $n ]; do cat /tmp/p; i=$((i+1)); done > /mnt/blob; echo BLOB $d $(md5sum /mnt/blob); "
    "dd if=/tmp/p of=/mnt/gone bs=1M 2>/dev/null; sync; rm /mnt/gone; fstrim /mnt && umount /mnt || return 1; "
    "dd if=/tmp/p of=/dev/$d bs=1M seek=1200 count=8 conv=fsync 2>/dev/null && "
    "blkdiscard -o $((1200 << 20)) -l $((4 << 20)) /dev/$d && echo DONE-$d; }",
    "t vda 15", "t vdb 2", "t vdc 2", "t vdd 2", "sync"])


@needs_kvm
def test_qcow2_disks_mkfs_write_discard_then_qemu_img_check(tmp_path):
    size = "1536M"
    imgs = {
        "vda": ("a.qcow2", ["-o", "cluster_size=65536,compat=1.1"]),
        "vdb": ("b.qcow2", ["-o", "cluster_size=2M,compat=0.10"]),
        "vdc": ("c.qcow2", ["-o", "cluster_size=65536,lazy_refcounts=on"]),
    }
    for name, opts in imgs.values():
        qemu_img("create", "-q", "-f", "qcow2", *opts, str(tmp_path / name), size)
    # vdd: compressed clusters (qemu-img convert -c) with 32 MiB of data
    comp = os.urandom(32 * MiB)
    raw = tmp_path / "d.raw"
    with open(raw, "wb") as f:
        f.truncate(1536 * MiB)
        f.seek(1300 * MiB)
        f.write(comp)
    qemu_img("convert", "-c", "-O", "qcow2", str(raw), str(tmp_path / "d.qcow2"))
    raw.unlink()
    imgs["vdd"] = ("d.qcow2", None)
    # vde: raw base <- qcow2 <- qcow2 top
    base = os.urandom(64 * MiB)
    with open(tmp_path / "base.raw", "wb") as f:
        f.write(base)
        f.truncate(256 * MiB)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", str(tmp_path / "mid.qcow2"))
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5c 32M 16M", str(tmp_path / "mid.qcow2")],
                   check=True, capture_output=True)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", str(tmp_path / "top.qcow2"))
    below = {n: sha256_file(tmp_path / n) for n in ("base.raw", "mid.qcow2")}
    chain_view = base[:32 * MiB] + b"\x5c" * (16 * MiB) + base[48 * MiB:]
    imgs["vde"] = ("top.qcow2", None)

    # vda uncached: cluster data through O_DIRECT, tables through the page cache
    devices = ["virtio-serial,stdio"] + ["virtio-blk,path=%s,format=qcow2%s" % (tmp_path / imgs[d][0],
                                                                               ",cache=uncached" if d == "vda" else "")
                                         for d in ("vda", "vdb", "vdc", "vdd", "vde")]
    rc, out, err, _ = run_vm(run=GUEST, devices=devices, timeout=600)
    assert rc == 0, err[-3000:]
    lines = out.splitlines()

    def field(tag):
        return [l.split()[1] for l in lines if l.startswith(tag + " ")][0]

    for d in ("vda", "vdb", "vdc", "vdd"):
        assert "DONE-" + d in out, out[-3000:]
    # compressed clusters and the chain read right, before any write
    assert field("COMPRESSED") == md5(comp), out
    assert field("CHAINREAD") == md5(chain_view[:64 * MiB]), out
    assert "CHAINWRITTEN" in out, out
    pattern2 = field("PATTERN2")
    for d in ("vda", "vdb", "vdc", "vdd"):
        img = str(tmp_path / imgs[d][0])
        qemu_img("check", "-q", img)  # exit 0: no corruption, no leak
        f = flat(tmp_path, img)
        # the file system: clean, and the blob is what the guest wrote
        fsck = subprocess.run(["e2fsck", "-fn", f], capture_output=True, text=True)
        assert fsck.returncode == 0, d + ": " + fsck.stdout + fsck.stderr
        blob_md5 = [l.split()[2] for l in lines if l.startswith("BLOB %s " % d)][0]  # BLOB vda MD5 /mnt/blob
        dump = tmp_path / ("blob-" + d)
        subprocess.run(["debugfs", "-R", "dump /blob %s" % dump, f], check=True, capture_output=True)
        with open(dump, "rb") as b:
            assert md5(b.read()) == blob_md5, d
        dump.unlink()
        # the raw stretch: discarded half reads zero and is unallocated
        assert read_at(f, 1200 * MiB, 4 * MiB) == bytes(4 * MiB), d
        assert md5(read_at(f, 1204 * MiB, 4 * MiB)) == pattern2, d
        assert unallocated(img, 1200 * MiB, 4 * MiB), d
        if d == "vdd":
            assert read_at(f, 1300 * MiB, 32 * MiB) == comp
        os.unlink(f)
    # the chain: the top took the write, the files below did not change
    top = str(tmp_path / "top.qcow2")
    qemu_img("check", "-q", top)
    f = flat(tmp_path, top)
    got = read_at(f, 0, 64 * MiB)
    assert got[:16 * MiB] == chain_view[:16 * MiB]
    assert md5(got[16 * MiB:24 * MiB]) == field("PATTERN8")
    assert got[24 * MiB:] == chain_view[24 * MiB:64 * MiB]
    assert {n: sha256_file(tmp_path / n) for n in ("base.raw", "mid.qcow2")} == below


@needs_kvm
def test_qcow2_sigkill_never_corrupts_nor_loses_flushed_writes(tmp_path):
    """20 rounds: the guest writes records at fresh offsets (new clusters,
    partial-cluster copy-on-write) and fsyncs each, printing what it
    flushed; kvkit is killed at a random moment. Each time qemu-img check
    finds no corruption (leaked clusters are allowed) and every record the
    guest saw flushed is in the image; the next round boots on it."""
    img = str(tmp_path / "crash.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", img, "512M")
    rng = random.Random(22)
    flushed = {}
    for rnd in range(20):
        run = ("i=0; while :; do off=$(( (%d * 300 + i) * 17 )); rec=REC-%d-$i-$RANDOM; "
               "printf '%%s\\n' $rec | dd of=/dev/vda bs=4096 seek=$off conv=fsync,notrunc 2>/dev/null && "
               "echo FLUSHED $off $rec; i=$((i+1)); done") % (rnd, rnd)
        p = start_vm(run=run, devices=["virtio-serial,stdio", "virtio-blk,path=%s,format=qcow2" % img])
        try:
            text = wait_for_line(p.stdout, "FLUSHED", timeout=120)
            deadline = time.monotonic() + rng.uniform(0.2, 3.0)
            import select
            while time.monotonic() < deadline:
                r, _, _ = select.select([p.stdout], [], [], 0.05)
                if r:
                    chunk = os.read(p.stdout.fileno(), 65536)
                    text += chunk.decode(errors="replace")
            p.send_signal(signal.SIGKILL)
            rest = p.stdout.read().decode(errors="replace")
            p.wait(timeout=30)
            # a line fully printed before the kill was flushed before it
            text += rest
        finally:
            if p.poll() is None:
                p.kill()
        # only whole lines: one cut by the kill may be a record cut short
        for line in text.splitlines()[:None if text.endswith("\n") else -1]:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "FLUSHED" and parts[2].startswith("REC-%d-" % rnd):
                flushed[int(parts[1])] = parts[2]
        c = qemu_img("check", img, ok=(0, 3))  # 3: leaked clusters only
        assert "ERROR" not in c.stdout and "corrupt" not in c.stdout.lower(), c.stdout
        f = flat(tmp_path, img)
        with open(f, "rb") as fh:
            for off, rec in flushed.items():
                fh.seek(off * 4096)
                got = fh.read(len(rec) + 1)
                assert got == (rec + "\n").encode(), "round %d: record at %d lost: %r" % (rnd, off, got)
        os.unlink(f)
    assert len(flushed) >= 20, flushed


@needs_kvm
def test_qcow2_refusals_are_one_line(tmp_path):
    raw = tmp_path / "plain.raw"
    raw.write_bytes(bytes(MiB))
    q = str(tmp_path / "x.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", q, "16M")
    for dev, msg in (
        ("virtio-blk,path=%s" % q, "kvkit does not support qcow2 image format"),
        ("virtio-blk,path=%s,format=qcow2" % raw, "is not a qcow2 image (format=qcow2)"),
    ):
        rc, out, err, _ = run_vm(run="echo UNREACHED", devices=["virtio-serial,stdio", dev], timeout=60)
        assert rc != 0 and "UNREACHED" not in out, err
        assert msg in err, err
        assert len([l for l in err.splitlines() if "rror" in l]) == 1, err
