#!/bin/bash
# bench/vsock: kvkit's virtio-vsock vs the same transfers over kvkit's nat
# network to a loopback server, in the nested rig where the host's KVM
# cannot boot a stock kernel.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
make -s -j2
bash tests/guest/build.sh >/dev/null
ENVS="BENCH_BYTES=${BENCH_BYTES:-67108864} BENCH_CONNS=${BENCH_CONNS:-200}"
if [ "$(bash tests/rig/probe.sh)" = direct ]; then
	exec env $ENVS /usr/bin/python3 bench/vsock/vsock_bench.py
fi
exec bash tests/rig/nested-kvm.sh --mem 6144 --scratch 2048 --dir "$PWD" -- env $ENVS /usr/bin/python3 bench/vsock/vsock_bench.py
