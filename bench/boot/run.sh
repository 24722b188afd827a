#!/bin/bash
# bench/boot: kvkit vs QEMU (microvm, q35) booting the same guest, side by
# side in one run; inside the nested rig where the host's KVM cannot boot a
# stock kernel. BENCH_RUNS=N sets the runs per VMM (default 10).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
make -s -j2
bash tests/guest/build.sh >/dev/null
if [ "$(bash tests/rig/probe.sh)" = direct ]; then
	exec /usr/bin/python3 bench/boot/boot_bench.py
fi
exec bash tests/rig/nested-kvm.sh --dir "$PWD" -- env BENCH_RUNS="${BENCH_RUNS:-10}" /usr/bin/python3 bench/boot/boot_bench.py
