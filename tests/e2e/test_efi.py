"""UEFI boot end to end (issue 8): Debian's OVMF boots the Debian disk image
built by tests/guest/efi-image.sh (systemd-boot on a GPT ESP, systemd root)
under --bootloader efi. The guest says Ready on vsock port 1025, as podman's
image does, and keeps that connection open as a shell: the tests' command
channel. Boots of one store run in order: the first makes the store and
writes variables, the next finds them."""
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import KVKIT, ROOT, free_port, have_kvm
from test_net import GvproxyPeer

IMAGE = os.path.join(ROOT, "build", "efi", "disk.raw")
IMAGE_KERNEL = os.path.join(ROOT, "build", "efi", "vmlinuz")
IMAGE_INITRD = os.path.join(ROOT, "build", "efi", "initrd.img")
VARS_TEMPLATE = "/usr/share/OVMF/OVMF_VARS_4M.fd"
TEST_GUID = "5c0b2e8a-2c57-4b7c-9d2e-6f1f7d2b9a01"
BOOT_TIMEOUT = 300  # OVMF and systemd in the nested rig; about a minute when all is well

# In the nested rig this needs the rig's patched outer QEMU
# (tests/rig/build-qemu.sh): stock QEMU's TCG aborts on the CR8 writes of
# UEFI guests. tests/run.sh builds it; without it these tests fail.
if not have_kvm():
    needs_uefi = pytest.mark.skip(reason="no KVM able to boot a stock guest (run through tests/run.sh)")
elif not os.path.exists(IMAGE):
    needs_uefi = pytest.mark.skip(reason="no UEFI test image: tests/guest/efi-image.sh")
else:
    needs_uefi = pytest.mark.usefixtures()
# the image's own system booted without the firmware: fine in the rig
needs_image = pytest.mark.skipif(not have_kvm() or not os.path.exists(IMAGE_KERNEL),
                                 reason="no KVM able to boot a stock guest, or no image (tests/guest/efi-image.sh)")


