#!/bin/bash
# bench/blk: the host itself vs kvkit vs QEMU on one raw image file, in one
# run (see blk_bench.py), with an ext4 scratch disk for the image in the rig.
# BENCH_RUNTIME=S seconds per fio job (default 5), BENCH_SIZE_MIB (512),
# BENCH_ROUNDS (3), BENCH_JOBS (a comma list of job names; default all),
# BENCH_DISK (virtio-blk, or nvme for both VMMs' NVMe controllers).
# BENCH_FORMAT=qcow2: kvkit on raw and on qcow2, QEMU on qcow2, plus allocating writes.
# BENCH_SANDBOX=1: kvkit also with --sandbox off (the sandbox's cost).
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/blk/blk_bench.py "--mem 6144 --scratch 4096" \
	BENCH_RUNTIME="${BENCH_RUNTIME:-5}" BENCH_SIZE_MIB="${BENCH_SIZE_MIB:-512}" \
	BENCH_ROUNDS="${BENCH_ROUNDS:-3}" BENCH_JOBS="${BENCH_JOBS:-}" BENCH_DISK="${BENCH_DISK:-virtio-blk}" BENCH_FORMAT="${BENCH_FORMAT:-raw}" \
	BENCH_SANDBOX="${BENCH_SANDBOX:-0}"
