#!/bin/bash
# bench/boot, UEFI case: kvkit vs QEMU q35 booting the Debian disk image
# through OVMF (efi_bench.py). Only where the host's KVM boots stock guests:
# OVMF aborts the nested rig's outer QEMU (docs/testing.md), so there this
# says so and stops. BENCH_RUNS=N sets the runs per VMM (default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
make -s -j2
if [ "$(bash tests/rig/probe.sh)" != direct ]; then
	echo "bench/boot efi: needs a host whose /dev/kvm boots stock guests; OVMF crashes the nested rig (docs/testing.md)" >&2
	exit 2
fi
bash tests/guest/efi-image.sh
exec env BENCH_RUNS="${BENCH_RUNS:-5}" /usr/bin/python3 bench/boot/efi_bench.py