class EfiVM:
    """kvkit with the podman-style device list; ready.sock is ours."""

    def __init__(self, d, store, create=True, extra=(), name="vm", disk="virtio-blk", image="disk.raw", disk_opts=""):
        self.d, self.name = d, name
        self.ready_path = os.path.join(d, name + "-ready.sock")
        self.log = os.path.join(d, name + ".log")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.ready_path)
        self.srv.listen(1)
        boot = "efi,variable-store=%s%s" % (store, ",create" if create else "")
        self.argv = [KVKIT, "--cpus", "1", "--memory", "1024", "--bootloader", boot,
                     "--device", "%s,path=%s%s" % (disk, os.path.join(d, image), disk_opts),
                     "--device", "virtio-rng",
                     "--device", "virtio-vsock,port=1025,socketURL=%s,listen" % self.ready_path,
                     "--device", "virtio-serial,logFilePath=%s" % self.log] + list(extra)
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.conn, self.buf = None, b""

    def wait_ready(self, timeout=BOOT_TIMEOUT):
        self.srv.settimeout(timeout)
        t0 = time.monotonic()
        try:
            self.conn, _ = self.srv.accept()
        except socket.timeout:
            self.fail("no connection on vsock port 1025 within %d s" % timeout)
        line = self._read_until(b"\n", timeout - (time.monotonic() - t0))
        assert line == b"Ready\n", line
        return time.monotonic() - t0

    def _read_until(self, end, timeout):
        self.conn.settimeout(max(timeout, 1))
        while end not in self.buf:
            try:
                chunk = self.conn.recv(65536)
            except socket.timeout:
                self.fail("the guest shell went quiet; got %r" % self.buf[-500:])
            if not chunk:
                self.fail("the guest shell closed; got %r" % self.buf[-500:])
            self.buf += chunk
        i = self.buf.index(end) + len(end)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def sh(self, cmd, timeout=60):
        """Run cmd in the guest; returns (status, output)."""
        self.conn.sendall(b"%s\necho __END__$?\n" % cmd.encode())
        out = b""
        while True:
            out += self._read_until(b"\n", timeout)
            m = re.search(rb"__END__(\d+)\n$", out)
            if m:
                return int(m.group(1)), out[:m.start()].decode(errors="replace")

    def wait_exit(self, timeout=120):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail("kvkit still runs %d s after the guest was told to power off" % timeout)
        return self.p.returncode, err.decode(errors="replace")

    def console(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def fail(self, why):
        self.kill()
        out, err = self.p.communicate()
        raise AssertionError("%s\n--- kvkit stderr:\n%s\n--- console:\n%s" % (
            why, err.decode(errors="replace")[-3000:], self.console()[-3000:]))

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        for s in (self.conn, self.srv):
            if s:
                s.close()


def check_acpi_and_smbios(vm, cpus):
    """The firmware installed kvkit's ACPI tables (fw_cfg table loader)
    and its SMBIOS structures: the guest sees them as under QEMU."""
    rc, out = vm.sh("ls /sys/firmware/acpi/tables")
    assert rc == 0 and {"DSDT", "FACP", "APIC", "MCFG"} <= set(out.split()), out
    rc, out = vm.sh("dmidecode -s system-manufacturer; dmidecode -s system-product-name; "
                    "dmidecode -t processor | grep -c 'Socket Designation'; dmidecode -s bios-vendor; "
                    "dmidecode -t memory | grep -m1 -E '^\\s+Size:'")
    lines = out.strip().splitlines()
    assert rc == 0 and lines[:3] == ["kvkit", "kvkit virtual machine", str(cpus)], out
    assert "OVMF" in lines[3] or "EDK II" in lines[3], out  # the firmware's own BIOS information
    assert "1 GB" in lines[4] or "1024 MB" in lines[4], out


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """One copy of the image (sparse) and one variable store for the module."""
    t = tmp_path_factory.mktemp("efi")
    subprocess.run(["cp", "--sparse=always", IMAGE, str(t / "disk.raw")], check=True)
    return str(t)


@needs_uefi
def test_debian_boots_to_multi_user_sets_variables_and_powers_off(d):
    store = os.path.join(d, "vars.fd")
    vm = EfiVM(d, store, create=True)
    try:
        secs = vm.wait_ready()
        rc, out = vm.sh("systemctl is-system-running")
        assert out.strip() in ("running", "degraded"), out
        rc, out = vm.sh("ls /sys/firmware/efi/efivars | wc -l; cat /proc/cmdline")
        assert int(out.split()[0]) > 5 and "console=hvc0" in out, out
        check_acpi_and_smbios(vm, cpus=1)
        # a variable of our own (efivarfs: 4 bytes of attributes, NV+BS+RT),
        # and a boot entry made by efibootmgr
        rc, out = vm.sh("printf '\\007\\000\\000\\000kvkit-was-here' > /sys/firmware/efi/efivars/KvkitTest-%s"
                        " && efibootmgr -q -c -d /dev/vda -p 1 -L kvkit-test -l '\\EFI\\BOOT\\BOOTX64.EFI'"
                        " && efibootmgr" % TEST_GUID)
        assert rc == 0 and "kvkit-test" in out, out
        vm.conn.sendall(b"systemctl poweroff\n")
        rc, err = vm.wait_exit()
        assert rc == 0, err[-2000:]
        print("UEFI boot to Ready: %.1f s" % secs)
    finally:
        vm.kill()
    log = vm.console()
    assert "kvkit-efi login:" in log or "Debian GNU/Linux 12" in log, log[-2000:]
    assert os.path.getsize(store) == os.path.getsize(VARS_TEMPLATE)
    assert "VM is stopped" in err


@needs_uefi
def test_variables_persist_without_create_and_sigterm_stops(d):
    store = os.path.join(d, "vars.fd")
    before = sha(store)
    vm = EfiVM(d, store, create=False, name="second")
    try:
        vm.wait_ready()
        rc, out = vm.sh("cat /sys/firmware/efi/efivars/KvkitTest-%s | tail -c +5; echo; efibootmgr" % TEST_GUID)  # efivarfs cannot seek
        assert rc == 0 and "kvkit-was-here" in out and "kvkit-test" in out, out
        vm.p.terminate()  # the power button: systemd-logind powers off
        rc, err = vm.wait_exit()
        assert rc == 0, err[-2000:]
    finally:
        vm.kill()
    assert sha(store) != before  # the firmware writes at every boot (boot counters, MOR)


@needs_uefi
def test_corrupt_store_with_create_is_replaced_and_boots(d):
    store = os.path.join(d, "vars.fd")
    with open(store, "r+b") as f:
        f.seek(0x28)
        f.write(b"JUNK")  # the firmware volume signature
    vm = EfiVM(d, store, create=True, name="third")
    try:
        vm.wait_ready()
        rc, out = vm.sh("ls /sys/firmware/efi/efivars/ | grep -c KvkitTest; efibootmgr")
        assert out.split()[0] == "0" and "kvkit-test" not in out, out  # a fresh store
        vm.conn.sendall(b"systemctl poweroff\n")
        rc, err = vm.wait_exit()
        assert rc == 0
    finally:
        vm.kill()
    assert "was not usable" in err and os.path.exists(store + ".invalid")
    with open(store + ".invalid", "rb") as f:
        assert f.read()[0x28:0x2c] == b"JUNK"  # the old store is kept, not lost


@needs_uefi
def test_nvme_boot_and_rest_stop(d):
    """The same image from an NVMe disk: OVMF's NVMe driver loads the
    boot loader, the root is nvme0n1p2; REST Stop powers off through ACPI."""
    port = free_port()
    vm = EfiVM(d, os.path.join(d, "vars-nvme.fd"), create=True, name="nvme", disk="nvme",
               extra=["--restful-uri", "tcp://localhost:%d" % port])
    try:
        vm.wait_ready()
        rc, out = vm.sh("findmnt -n -o SOURCE /; cat /sys/block/nvme0n1/device/model; ls /sys/firmware/efi")
        assert rc == 0 and out.startswith("/dev/nvme0n1p2") and "kvkit" in out and "efivars" in out, out
        check_acpi_and_smbios(vm, cpus=1)
        state = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/vm/state" % port, timeout=5).read())
        assert state["state"] == "VirtualMachineStateRunning", state
        req = urllib.request.Request("http://127.0.0.1:%d/vm/state" % port, data=b'{"state":"Stop"}', method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()
        rc, err = vm.wait_exit(timeout=60)
        assert rc == 0, err[-2000:]
    finally:
        vm.kill()


@needs_uefi
def test_debian_qcow2_image_boots_and_stays_clean(d):
    """The image converted to qcow2 (with compressed clusters, as cloud
    images ship) boots through OVMF from it; the guest writes and syncs a
    file and powers off; qemu-img check finds the image clean and the file
    is in it."""
    q = os.path.join(d, "disk.qcow2")
    subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", os.path.join(d, "disk.raw"), q], check=True)
    vm = EfiVM(d, os.path.join(d, "vars-qcow2.fd"), create=True, name="qcow2", image="disk.qcow2",
               disk_opts=",format=qcow2")
    try:
        vm.wait_ready()
        rc, out = vm.sh("findmnt -n -o SOURCE /; echo qcow2-$((6*7)) > /root/mark; sync; cat /root/mark")
        assert rc == 0 and out.startswith("/dev/vda2") and "qcow2-42" in out, out
        vm.sh("systemctl poweroff")
        rc, err = vm.wait_exit(timeout=120)
        assert rc == 0, err[-2000:]
    finally:
        vm.kill()
    c = subprocess.run(["qemu-img", "check", q], capture_output=True, text=True)
    assert c.returncode == 0, c.stdout + c.stderr
    raw = os.path.join(d, "from-qcow2.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", q, raw], check=True)
    # the text exists only as the guest's shell wrote it: the file's block
    got = subprocess.run(["grep", "-c", "-a", "qcow2-42", raw], capture_output=True, text=True)
    assert int(got.stdout.strip() or 0) >= 1, got
    os.unlink(raw)
    os.unlink(q)


class IgnitionServer(threading.Thread):
    """podman's Ignition server: HTTP on a unix socket, any path gets the
    config (spec 6.3); kvkit relays the guest's vsock port 1024 to it."""

    def __init__(self, path, body):
        super().__init__(daemon=True)
        self.body, self.requests = body, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(30)
                req = b""
                while b"\r\n\r\n" not in req:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    req += chunk
                self.requests.append(req)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n%s" % (len(self.body), self.body))


def podman_replay(d, rt, bootloader):
    """podman's exact argv (spec 9.1) with this bootloader: readiness, a
    share mounted from the guest, then podman's stop sequence over the REST
    API, which must end in ECONNREFUSED within 10 s."""
    share = os.path.join(rt, "home")
    os.mkdir(share)
    token = os.urandom(8).hex()
    with open(os.path.join(share, "hello.txt"), "w") as f:
        f.write(token)
    tag = hashlib.sha256(b"/home/user").hexdigest()[:36]
    gv = GvproxyPeer(os.path.join(rt, "podman-gvproxy.sock"))
    gv.start()
    port = free_port()
    ign = IgnitionServer(os.path.join(rt, "podman-ignition.sock"),
                         b'{"ignition":{"version":"3.4.0"},"kvkit":"%s"}' % token.encode())
    ign.start()
    ready = os.path.join(rt, "podman.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(ready)
    lsock.listen(1)
    argv = [KVKIT, "--cpus", "1", "--memory", "1024",
            "--bootloader", bootloader,
            "--device", "virtio-blk,path=%s" % os.path.join(d, "disk.raw"),
            "--device", "virtio-rng",
            "--device", "virtio-vsock,port=1025,socketURL=%s,listen" % ready,
            "--device", "virtio-serial,logFilePath=%s" % os.path.join(rt, "podman.log"),
            "--device", "virtio-net,unixSocketPath=%s,mac=5a:94:ef:e4:0c:ee" % os.path.join(rt, "podman-gvproxy.sock"),
            "--device", "virtio-fs,sharedDir=%s,mountTag=%s" % (share, tag),
            "--restful-uri", "tcp://localhost:%d" % port,
            # first boot: podman relays the guest's Ignition fetch to its server
            "--device", "virtio-vsock,port=1024,socketURL=%s,listen" % os.path.join(rt, "podman-ignition.sock")]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lsock.settimeout(BOOT_TIMEOUT)
        conn, _ = lsock.accept()
        conn.settimeout(60)
        buf = b""
        while b"\n" not in buf:
            chunk = conn.recv(100)
            assert chunk, buf
            buf += chunk
        assert buf.startswith(b"Ready\n"), buf
        state = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/vm/state" % port, timeout=5).read())
        assert state["state"] == "VirtualMachineStateRunning", state
        conn.sendall(b'mkdir -p /mnt/home && mount -t virtiofs -o context="system_u:object_r:nfs_t:s0" %s /mnt/home'
                     b' 2>/dev/null || mount -t virtiofs %s /mnt/home; cat /mnt/home/hello.txt; echo; cat /run/kvkit-ignition.http; echo __END__\n'
                     % (tag.encode(), tag.encode()))
        while b"__END__" not in buf:
            chunk = conn.recv(4096)
            assert chunk, buf
            buf += chunk
        assert buf.count(token.encode()) == 2, buf  # the share's file, and the Ignition config
        assert b"HTTP/1.1 200 OK" in buf, buf
        assert len(ign.requests) == 1 and ign.requests[0].startswith(b"GET / HTTP/1.1"), ign.requests
        assert b"Accept: application/json" in ign.requests[0], ign.requests
        assert gv.hello == b"VFKT", gv.hello
        # podman's stop: POST Stop, then GET every 500 ms until refused
        req = urllib.request.Request("http://127.0.0.1:%d/vm/state" % port, data=b'{"state":"Stop"}', method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()
        t0, refused, polls = time.monotonic(), False, []
        while time.monotonic() - t0 < 60:
            try:
                got = urllib.request.urlopen("http://127.0.0.1:%d/vm/state" % port, timeout=5).read()
                polls.append("%.1f s: %s" % (time.monotonic() - t0, got.decode()))
            except urllib.error.URLError as e:
                refused = isinstance(e.reason, ConnectionRefusedError)
                polls.append("%.1f s: %r" % (time.monotonic() - t0, e.reason))
                break
            time.sleep(0.5)
        took = time.monotonic() - t0
        assert refused, "no ECONNREFUSED within 60 s of Stop; the last polls: %s" % polls[-3:]
        assert took < 10, "kvkit took %.1f s to exit after Stop" % took
        assert p.wait(timeout=10) == 0
        return took
    except (AssertionError, OSError) as e:
        if p.poll() is None:
            p.kill()
        err = p.communicate()[1].decode(errors="replace")
        try:
            with open(os.path.join(rt, "podman.log"), errors="replace") as f:
                log = f.read()
        except OSError:
            log = ""
        raise AssertionError("%s\n--- kvkit stderr:\n%s\n--- console:\n%s" % (e, err[-3000:], log[-3000:]))
    finally:
        if p.poll() is None:
            p.kill()
        gv.stop = True
        lsock.close()
        ign.sock.close()


@needs_uefi
def test_podman_machine_start_replayed(d, tmp_path):
    podman_replay(d, str(tmp_path), "efi,variable-store=%s,create" % os.path.join(d, "efi-bl-podman"))


@needs_image
def test_image_system_direct_boot_podman_replay(d, tmp_path):
    """The image's Debian booted by its own kernel and initramfs
    (--bootloader linux), which the rig can run: systemd to multi-user, the
    Ready/shell channel, a share, podman's REST stop. What it checks of the
    image and of the test plumbing holds for the UEFI tests above."""
    took = podman_replay(d, str(tmp_path), 'linux,kernel=%s,initrd=%s,cmdline="root=/dev/vda2 rw console=ttyS0 '
                         'console=hvc0 quiet"' % (IMAGE_KERNEL, IMAGE_INITRD))
    print("REST Stop to ECONNREFUSED: %.1f s" % took)


def test_bad_firmware_input_one_line_and_nothing_touched(tmp_path):
    t = str(tmp_path)
    cases = []
    missing = os.path.join(t, "missing.fd")
    cases.append((["efi,variable-store=%s" % missing], "does not exist (add ',create'"))
    cases.append((["efi,variable-store=%s,create,firmware=%s/nope_CODE.fd" % (missing, t)], "cannot read the UEFI firmware"))
    wrong = os.path.join(t, "wrong.fd")
    with open(wrong, "wb") as f:
        f.write(b"\x01" * 4096)
    cases.append((["efi,variable-store=%s" % wrong], "wrong size"))
    notstore = os.path.join(t, "notstore.fd")
    with open(notstore, "wb") as f:
        f.write(b"\x02" * os.path.getsize(VARS_TEMPLATE))
    cases.append((["efi,variable-store=%s" % notstore], "not a variable store"))
    cases.append((["efi,variable-store=%s,create=yes" % missing], "unexpected value for EFI bootloader 'create' option: yes"))
    before = {p: sha(p) for p in (wrong, notstore)}
    for boot, msg in cases:
        r = subprocess.run([KVKIT, "--bootloader", boot[0], "--device", "virtio-rng"], capture_output=True, timeout=30)
        err = r.stderr.decode()
        assert r.returncode == 1, (boot, err)
        assert msg in err and len(err.strip().splitlines()) == 1, (boot, err)
    assert not os.path.exists(missing)
    assert {p: sha(p) for p in (wrong, notstore)} == before
    assert sorted(os.listdir(t)) == ["notstore.fd", "wrong.fd"]  # no temporary files left
