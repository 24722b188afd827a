#!/usr/bin/python3
"""bench/boot, UEFI case: Debian's OVMF booting the Debian disk image from
tests/guest/efi-image.sh to systemd's multi-user state, under kvkit
(--bootloader efi) and QEMU -M q35 (the same OVMF code, a variable store
from the same template each, the same disk image), alternating, N runs each. Times exec ->
KVKIT-INIT on hvc0 (printed by the first unit systemd starts: firmware,
boot loader, kernel and initramfs are behind), exec -> KVKIT-MULTI-USER
(printed once `systemctl is-system-running --wait` returns) and exec ->
exit (with no vsock device the image powers itself off right after).
Inside the nested rig (its outer QEMU patched for UEFI guests:
docs/testing.md) these are nested-emulation figures: read the ratios."""
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot_bench import KVKIT, ROOT, one  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
CPUS, MEM = 1, 1024
CODE, TEMPLATE = "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"
IMAGE = os.path.join(ROOT, "build", "efi", "disk.raw")
MARKS = (b"KVKIT-INIT", b"KVKIT-MULTI-USER")


def main():
    work = os.environ.get("BENCH_DIR", "/var/tmp/kvkit-efi-bench")
    os.makedirs(work, exist_ok=True)
    disk = os.path.join(work, "disk.raw")
    subprocess.run(["cp", "--sparse=always", IMAGE, disk], check=True)
    # a store each: OVMF records the platform's boot options in it, and one
    # written under kvkit left QEMU's OVMF waiting in its boot menu
    store, qstore = os.path.join(work, "vars.fd"), os.path.join(work, "vars-qemu.fd")
    shutil.copyfile(TEMPLATE, store)
    shutil.copyfile(TEMPLATE, qstore)
    vmms = {
        "kvkit": [KVKIT, "--cpus", str(CPUS), "--memory", str(MEM),
                  "--bootloader", "efi,variable-store=%s,create" % store,
                  "--device", "virtio-blk,path=%s" % disk, "--device", "virtio-serial,stdio"],
        # guest RAM in a memfd, as kvkit's, so the overhead counts it apart
        "qemu-q35": ["qemu-system-x86_64", "-M", "q35,memory-backend=ram", "-accel", "kvm", "-cpu", "host",
                     "-smp", str(CPUS), "-m", str(MEM), "-object", "memory-backend-memfd,id=ram,size=%dM" % MEM,
                     "-nodefaults", "-nographic", "-no-user-config",
                     "-drive", "if=pflash,format=raw,readonly=on,file=%s" % CODE,
                     "-drive", "if=pflash,format=raw,file=%s" % qstore,
                     "-drive", "file=%s,if=virtio,format=raw,cache=none" % disk,
                     "-device", "virtio-serial-pci", "-chardev", "stdio,id=c0", "-device", "virtconsole,chardev=c0"],
    }
    res = {k: [] for k in vmms}
    for i in range(RUNS):
        for name, cmd in vmms.items():
            ok, (t_init, t_mu), t_exit, mib, _ = one(cmd, MARKS)
            if not ok:
                print("run %d %s failed" % (i, name), file=sys.stderr)
                continue
            res[name].append((t_init, t_mu, t_exit, mib))
            print("run %2d %-9s init %.2f s  multi-user %.2f s  exit %.2f s  overhead %.1f MiB"
                  % (i, name, t_init, t_mu, t_exit, mib), flush=True)
    med = {}
    print("\nmedians over %d runs (%d vCPU, %d MiB, OVMF + systemd-boot + Debian 12)" % (RUNS, CPUS, MEM))
    for name, r in res.items():
        if r:
            med[name] = tuple(statistics.median(x[i] for x in r) for i in range(4))
            print("%-9s init %7.2f s  multi-user %7.2f s  exit %7.2f s  overhead %6.1f MiB" % ((name,) + med[name]))
    if "kvkit" in med and "qemu-q35" in med:
        k, q = med["kvkit"], med["qemu-q35"]
        print("kvkit/qemu-q35  init %.2f  multi-user %.2f  exit %.2f  overhead %.2f"
              % (k[0] / q[0], k[1] / q[1], k[2] / q[2], k[3] / q[3]))

if __name__ == "__main__":
    main()
