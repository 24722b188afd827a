#!/bin/bash
# bench/net: kvkit nat vs QEMU -netdev user, iperf3 both directions, in the
# nested rig where the host's KVM cannot boot a stock kernel.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
make -s -j2
bash tests/guest/build.sh >/dev/null
ENVS="BENCH_RUNTIME=${BENCH_RUNTIME:-5}"
if [ "$(bash tests/rig/probe.sh)" = direct ]; then
	exec env $ENVS /usr/bin/python3 bench/net/net_bench.py
fi
exec bash tests/rig/nested-kvm.sh --mem 6144 --scratch 2048 --dir "$PWD" -- env $ENVS /usr/bin/python3 bench/net/net_bench.py
