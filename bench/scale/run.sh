#!/bin/bash
# bench/scale: N VMs at once (BENCH_SCALE=10,25,50), kvkit vs QEMU microvm:
# time until all reached init, VMM memory and CPU per VM, a clean stop.
# BENCH_L1_CPUS: the rig's L1 CPUs (1: with two, the L1's own kernel
# panicked under fifty guests, "corrupted stack end detected inside
# scheduler": the outer TCG's trouble of docs/testing.md).
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/scale/scale_bench.py "--mem 14336 --scratch 1024 --cpus ${BENCH_L1_CPUS:-1}" \
	BENCH_SCALE="${BENCH_SCALE:-10,25,50}"
