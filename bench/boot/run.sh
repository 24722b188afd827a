#!/bin/bash
# bench/boot: kvkit vs QEMU (microvm, q35) booting the same guest, side by
# side in one run. BENCH_RUNS=N sets the runs per VMM (default 10);
# BENCH_SANDBOX=1 adds kvkit with --sandbox off (the sandbox's cost).
# BENCH_KVKIT_OLD=PATH (inside the tree) adds another kvkit build to compare.
# BENCH_PHASE_RUNS=N (default 3): the start-up anatomy's runs (0: none).
# BENCH_VMMS=kvkit,kvkit-nosb: only these VMMs (names as the table gives them).
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/boot/boot_bench.py "" BENCH_RUNS="${BENCH_RUNS:-10}" \
	BENCH_SANDBOX="${BENCH_SANDBOX:-0}" BENCH_KVKIT_OLD="${BENCH_KVKIT_OLD:-}" BENCH_PHASE_RUNS="${BENCH_PHASE_RUNS:-3}" \
	BENCH_VMMS="${BENCH_VMMS:-}"
