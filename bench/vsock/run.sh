#!/bin/bash
# bench/vsock: kvkit's virtio-vsock vs the same transfers over kvkit's nat
# network to a loopback server. BENCH_BYTES per transfer (64 MiB),
# BENCH_CONNS connections for the setup rate (200).
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/vsock/vsock_bench.py "--mem 6144 --scratch 2048" \
	BENCH_BYTES="${BENCH_BYTES:-67108864}" BENCH_CONNS="${BENCH_CONNS:-200}"
