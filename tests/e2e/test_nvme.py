"""NVMe disks end to end: a real guest's nvme driver finds kvkit's
controllers, writes, discards and powers them off; the host then checks
what landed in the files."""
from conftest import needs_kvm, run_vm
from disks import allocated_mib, check_ext4, md5_of, sparse


@needs_kvm
def test_nvme_disks(tmp_path):
    """Two NVMe controllers beside a virtio-blk disk: the guest's nvme driver
    finds both with their sizes and one I/O queue per vCPU, makes and fills
    an ext4 file system on half of the first and discards past it, and
    cannot write the read-only second; the host then checks the file
    system, the freed blocks and both files.
    The guest's power-off shuts the controllers down (CC.SHN) cleanly."""
    a = sparse(tmp_path / "nvme-a.raw", 256)
    b = tmp_path / "nvme-b.raw"
    with open(b, "wb") as f:
        f.write(b"NVME-READONLY-01")
        f.truncate(64 << 20)
    b_md5 = md5_of(b)
    v = sparse(tmp_path / "vda.raw", 16)
    run = ("for n in 0 1; do echo CTRL$n=$(cat /sys/class/nvme/nvme$n/model) "
           "SIZE$n=$(cat /sys/block/nvme${n}n1/size) RO$n=$(cat /sys/block/nvme${n}n1/ro) "
           "QUEUES$n=$(ls /sys/block/nvme${n}n1/mq | wc -l); done; "
           "echo VDA=$(cat /sys/block/vda/size); "
           "echo HEAD1=$(dd if=/dev/nvme1n1 bs=16 count=1 2>/dev/null); "
           "dd if=/dev/zero of=/dev/nvme1n1 bs=4k count=1 oflag=direct 2>/dev/null || echo RO-WRITE-REFUSED; "
           "for c in 0 1; do taskset -c $c dd if=/dev/nvme0n1 of=/dev/null bs=64k count=64 iflag=direct 2>/dev/null "
           "&& echo READ-ON-CPU$c; done; "
           "mkfs.ext4 -q /dev/nvme0n1 128M && mount /dev/nvme0n1 /mnt && echo hello-nvme > /mnt/hello.txt && "
           "dd if=/dev/urandom of=/mnt/blob bs=64k count=64 2>/dev/null && md5sum /mnt/blob && sync && umount /mnt && "
           "echo UMOUNTED; dd if=/dev/urandom of=/dev/nvme0n1 bs=1M seek=192 count=32 conv=fsync 2>/dev/null && "
           "blkdiscard -o $((192 << 20)) -l $((64 << 20)) /dev/nvme0n1 && echo DISCARDED")
    rc, out, err, _ = run_vm("--log-level", "debug", cpus=2, run=run, timeout=180,
                             devices=["virtio-serial,stdio", "nvme,path=%s" % a, "virtio-blk,path=%s" % v,
                                      "nvme,path=%s,readonly" % b])
    assert rc == 0, err
    assert "CTRL0=kvkit NVMe disk SIZE0=524288 RO0=0 QUEUES0=2" in out, out
    assert "CTRL1=kvkit NVMe disk SIZE1=131072 RO1=1 QUEUES1=2" in out, out
    assert "VDA=32768" in out, out
    assert "HEAD1=NVME-READONLY-01" in out and "RO-WRITE-REFUSED" in out, out
    assert "READ-ON-CPU0" in out and "READ-ON-CPU1" in out, out
    assert "UMOUNTED" in out and "DISCARDED" in out, out
    assert "Adding NVMe device (imagePath: %s, type: image)" % a in err, err
    assert err.count("shadow doorbells on") == 2, err  # the driver took them: fewer exits
    assert "nvme" not in "".join(l for l in err.splitlines() if "level=warn" in l or "level=error" in l), err
    check_ext4(a, out, tmp_path, "hello-nvme")
    assert md5_of(b) == b_md5
    # 32 MiB were written past the file system, then discarded: freed on the host
    assert allocated_mib(a) < 24, allocated_mib(a)
