"""Ten VMs at once (issue 28): each with its own REST socket, console log
and pidfile, none stepping on another's paths; each guest's console holds
its own id, each REST endpoint answers for its own VM, and all ten stop
cleanly on REST Stop."""
import os
import subprocess
import time

from conftest import KVKIT, INITRD, KERNEL, needs_kvm
from rest_client import Api

N = 10


@needs_kvm
def test_ten_vms_at_once_do_not_interfere(tmp_path):
    vms = []
    for i in range(N):
        d = {k: str(tmp_path / ("%s-%d%s" % (k, i, ext))) for k, ext in
             (("api", ".sock"), ("console", ".log"), ("pid", ".pid"))}
        # the kernel hands vmid=i to init as an environment variable
        cmd = [KVKIT, "--cpus", "1", "--memory", "128", "--bootloader",
               'linux,kernel=%s,initrd=%s,cmdline=console=hvc0 quiet vmid=%d run="acpid -d & echo VM-ID $vmid; '
               'sleep 600"' % (KERNEL, INITRD, i),
               "--device", "virtio-serial,logFilePath=" + d["console"], "--restful-uri", "unix://" + d["api"],
               "--pidfile", d["pid"]]
        d["p"] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(str(tmp_path / ("err-%d" % i)), "w"))
        vms.append(d)
    try:
        deadline = time.monotonic() + 300
        for i, d in enumerate(vms):
            while True:
                text = open(d["console"]).read() if os.path.exists(d["console"]) else ""
                if "VM-ID" in text:
                    break
                assert d["p"].poll() is None, (i, open(str(tmp_path / ("err-%d" % i))).read()[-2000:])
                assert time.monotonic() < deadline, (i, text[-500:])
                time.sleep(0.5)
            ids = [l.split()[1] for l in text.splitlines() if l.startswith("VM-ID")]
            assert ids == [str(i)], (i, ids)  # its own console, nobody else's
            assert Api(unix=d["api"]).state() == "VirtualMachineStateRunning"
            assert int(open(d["pid"]).read()) == d["p"].pid
        for d in vms:
            st, _, _ = Api(unix=d["api"]).post("Stop")
            assert st == 202, st
        for i, d in enumerate(vms):
            assert d["p"].wait(timeout=120) == 0, (i, open(str(tmp_path / ("err-%d" % i))).read()[-2000:])
        for d in vms:
            assert not os.path.exists(d["api"]) and not os.path.exists(d["pid"])
    finally:
        for d in vms:
            if d["p"].poll() is None:
                d["p"].kill()
                d["p"].wait()
