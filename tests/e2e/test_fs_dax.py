"""virtio-fs with a DAX window (dax=MiB): a real guest mounts the share with
-o dax and reads and writes the host's page cache through the window. The
window (32 MiB) is smaller than the file read (so the guest's driver must
give ranges back: FUSE_REMOVEMAPPING); a file the guest has mapped shrinks
on the host under it, and kvkit must keep running. A third share sits on a
tmpfs with 2 MiB pages, mounted with dax=inode: kvkit must map its chunks
with one huge entry each (the window aligned, MADV_HUGEPAGE), which is what
makes DAX fast, and let only the big file use DAX. Its window is 1 GiB,
beyond what fits below 4 GiB: every window is a 64-bit BAR above RAM."""
import os
import re
import subprocess

import pytest

from conftest import GUEST, ROOT, kvkit_cmd, needs_kvm, said, stream_vm

import sys
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))
from guest_tools import GUEST_RUN, tools_disk  # noqa: E402

SAN = os.environ.get("KVKIT_E2E_SAN") == "1"
BIG_MIB = 64 if SAN else 256
WINDOW_MIB = int(os.environ.get("KVKIT_E2E_DAX_MIB", 32))
HUGE_WINDOW_MIB = 1024
FSPOSIX = os.path.join(GUEST, "kvkit-fsposix")

GUEST_SCRIPT = r"""mkdir -p /mnt/d /mnt/p /mnt/h
for p in /sys/bus/pci/devices/*; do [ "$(cat $p/device)" = 0x105a ] && echo "FS-BAR2 $(sed -n 3p $p/resource)"; done
mount -t virtiofs plain /mnt/p -o dax 2>/dev/null && echo PLAIN-DAX-MOUNTED || echo PLAIN-DAX-REFUSED
mount -t virtiofs plain /mnt/p && echo PLAIN-MOUNT-OK
mount -t virtiofs daxshare /mnt/d -o dax && echo DAX-MOUNT-OK
grep " /mnt/d " /proc/mounts | grep -q dax && echo DAX-IN-MOUNTS
echo 3 > /proc/sys/vm/drop_caches
echo "READ-DAX $(kvkit-fsposix readall /mnt/d/big.bin)"
echo 3 > /proc/sys/vm/drop_caches
echo "READ-PLAIN $(kvkit-fsposix readall /mnt/p/big.bin)"
kvkit-fsposix verify /mnt/d/big.bin %(big)d
mount -t virtiofs hugeshare /mnt/h -o dax=inode && echo HUGE-MOUNT-OK
echo "INODE-DAX $(kvkit-fsposix isdax /mnt/h/huge.bin) $(kvkit-fsposix isdax /mnt/h/small.txt) $(cat /mnt/h/small.txt)"
kvkit-fsposix readall /mnt/h/huge.bin >/dev/null
echo CHECK-PMD
sleep 1
printf DAX-WRITE | dd of=/mnt/d/small.txt bs=1 seek=6 conv=notrunc 2>/dev/null && echo PWRITE-OK
echo "SMALL $(cat /mnt/d/small.txt)"
kvkit-fsposix mmapw /mnt/d/mm.bin MMAP-WRITE-VIA-DAX && echo MMAPW-OK
echo "SHRINK-BEFORE $(cat /mnt/d/shrink.bin | wc -c)"
echo WAIT-TRUNC
sleep 1
echo "SHRINK-AFTER $(cat /mnt/d/shrink.bin | tr -d '\000' | wc -c)"
echo appended >> /mnt/d/small.txt && echo APPEND-OK
sync
umount /mnt/d && echo UMOUNT-OK
"""


@pytest.fixture(scope="module")
def dax(tmp_path_factory):
    top = tmp_path_factory.mktemp("dax")
    d, p = top / "d", top / "p"
    d.mkdir()
    p.mkdir()
    subprocess.run([FSPOSIX, "fill", str(d / "big.bin"), str(BIG_MIB)], check=True)
    os.link(str(d / "big.bin"), str(p / "big.bin"))  # the same file through both shares
    (d / "small.txt").write_text("hello ......... world\n")
    (d / "mm.bin").write_bytes(bytes(8192))
    (d / "shrink.bin").write_bytes(b"s" * (4 << 20))
    # huge=always: the file's page cache is in 2 MiB pages
    h = top / "h"
    h.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "huge=always,size=16m", "kvkit-e2e-huge", str(h)], check=True)
    (h / "huge.bin").write_bytes(b"h" * (4 << 20))
    (h / "small.txt").write_text("small-file-via-read\n")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    disk = str(top / "script.img")
    tools_disk(disk, [], GUEST_SCRIPT % {"big": BIG_MIB}, str(top), size="8M")
    cmd = kvkit_cmd("--log-level", "debug", memory=1024, cpus=1, run=GUEST_RUN.replace("/dev/%s", "/dev/vda"),
                    devices=["virtio-serial,stdio", "virtio-blk,path=%s,readonly" % disk,
                             # cache=always: the guest keeps the shrunk file's old size
                             "virtio-fs,sharedDir=%s,mountTag=daxshare,dax=%d,cache=always" % (d, WINDOW_MIB),
                             "virtio-fs,sharedDir=%s,mountTag=plain" % p,
                             "virtio-fs,sharedDir=%s,mountTag=hugeshare,dax=%d,cache=always" % (h, HUGE_WINDOW_MIB)])
    pmd = {}

    def on_line(text):
        if text == "WAIT-TRUNC":
            os.truncate(str(d / "shrink.bin"), 4096)
        if text == "CHECK-PMD":
            pmd.update(huge_mapped(str(h / "huge.bin")))
    try:
        rc, lines, err = stream_vm(cmd, str(top / "kvkit.err"), on_line, timeout=600)
    finally:
        subprocess.run(["umount", str(h)])
    return {"rc": rc, "out": lines, "err": err, "d": d, "pmd": pmd}


