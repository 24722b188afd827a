#!/bin/bash
# bench/net: kvkit nat vs QEMU -netdev user, kvkit tap vs QEMU tap (no vhost) and
# kvkit unixstream vs QEMU -netdev stream on passt,
# iperf3 both directions. BENCH_RUNTIME=S per direction (default 5).
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/net/net_bench.py "--mem 6144 --scratch 2048" \
	BENCH_RUNTIME="${BENCH_RUNTIME:-5}"
