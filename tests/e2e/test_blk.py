"""virtio-blk end to end: a real guest formats, writes, syncs, discards and
reads kvkit disks; the host then checks what actually landed in the files."""
import hashlib
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port, needs_kvm, run_vm, start_vm, wait_for_line, kvkit_cmd
from disks import allocated_mib, check_ext4, md5_of, sparse


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
    check_ext4(img, out, tmp_path, "hello-from-guest")


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
def test_host_block_device_with_4k_sectors(tmp_path):
    """type=dev on a real block device (a loop device with 4 KiB sectors over
    a sparse file): the guest sees its size and sector size, what it writes
    lands in the file, and what it discards is freed there."""
    img = tmp_path / "backing.raw"
    with open(img, "wb") as f:
        f.write(b"LOOP-DEVICE-MARK")
        f.truncate(64 << 20)
    dev = subprocess.run(["losetup", "--sector-size", "4096", "--find", "--show", str(img)],
                         capture_output=True, text=True)
    assert dev.returncode == 0, "losetup failed: %s" % dev.stderr
    dev = dev.stdout.strip()
    run = ("echo SIZE=$(cat /sys/block/vda/size) LBS=$(cat /sys/block/vda/queue/logical_block_size) "
           "DISCARD=$(cat /sys/block/vda/queue/discard_max_bytes); "
           "echo HEAD=$(dd if=/dev/vda bs=4096 count=1 2>/dev/null | head -c 16); "
           "dd if=/dev/urandom of=/tmp/p bs=64k count=4 2>/dev/null; md5sum /tmp/p | sed s/^/PATTERN=/; "
           "dd if=/tmp/p of=/dev/vda bs=64k seek=16 conv=fsync 2>/dev/null && echo WRITTEN; "
           "dd if=/dev/urandom of=/dev/vda bs=1M seek=32 count=16 conv=fsync 2>/dev/null && echo FILLED; "
           "blkdiscard -o $((32 << 20)) -l $((16 << 20)) /dev/vda && echo DISCARDED")
    try:
        rc, out, err, _ = run_vm(run=run, devices=["virtio-serial,stdio",
                                                   "virtio-blk,path=%s,type=dev,deviceId=loop" % dev])
        with open(dev, "rb") as f:  # through the device: what a reader of it sees
            f.seek(1 << 20)
            through_dev = hashlib.md5(f.read(4 * 65536)).hexdigest()
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)
    assert rc == 0, err
    assert "SIZE=131072 LBS=4096" in out, out
    assert "HEAD=LOOP-DEVICE-MARK" in out, out
    assert "WRITTEN" in out and "FILLED" in out and "DISCARDED" in out, out
    assert "DISCARD=0" not in out, out
    pattern = [l for l in out.splitlines() if l.startswith("PATTERN=")][0].split("=")[1].split()[0]
    assert through_dev == pattern
    with open(img, "rb") as f:
        f.seek(1 << 20)
        assert hashlib.md5(f.read(4 * 65536)).hexdigest() == pattern
    # 16 MiB were written then discarded: the file holds little beyond the pattern
    assert allocated_mib(img) < 8, allocated_mib(img)


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
        ("nvme,path=%s/missing.raw" % tmp_path, "failed to open file %s/missing.raw: No such file or directory" % tmp_path),
        ("nvme,path=%s" % q, "kvkit does not support qcow2 image format"),
        ("nvme,path=%s,type=dev" % reg, "file %s is not a block device" % reg),
        ("nvme,path=%s,deviceId=x" % reg, "unknown option for nvme devices: deviceId"),
    ]
    pid = tmp_path / "pid"
    for dev, msg in cases:
        p = subprocess.run(kvkit_cmd("--pidfile", str(pid), devices=[dev]), capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, (dev, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], (dev, p.stderr)
        assert not pid.exists()


def nbd_server(img, sock=None, port=None, tls=None):
    """qemu-nbd serving img on a unix socket (or 127.0.0.1:port), surviving
    client reconnects; tls: the --object that makes it require TLS."""
    where = ["-k", str(sock)] if sock else ["-b", "127.0.0.1", "-p", str(port)]
    creds = ["--object", tls + ",id=tls0,endpoint=server", "--tls-creds", "tls0"] if tls else []
    p = subprocess.Popen(["qemu-nbd", "-t", "-f", "raw", "-x", "disk"] + where + creds + [str(img)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while time.monotonic() < t0 + 60 and p.poll() is None:
        if sock and os.path.exists(sock):
            return p
        if port:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return p
            except OSError:
                pass
        time.sleep(0.05)
    p.kill()
    raise AssertionError("qemu-nbd did not start in %.0f s (exit status %s): %s" %
                         (time.monotonic() - t0, p.wait(), p.stderr.read()))


def dh_params(d):
    """qemu-nbd's TLS server generates Diffie-Hellman parameters at start
    unless its directory has some, which takes minutes in the nested rig:
    the RFC 7919 group, which OpenSSL writes at once."""
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
                    "-out", str(d / "dh-params.pem")], check=True, capture_output=True)


def make_x509(d):
    """A CA, a server certificate for localhost and a client certificate, in
    the file names qemu-nbd (d/srv) and libnbd (d/cli) look for."""
    srv, cli = d / "srv", d / "cli"
    srv.mkdir()
    cli.mkdir()

    def ssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]  # quick to make and use under TCG
    ssl("req", "-x509", *ec, "-nodes", "-days", "2", "-subj", "/CN=kvkit-test-ca",
        "-keyout", str(d / "ca-key.pem"), "-out", str(srv / "ca-cert.pem"))
    for name, where, usage in (("server", srv, "serverAuth"), ("client", cli, "clientAuth")):
        ext = d / (name + ".ext")
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=%s\n" % usage)
        ssl("req", *ec, "-nodes", "-subj", "/CN=" + name, "-keyout", str(where / (name + "-key.pem")),
            "-out", str(d / (name + ".csr")))
        ssl("x509", "-req", "-in", str(d / (name + ".csr")), "-CA", str(srv / "ca-cert.pem"), "-CAkey",
            str(d / "ca-key.pem"), "-CAcreateserial", "-days", "2", "-extfile", str(ext),
            "-out", str(where / (name + "-cert.pem")))
    (cli / "ca-cert.pem").write_bytes((srv / "ca-cert.pem").read_bytes())
    dh_params(srv)
    return srv, cli


