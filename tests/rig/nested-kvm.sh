#!/usr/bin/env bash
# nested-kvm.sh (kvkit test rig, from the reference in shared/rig) — run a command where /dev/kvm is real hardware-style KVM, on a
# host whose own /dev/kvm cannot boot stock guest kernels (see ../NESTED-KVM.md).
#
# It boots a throwaway L1 Linux under QEMU's TCG emulator with AMD SVM + NPT
# exposed, loads kvm_amd there, shares this machine's root filesystem read-only
# and one working directory read-write (both over virtio-9p), then runs COMMAND
# with the shared root as its root (moved onto /, not a chroot), in that
# directory, as root. Inside, /dev/kvm
# is nested SVM KVM: a VMM run there boots ordinary Debian kernels.
#
# Usage: nested-kvm.sh [--dir DIR] [--mem MiB] [--cpus N] [--timeout S] -- COMMAND [ARG...]
#   --dir DIR   shared read-write at the same absolute path (default: current dir)
#   --mem MiB   L1 memory (default 4096)   --cpus N  L1 vCPUs (default: nproc)
#   --scratch MiB  a disk-backed ext4 scratch filesystem at /var/tmp inside L1
#               (9p and tmpfs have no O_DIRECT; disk tests and bench/ need one)
# Exit status: COMMAND's own, 124 on timeout, 125 if L1 never started it.
# The L1 kernel runs a periodic tick (nohz=off highres=off): with one-shot
# timers a one-CPU L1 running two L2 guests went idle for good (a lost
# timer interrupt under TCG's nested SVM); a periodic tick comes back.
# Knobs: RIG_L1_APPEND (L1 kernel arguments instead of those), RIG_CPU,
# RIG_TCG_THREAD, RIG_KVM_AMD_ARGS, RIG_EXTRA_MODULES, and RIG_QEMU /
# RIG_QEMU_DATA for another QEMU build (binary, and its data directory);
# by default the patched build from build-qemu.sh when it is there.
# Needs (Debian): qemu-system-x86 linux-image-amd64 busybox-static cpio
set -euo pipefail
KVM_AMD_ARGS=${RIG_KVM_AMD_ARGS:-}
DIR=$PWD; MEM=4096; CPUS=$(nproc); TIMEOUT=3000; SCRATCH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$(cd "$2" && pwd); shift 2;;
    --mem) MEM=$2; shift 2;;
    --cpus) CPUS=$2; shift 2;;
    --timeout) TIMEOUT=$2; shift 2;;
    --scratch) SCRATCH=$2; shift 2;;
    --) shift; break;;
    *) echo "nested-kvm: unknown option $1" >&2; exit 2;;
  esac
done
[ $# -gt 0 ] || { echo "nested-kvm: no command given" >&2; exit 2; }
KVER=$(ls -1 /lib/modules | grep -v cloud | sort -V | tail -1 || true)
[ -n "$KVER" ] && [ -f "/boot/vmlinuz-$KVER" ] || { echo "nested-kvm: needs linux-image-amd64 (non-cloud: it has 9p and kvm_amd)" >&2; exit 2; }
# The outer QEMU: RIG_QEMU, else the patched build of tests/rig/build-qemu.sh
# (stock QEMU's TCG aborts on UEFI guests in L2), else the system's, which
# boots direct-kernel guests only.
if [ -z "${RIG_QEMU:-}" ]; then
  # the build's data files (SeaBIOS, option ROMs) are Debian's
  if RIG_QEMU=$(bash "$(dirname "$0")/build-qemu.sh" --path); then RIG_QEMU_DATA=${RIG_QEMU_DATA:-/usr/share/qemu}; else
    RIG_QEMU=qemu-system-x86_64; echo "nested-kvm: using the system's QEMU: UEFI guests will abort it (tests/rig/build-qemu.sh builds the fixed one)" >&2
  fi
fi
command -v "$RIG_QEMU" >/dev/null || { echo "nested-kvm: needs qemu-system-x86 ($RIG_QEMU)" >&2; exit 2; }

WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root/bin" "$WORK/root/lib/modules" "$WORK/root/proc" "$WORK/root/sys" "$WORK/root/dev" "$WORK/root/host"
cp /bin/busybox "$WORK/root/bin/"
# modules L1 needs, with their dependencies first (built-in ones are skipped)
deps() { local d; for d in $(modinfo -k "$KVER" -F depends "$1" 2>/dev/null | tr ',' ' '); do deps "$d"; done; echo "$1"; }
MODS=$(for m in kvm-amd virtio_pci 9pnet_virtio 9p virtio_blk crc32c_generic ext4 tun loop ${RIG_EXTRA_MODULES:-}; do deps "$m"; done | awk '!s[$0]++' | tr '\n' ' ')
for m in $MODS; do
  f=$(modinfo -k "$KVER" -n "$m" 2>/dev/null) || continue; [ -f "$f" ] || continue   # built-in
  case "$f" in   # newer Debian kernels ship compressed modules; busybox insmod wants plain ELF
    *.xz) xz -dc "$f" > "$WORK/root/lib/modules/$m.ko";;
    *.zst) zstd -qdc "$f" > "$WORK/root/lib/modules/$m.ko";;
    *) cp "$f" "$WORK/root/lib/modules/$m.ko";;
  esac
