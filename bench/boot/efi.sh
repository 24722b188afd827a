#!/bin/bash
# bench/boot, UEFI case: kvkit vs QEMU q35 booting the Debian disk image
# through the same OVMF, side by side in one run (efi_bench.py), directly on
# a KVM that boots stock guests or else inside the nested rig, whose outer
# QEMU is the patched build UEFI guests need (tests/rig/build-qemu.sh,
# built here if missing). BENCH_RUNS=N sets the runs per VMM (default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
make -s -j2
bash tests/guest/efi-image.sh
if [ "$(bash tests/rig/probe.sh)" != direct ]; then
	bash tests/rig/build-qemu.sh >/dev/null
fi
exec bash bench/lib/run_bench.sh bench/boot/efi_bench.py "--mem 4096 --scratch 4096" BENCH_RUNS="${BENCH_RUNS:-5}" \
	BENCH_DIR=/var/tmp/kvkit-efi-bench
