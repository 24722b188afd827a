"""Disk helpers shared by the disk tests (test_blk, test_nvme, test_qcow2):
sparse images, checksums, allocated blocks, and the host's check of an
ext4 file system a guest made."""
import hashlib
import os
import subprocess


def sparse(path, size_mib):
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    return str(path)


def md5_of(path, length=None):
    h = hashlib.md5()
    with open(path, "rb") as f:
        h.update(f.read() if length is None else f.read(length))
    return h.hexdigest()


def allocated_mib(path):
    return os.stat(path).st_blocks * 512 / (1 << 20)


def check_ext4(img, out, tmp_path, hello):
    """The guest made an ext4 file system in img with /hello.txt and /blob
    (whose md5sum it printed): the host's fsck is clean and both read back."""
    guest_md5 = [l.split()[0] for l in out.splitlines() if l.endswith("/mnt/blob")][0]
    fsck = subprocess.run(["e2fsck", "-fn", img], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    cat = subprocess.run(["debugfs", "-R", "cat /hello.txt", img], capture_output=True, text=True)
    assert cat.stdout.strip() == hello
    dump = tmp_path / "blob"
    subprocess.run(["debugfs", "-R", "dump /blob %s" % dump, img], check=True, capture_output=True)
    assert md5_of(dump) == guest_md5