done
# The command goes in as a file: no quoting through the kernel command line.
printf '%q ' "$@" > "$WORK/root/cmd"; echo >> "$WORK/root/cmd"
cat > "$WORK/root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc p /proc; mount -t sysfs s /sys; mount -t devtmpfs d /dev
for m in $MODS; do a=; [ \$m = kvm-amd ] && a="$KVM_AMD_ARGS"; [ -f /lib/modules/\$m.ko ] && insmod /lib/modules/\$m.ko \$a 2>/dev/null; done
[ -c /dev/kvm ] || echo "nested-kvm: L1 has no /dev/kvm"
ip link set lo up
hostname rig
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host
for d in proc sys dev; do mount --bind /\$d /host/\$d; done
mkdir -p /host/dev/pts && mount -t devpts -o ptmxmode=0666,newinstance devpts /host/dev/pts && ln -sf pts/ptmx /host/dev/ptmx 2>/dev/null
mount -t tmpfs t /host/tmp; mount -t tmpfs t /host/run
if [ -b /dev/vda ]; then chroot /host /sbin/mkfs.ext4 -q -F /dev/vda && mount /dev/vda /host/var/tmp; fi
mkdir -p /host$DIR 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work /host$DIR
cp /cmd /host/tmp/.rig-cmd
# The host's root becomes the mount namespace's root (what switch_root does,
# with this init staying put for the poweroff): a command under a plain
# chroot may not create user namespaces, which passt and other sandboxes need.
cd /host && mount --move . /
chroot . /bin/bash -c 'cd $DIR && exec /bin/bash /tmp/.rig-cmd' </dev/console >/dev/console 2>&1
echo "RIG-EXIT=\$?"
poweroff -f
INIT
chmod +x "$WORK/root/init"
(cd "$WORK/root" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$WORK/l1.cpio.gz")

DISK=()
if [ "$SCRATCH" -gt 0 ]; then
  truncate -s "${SCRATCH}M" "$WORK/scratch.raw"
  DISK=(-drive "file=$WORK/scratch.raw,if=none,id=scratch,format=raw,cache=unsafe" -device virtio-blk-pci,drive=scratch)
fi
set +e
timeout "$TIMEOUT" "$RIG_QEMU" ${RIG_QEMU_DATA:+-L "$RIG_QEMU_DATA" -L /usr/share/seabios} -accel tcg,thread=${RIG_TCG_THREAD:-multi} -M q35 -cpu ${RIG_CPU:-EPYC,+svm,+npt} \
  -smp "$CPUS" -m "$MEM" -nographic -no-reboot -nodefaults -serial stdio \
  -kernel "/boot/vmlinuz-$KVER" -initrd "$WORK/l1.cpio.gz" \
  -append "console=ttyS0 quiet panic=-1 ${RIG_L1_APPEND-nohz=off highres=off}" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$DIR",mount_tag=work,security_model=none,multidevs=remap \
  "${DISK[@]}" \
  2> >(grep -v "TCG doesn't support requested feature" >&2) | tee "$WORK/console" | grep -v '^RIG-EXIT='
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 124 ] && { echo "nested-kvm: timed out after $TIMEOUT s" >&2; exit 124; }
code=$(grep -a -o 'RIG-EXIT=[0-9]*' "$WORK/console" | tail -1 | cut -d= -f2)
[ -n "$code" ] || { echo "nested-kvm: the command never ran (L1 failed; console above)" >&2; exit 125; }
exit "$code"
