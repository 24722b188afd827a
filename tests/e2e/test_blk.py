"""virtio-blk end to end: a real guest formats, writes, syncs, discards and
reads kvkit disks; the host then checks what actually landed in the files."""
import hashlib
import os
import signal
import subprocess
import time

import pytest

from conftest import needs_kvm, run_vm, start_vm, wait_for_line, kvkit_cmd


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


@needs_kvm
@pytest.mark.parametrize("opts", ["", ",cache=uncached"], ids=["cached", "uncached"])
def test_mkfs_write_poweroff_then_host_fsck(tmp_path, opts):
    img = sparse(tmp_path / "disk.raw", 256)
    run = ("mkfs.ext4 -q /dev/vda && mount /dev/vda /mnt && echo hello-from-guest > /mnt/hello.txt && "
           "dd if=/dev/urandom of=/mnt/blob bs=64k count=64 2>/dev/null && md5sum /mnt/blob && "
           "ls /sys/block/vda/mq | wc -l | sed s/^/QUEUES=/ && sync && umount /mnt && echo UMOUNTED")
    rc, out, err, _ = run_vm(run=run, devices=["virtio-serial,stdio", "virtio-blk,path=" + img + opts],
                             timeout=180)
    assert rc == 0, err
    assert "UMOUNTED" in out, out
    assert "QUEUES=1" in out, out  # one queue per vCPU (two vCPUs: test_two_disks...)
    assert 'Adding virtio-blk device (imagePath: %s, type: image)' % img in err
    guest_md5 = [l.split()[0] for l in out.splitlines() if l.endswith("/mnt/blob")][0]
    fsck = subprocess.run(["e2fsck", "-fn", img], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    cat = subprocess.run(["debugfs", "-R", "cat /hello.txt", img], capture_output=True, text=True)
    assert cat.stdout.strip() == "hello-from-guest"
    dump = tmp_path / "blob"
    subprocess.run(["debugfs", "-R", "dump /blob %s" % dump, img], check=True, capture_output=True)
    assert md5_of(dump) == guest_md5


@needs_kvm
@pytest.mark.parametrize("opts", ["", ",cache=uncached"], ids=["cached", "uncached"])
def test_synced_write_survives_sigkill(tmp_path, opts):
    # the moment the guest reports its fsync done, kvkit is killed: the
    # acknowledged data must already be in the file
    img = sparse(tmp_path / "disk.raw", 64)
    run = ("dd if=/dev/urandom of=/tmp/p bs=64k count=64 2>/dev/null; md5sum /tmp/p | sed s/^/PATTERN=/; "
           "dd if=/tmp/p of=/dev/vda bs=64k conv=fsync 2>/dev/null && echo SYNCED; sleep 600")
    p = start_vm(run=run, devices=["virtio-serial,stdio", "virtio-blk,path=" + img + opts])
    try:
        text = wait_for_line(p.stdout, "SYNCED", timeout=120)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    pattern = [l for l in text.splitlines() if l.startswith("PATTERN=")][0].split("=")[1].split()[0]
    assert md5_of(img, 64 * 65536) == pattern


@needs_kvm
def test_readonly_disk_refuses_writes_and_file_is_untouched(tmp_path):
    img = tmp_path / "ro.raw"
    img.write_bytes(os.urandom(4 << 20))
    before = md5_of(img)
    run = ("cat /sys/block/vda/ro | sed s/^/RO=/; dd if=/dev/zero of=/dev/vda bs=4k count=1 oflag=direct 2>/dev/null "
           "&& echo WRITE-OK || echo WRITE-FAILED; dd if=/dev/vda bs=4k count=1 2>/dev/null | md5sum | sed s/^/READ=/")
    p = start_vm(run=run,
                 devices=["virtio-serial,stdio", "virtio-blk,path=%s,readonly" % img])
    try:
        # the image is opened read-only by kvkit itself, not just refused by the guest
        wait_for_line(p.stderr, "virtual machine is running", timeout=30)
        flags = None
        for fd in os.listdir("/proc/%d/fd" % p.pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (p.pid, fd)) == str(img):
                    with open("/proc/%d/fdinfo/%s" % (p.pid, fd)) as f:
                        flags = int([l for l in f if l.startswith("flags:")][0].split()[1], 8)
            except OSError:
                pass
        assert flags is not None and flags & os.O_ACCMODE == os.O_RDONLY, flags
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    out = out.decode()
    assert p.returncode == 0, err
    assert "RO=1" in out and "WRITE-FAILED" in out, out
    assert "READ=" + hashlib.md5(open(img, "rb").read(4096)).hexdigest() in out
    assert md5_of(img) == before


@needs_kvm
def test_iso_is_mountable(tmp_path):
    src = tmp_path / "iso"
    src.mkdir()
    (src / "hello.txt").write_text("hello-from-iso\n")
    iso = tmp_path / "seed.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "KVKITISO", "-o", str(iso), str(src)], check=True,
                   capture_output=True)
    rc, out, err, _ = run_vm(run="mount -t iso9660 -o ro /dev/vda /mnt && cat /mnt/hello.txt",
                             devices=["virtio-serial,stdio", "virtio-blk,path=%s" % iso])
    assert rc == 0, err
    assert "hello-from-iso" in out, out