def make_psk(d, user):
    d.mkdir()
    (d / "keys.psk").write_text("%s:%s\n" % (user, os.urandom(32).hex()))
    dh_params(d)
    return d / "keys.psk"


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


@needs_kvm
def test_nbd_over_tls_psk_and_x509(tmp_path):
    """Two TLS-only servers: one authenticates kvkit by pre-shared key (unix
    socket), the other by certificate both ways (TCP); the guest reads and
    writes both disks."""
    imgs = []
    for name, marker in (("psk", b"NBD-TLS-PSK-0001"), ("x509", b"NBD-TLS-X509-002")):
        img = tmp_path / (name + ".raw")
        with open(img, "wb") as f:
            f.write(marker)
            f.truncate(16 << 20)
        imgs.append(img)
    psk = make_psk(tmp_path / "psk", "kvkit")
    srv_dir, cli_dir = make_x509(tmp_path)
    sock, port = tmp_path / "psk.sock", free_port()
    servers = [nbd_server(imgs[0], sock=sock, tls="tls-creds-psk,dir=%s" % psk.parent),
               nbd_server(imgs[1], port=port, tls="tls-creds-x509,dir=%s" % srv_dir)]
    uris = ["nbds+unix://kvkit@/disk?socket=%s&tls-psk-file=%s" % (sock, psk),
            "nbds://localhost:%d/disk?tls-certificates=%s" % (port, cli_dir)]
    run = ("dd if=/dev/urandom of=/tmp/p bs=64k count=4 2>/dev/null; md5sum /tmp/p | sed s/^/PATTERN=/; "
           "for d in vda vdb; do echo $d=$(dd if=/dev/$d bs=16 count=1 2>/dev/null); "
           "dd if=/tmp/p of=/dev/$d bs=64k seek=16 conv=fsync 2>/dev/null && echo WRITTEN-$d; done")
    try:
        rc, out, err, _ = run_vm(run=run, devices=["virtio-serial,stdio"] + ["nbd,uri=%s" % u for u in uris])
    finally:
        for s in servers:
            s.kill()
            s.wait()
    assert rc == 0, err
    assert "vda=NBD-TLS-PSK-0001" in out and "vdb=NBD-TLS-X509-002" in out, out
    assert "WRITTEN-vda" in out and "WRITTEN-vdb" in out, out
    for u in uris:
        assert "Successfully connected to NBD server %s." % u in err, err
    pattern = [l for l in out.splitlines() if l.startswith("PATTERN=")][0].split("=")[1].split()[0]
    for img in imgs:
        with open(img, "rb") as f:
            f.seek(1 << 20)
            assert hashlib.md5(f.read(4 * 65536)).hexdigest() == pattern


@needs_kvm
def test_nbd_tls_refused_without_the_right_credentials(tmp_path):
    """A wrong pre-shared key, or a server certificate kvkit has no CA for:
    kvkit says so in one line and exits 1 before the guest starts."""
    img = sparse(tmp_path / "d.raw", 16)
    right = make_psk(tmp_path / "right", "kvkit")
    wrong = make_psk(tmp_path / "wrong", "kvkit")
    srv_dir, cli_dir = make_x509(tmp_path)
    sock, port = tmp_path / "psk.sock", free_port()
    servers = [nbd_server(img, sock=sock, tls="tls-creds-psk,dir=%s" % right.parent),
               nbd_server(img, port=port, tls="tls-creds-x509,dir=%s" % srv_dir)]
    pid = tmp_path / "pid"
    try:
        for uri in ("nbds+unix://kvkit@/disk?socket=%s&tls-psk-file=%s" % (sock, wrong),
                    "nbd+unix:///disk?socket=%s" % sock,  # plain NBD to a TLS-only server
                    "nbds://localhost:%d/disk" % port):  # the system's CAs do not know this server
            p = subprocess.run(kvkit_cmd("--pidfile", str(pid), devices=["nbd,uri=%s,timeout=1000" % uri]),
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 1, (uri, p.stderr)
            lines = p.stderr.strip().splitlines()
            assert lines[-1].startswith("Error: failed to connect to NBD server %s: " % uri), (uri, p.stderr)
            assert not pid.exists()
    finally:
        for s in servers:
            s.kill()
            s.wait()
    assert md5_of(img) == md5_of(sparse(tmp_path / "zero.raw", 16))
