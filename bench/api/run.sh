#!/bin/bash
# bench/api: control-plane readiness and request rate, kvkit vs QEMU (QMP).
# BENCH_RUNS (10), BENCH_SECONDS (3).
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/api/api_bench.py "--mem 4096" \
	BENCH_RUNS="${BENCH_RUNS:-10}" BENCH_SECONDS="${BENCH_SECONDS:-3}"
