#!/bin/bash
# bench/scale: N VMs at once (BENCH_SCALE=10,25,50), kvkit vs QEMU microvm:
# time until all reached init, VMM memory and CPU per VM, a clean stop.
# BENCH_L1_CPUS: the rig's L1 CPUs (2: the guests are all CPU and little
# I/O, which the one-CPU rule of docs/testing.md is about).
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/scale/scale_bench.py "--mem 14336 --scratch 1024 --cpus ${BENCH_L1_CPUS:-2}" \
	BENCH_SCALE="${BENCH_SCALE:-10,25,50}"
