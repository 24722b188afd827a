#!/bin/bash
# bench/scale: N VMs at once (BENCH_SCALE=10,25,50), kvkit vs QEMU microvm:
# time until all reached init, VMM memory and CPU per VM, a clean stop.
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/scale/scale_bench.py "--mem 14336 --scratch 1024" \
	BENCH_SCALE="${BENCH_SCALE:-10,25,50}"