@needs_kvm
def test_two_disks_in_order_with_serials(tmp_path):
    a = sparse(tmp_path / "a.raw", 64)
    b = sparse(tmp_path / "b.raw", 128)
    # two vCPUs: each disk gets one queue per vCPU; both vCPUs read both disks
    run = ("for d in vda vdb; do echo DISK $d $(cat /sys/block/$d/size) $(cat /sys/block/$d/serial) "
           "QUEUES=$(ls /sys/block/$d/mq | wc -l); done; "
           "for c in 0 1; do taskset -c $c dd if=/dev/vdb of=/dev/null bs=64k count=256 iflag=direct 2>/dev/null "
           "&& echo READ-ON-CPU$c; done")
    rc, out, err, _ = run_vm(cpus=2, run=run, devices=["virtio-serial,stdio",
                                                       "virtio-blk,path=%s,deviceId=first-disk" % a,
                                                       "virtio-blk,path=%s,deviceId=second" % b])
    assert rc == 0, err
    assert "DISK vda 131072 first-disk QUEUES=2" in out, out
    assert "DISK vdb 262144 second QUEUES=2" in out, out
    assert "READ-ON-CPU0" in out and "READ-ON-CPU1" in out, out


@needs_kvm
def test_discard_frees_host_blocks_and_write_zeroes_zeroes(tmp_path):
    img = sparse(tmp_path / "thin.raw", 256)
    run = ("dd if=/dev/urandom of=/dev/vda bs=1M count=32 conv=fsync 2>/dev/null; echo WRITTEN; read x; "
           "blkdiscard -o 0 -l 16777216 /dev/vda && echo DISCARDED; "
           "/sbin/blkdiscard -z -o 16777216 -l 1048576 /dev/vda && dd if=/dev/vda bs=1M skip=16 count=1 2>/dev/null "
           "| md5sum | sed s/^/ZEROED=/")
    p = subprocess.Popen(kvkit_cmd(run=run, devices=["virtio-serial,stdio", "virtio-blk,path=" + img]),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_line(p.stdout, "WRITTEN", timeout=120)
        written = allocated_mib(img)
        out, err = p.communicate(input=b"go\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    out = out.decode()
    assert "DISCARDED" in out, out
    assert written >= 31, written
    after = allocated_mib(img)
    assert after <= written - 15, (written, after)  # the first 16 MiB went back to the host
    zero_md5 = hashlib.md5(bytes(1 << 20)).hexdigest()
    assert "ZEROED=" + zero_md5 in out, out
    with open(img, "rb") as f:
        f.seek(16 << 20)
        assert f.read(1 << 20) == bytes(1 << 20)
        assert f.read(1 << 20) != bytes(1 << 20)  # past the zeroed range the data stays


@needs_kvm
def test_io_uring_fallback_threads(tmp_path):
    # where io_uring is refused, the worker threads give the same results
    img = sparse(tmp_path / "disk.raw", 64)
    env = dict(os.environ, KVKIT_NO_IO_URING="1")
    run = ("dd if=/dev/urandom of=/tmp/p bs=64k count=32 2>/dev/null; md5sum /tmp/p | sed s/^/PATTERN=/; "
           "dd if=/tmp/p of=/dev/vda bs=64k conv=fsync 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches; "
           "dd if=/dev/vda bs=64k count=32 2>/dev/null | md5sum | sed s/^/READBACK=/")
    p = subprocess.run(kvkit_cmd("--log-level", "debug", run=run,
                                 devices=["virtio-serial,stdio", "virtio-blk,path=" + img]),
                       env=env, capture_output=True, timeout=120)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, err
    assert "worker threads" in err
    pattern = [l for l in out.splitlines() if l.startswith("PATTERN=")][0].split("=")[1].split()[0]
    assert "READBACK=" + pattern in out, out
    assert md5_of(img, 32 * 65536) == pattern


def test_bad_disks_refused_with_one_line(tmp_path):
    # these run without KVM: disks are checked before anything is created
    d = tmp_path / "dir"
    d.mkdir()
    q = tmp_path / "img.qcow2"
    q.write_bytes(b"QFI\xfb" + bytes(508))
    reg = tmp_path / "plain.raw"
    reg.write_bytes(bytes(4096))
    cases = [
        ("virtio-blk,path=%s/missing.raw" % tmp_path, "failed to open file %s/missing.raw: No such file or directory" % tmp_path),
        ("virtio-blk,path=%s" % d, "failed to read the header of file %s: Is a directory" % d),
        ("virtio-blk,path=%s" % q, "kvkit does not support qcow2 image format"),
        ("virtio-blk,path=%s,type=dev" % reg, "file %s is not a block device" % reg),
        ("virtio-blk,path=%s,bogus=1" % reg, "unknown option for virtio-blk devices: bogus"),
    ]
    pid = tmp_path / "pid"
    for dev, msg in cases:
        p = subprocess.run(kvkit_cmd("--pidfile", str(pid), devices=[dev]), capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, (dev, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], (dev, p.stderr)
        assert not pid.exists()


def nbd_server(img, sock):
    """qemu-nbd serving img on a unix socket, surviving client reconnects."""
    p = subprocess.Popen(["qemu-nbd", "-t", "-f", "raw", "-x", "disk", "-k", str(sock), str(img)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        if os.path.exists(sock):
            return p
        time.sleep(0.05)
    p.kill()
    raise AssertionError("qemu-nbd did not start: %s" % p.stderr.read())


@needs_kvm
def test_nbd_disk_read_and_written_by_guest(tmp_path):
    img = tmp_path / "nbd.raw"
    with open(img, "wb") as f:
        f.write(b"NBD-MARKER-12345")
        f.truncate(64 << 20)
    sock = tmp_path / "nbd.sock"
    srv = nbd_server(img, sock)
    try:
        run = ("dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 16 | sed s/^/HEAD=/; echo; "
               "echo SERIAL=$(cat /sys/block/vda/serial); "
               "dd if=/dev/urandom of=/tmp/p bs=64k count=16 2>/dev/null; md5sum /tmp/p | sed s/^/PATTERN=/; "
               "dd if=/tmp/p of=/dev/vda bs=64k seek=16 conv=fsync 2>/dev/null && echo WRITTEN")
        uri = "nbd+unix:///disk?socket=%s" % sock
        rc, out, err, _ = run_vm(run=run, devices=["virtio-serial,stdio", "nbd,uri=%s,deviceId=nbd0" % uri])
    finally:
        srv.kill()
        srv.wait()
    assert rc == 0, err
    assert "HEAD=NBD-MARKER-12345" in out and "SERIAL=nbd0" in out and "WRITTEN" in out, out
    assert "Successfully connected to NBD server %s." % uri in err
    assert "PATTERN=" in out, out
    pattern = [l for l in out.splitlines() if l.startswith("PATTERN=")][0].split("=")[1].split()[0]
    with open(img, "rb") as f:
        f.seek(1 << 20)
        assert hashlib.md5(f.read(16 * 65536)).hexdigest() == pattern


@needs_kvm
def test_nbd_server_restart_loses_no_acknowledged_write(tmp_path):
    img = sparse(tmp_path / "nbd.raw", 64)
    sock = tmp_path / "nbd.sock"
    srv = nbd_server(img, sock)
    uri = "nbd+unix:///disk?socket=%s" % sock
    # eight synced chunks; the server dies and comes back after the second
    run = ("dd if=/dev/urandom of=/tmp/p bs=64k count=32 2>/dev/null; md5sum /tmp/p | sed s/^/PATTERN=/; "
           "for i in 0 1 2 3 4 5 6 7; do dd if=/tmp/p of=/dev/vda bs=64k skip=$((i*4)) seek=$((i*4)) count=4 "
           "conv=fsync,notrunc 2>/dev/null || echo FAILED-$i; echo CHUNK-$i; [ $i = 1 ] && read x; done; echo ALL-DONE")
    p = subprocess.Popen(kvkit_cmd(run=run, devices=["virtio-serial,stdio", "nbd,uri=%s,timeout=20000" % uri]),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        text = wait_for_line(p.stdout, "CHUNK-1", timeout=120)
        srv.kill()
        srv.wait()
        p.stdin.write(b"go\n")  # the guest writes on while the server is gone
        p.stdin.flush()
        time.sleep(2)
        srv = nbd_server(img, sock)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
        srv.kill()
        srv.wait()
    out = text + out.decode()
    err = err.decode()
    assert p.returncode == 0, err
    assert "ALL-DONE" in out and "FAILED" not in out, out
    assert "Disconnected from NBD server %s" % uri in err, err
    assert err.count("Successfully connected to NBD server") >= 2, err
    pattern = [l for l in out.splitlines() if l.startswith("PATTERN=")][0].split("=")[1].split()[0]
    assert md5_of(img, 32 * 65536) == pattern


@needs_kvm
def test_nbd_server_absent_fails_within_timeout(tmp_path):
    t0 = time.monotonic()
    p = subprocess.run(kvkit_cmd(devices=["nbd,uri=nbd+unix:///x?socket=%s/none.sock,timeout=1000" % tmp_path]),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert "failed to connect to NBD server" in lines[-1], p.stderr
    assert time.monotonic() - t0 < 10
