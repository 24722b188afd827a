#!/bin/bash
# bench/api: control-plane readiness and request rate, kvkit vs QEMU (QMP),
# inside the nested rig where the host's KVM cannot boot a stock kernel.
# BENCH_RUNS (10), BENCH_SECONDS (3).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
make -s -j2
bash tests/guest/build.sh >/dev/null
ENVS="BENCH_RUNS=${BENCH_RUNS:-10} BENCH_SECONDS=${BENCH_SECONDS:-3}"
if [ "$(bash tests/rig/probe.sh)" = direct ]; then
	exec env $ENVS /usr/bin/python3 bench/api/api_bench.py
fi
exec bash tests/rig/nested-kvm.sh --mem 4096 --dir "$PWD" -- env $ENVS /usr/bin/python3 bench/api/api_bench.py