def huge_mapped(path):
    """kB of kvkit's mappings of path, and how much of it huge pages map.
    As root the share's workers open files inside their jail (a mount
    namespace whose root is the share), so smaps names the file from the
    share's root: /NAME."""
    pid = subprocess.run(["pgrep", "-n", "-f", "mountTag=hugeshare"], capture_output=True, text=True).stdout.split()
    tot, cur = {"Rss:": 0, "ShmemPmdMapped:": 0}, False
    with open("/proc/%s/smaps" % pid[0]) as f:
        for line in f:
            w = line.split()
            if "-" in w[0] and len(w) >= 5:  # a mapping's header line
                cur = line.rstrip().endswith("/" + os.path.basename(path))
            elif cur and w[0] in tot:
                tot[w[0]] += int(w[1])
    return tot


def served(res, op, tag="daxshare"):
    """How many requests of this type kvkit served (its debug summary)."""
    m = re.search(r"virtio-fs %s: .*requests: .* %s (\d+)" % (tag, op), res["err"])
    assert m, res["err"][-3000:]
    return int(m.group(1))


@needs_kvm
def test_dax_mount_needs_a_window(dax):
    assert "PLAIN-DAX-REFUSED" in dax["out"] and "PLAIN-MOUNT-OK" in dax["out"]
    assert "DAX-MOUNT-OK" in dax["out"] and "DAX-IN-MOUNTS" in dax["out"], dax["out"][-20:]
    assert "UMOUNT-OK" in dax["out"]
    assert dax["rc"] == 0, dax["err"][-3000:]


@needs_kvm
def test_windows_are_64bit_bars_above_ram(dax):
    """What the guest's PCI layer found: BAR 2 of each share with a window
    is a 64-bit prefetchable range above 4 GiB of the size asked (1 GiB
    included); the share without a window has no BAR 2."""
    bars = [[int(v, 16) for v in line.split()[1:]] for line in dax["out"] if line.startswith("FS-BAR2 ")]
    assert len(bars) == 3, dax["out"][:10]
    placed = sorted((end - start + 1, start, flags) for start, end, flags in bars if start)
    assert [size for size, _, _ in placed] == sorted([WINDOW_MIB << 20, HUGE_WINDOW_MIB << 20]), bars
    for size, start, flags in placed:
        assert start >= 1 << 32 and start % size == 0, bars
        assert flags & 0x2000 and flags & 0x100000, bars  # IORESOURCE_PREFETCH, IORESOURCE_MEM_64


@needs_kvm
def test_reads_go_through_the_window(dax):
    """The whole file reads back intact through a window an eighth of its
    size: the guest maps 2 MiB ranges and gives them back as it goes."""
    print("DAX:", said(dax, "READ-DAX"), "| plain:", said(dax, "READ-PLAIN"))
    assert said(dax, "VERIFY") == "OK %d MiB" % BIG_MIB
    assert said(dax, "READ-DAX").startswith("%d bytes in" % (BIG_MIB << 20))
    assert served(dax, "setupmapping") >= BIG_MIB // 2
    if WINDOW_MIB < BIG_MIB:
        assert served(dax, "removemapping") > 0


@needs_kvm
def test_writes_land_in_the_host_file(dax):
    d = dax["d"]
    assert "PWRITE-OK" in dax["out"] and "MMAPW-OK" in dax["out"] and "APPEND-OK" in dax["out"]
    assert said(dax, "SMALL") == "hello DAX-WRITE world"
    assert (d / "small.txt").read_text() == "hello DAX-WRITE world\nappended\n"
    mm = (d / "mm.bin").read_bytes()
    assert len(mm) == 8192 and mm[4096:4096 + 18] == b"MMAP-WRITE-VIA-DAX" and mm.count(0) == 8192 - 18


@needs_kvm
def test_file_shrunk_on_the_host_under_a_mapping(dax):
    """The guest still believes the old size (cache=always) and reads the
    whole old length; kvkit puts zero pages where the file no longer
    reaches, says so, and the guest runs on."""
    assert said(dax, "SHRINK-BEFORE") == str(4 << 20)
    assert said(dax, "SHRINK-AFTER") == "4096"
    assert "a file mapped by the guest shrank on the host" in dax["err"]
    assert "UMOUNT-OK" in dax["out"]


@needs_kvm
def test_huge_pages_map_a_chunk_whole(dax):
    """The file read through the window is mapped by kvkit, and with 2 MiB
    entries: a window not aligned to 2 MiB would get 4 KiB ones only."""
    assert "HUGE-MOUNT-OK" in dax["out"]
    print("kvkit's mappings of huge.bin (kB):", dax["pmd"])
    assert dax["pmd"]["Rss:"] >= 2048, dax["pmd"]
    assert dax["pmd"]["ShmemPmdMapped:"] == dax["pmd"]["Rss:"], dax["pmd"]


@needs_kvm
def test_dax_inode_mode_picks_the_big_files(dax):
    """mount -o dax=inode: kvkit marks files of 2 MiB and more for DAX; a
    small file is read with FUSE READ into the guest's page cache."""
    assert said(dax, "INODE-DAX") == "DAX NODAX small-file-via-read"
    assert served(dax, "read", "hugeshare") >= 1
    assert served(dax, "setupmapping", "hugeshare") >= 1
