#!/bin/bash
# Boot the bundled demo guest under kvkit: the Debian cloud kernel with a
# busybox initramfs that prints uname, CPUs and memory, then powers off.
# Installs and builds what it needs; uses the nested rig where the host's
# KVM cannot boot a stock kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -s -j2
bash tests/guest/build.sh
RUN=(./build/kvkit --cpus 2 --memory 1024
	--bootloader 'linux,kernel=build/guest/vmlinuz,initrd=build/guest/initrd.img,cmdline="console=ttyS0 quiet"'
	--device virtio-serial,stdio --device virtio-rng)
MODE=$(bash tests/rig/probe.sh)
if [ "$MODE" = direct ]; then
	exec "${RUN[@]}"
fi
echo "demo: running kvkit inside the nested-KVM rig (see docs/testing.md)" >&2
printf '%q ' "${RUN[@]}" > build/demo-cmd.sh
exec bash tests/rig/nested-kvm.sh --dir "$PWD" -- bash build/demo-cmd.sh
