#!/bin/bash
# bench/net: kvkit nat vs QEMU -netdev user, kvkit tap vs QEMU tap (no vhost),
# the same on a multiqueue tap (a queue pair per vCPU in both) and
# kvkit unixstream vs QEMU -netdev stream on passt,
# iperf3 both directions. BENCH_RUNTIME=S per direction (default 5);
# BENCH_NETS=tap,tap-mq runs some pairings only.
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/net/net_bench.py "--mem 6144 --scratch 2048" \
	BENCH_RUNTIME="${BENCH_RUNTIME:-5}" BENCH_NETS="${BENCH_NETS:-nat,tap,tap-mq,passt}"
