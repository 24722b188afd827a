#!/bin/bash
# bench/blk: the host itself vs kvkit vs QEMU on one raw image file, in one
# run (see blk_bench.py). Inside the nested rig, with an ext4 scratch disk
# for the image, where the host's KVM cannot boot a stock kernel.
# BENCH_RUNTIME=S seconds per fio job (default 5), BENCH_SIZE_MIB (512).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
make -s -j2
bash tests/guest/build.sh >/dev/null
ENVS="BENCH_RUNTIME=${BENCH_RUNTIME:-5} BENCH_SIZE_MIB=${BENCH_SIZE_MIB:-512}"
if [ "$(bash tests/rig/probe.sh)" = direct ]; then
	exec env $ENVS /usr/bin/python3 bench/blk/blk_bench.py
fi
exec bash tests/rig/nested-kvm.sh --mem 6144 --scratch 4096 --dir "$PWD" -- env $ENVS /usr/bin/python3 bench/blk/blk_bench.py
