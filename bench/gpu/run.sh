#!/bin/bash
# bench/gpu: full-screen frames per second through virtio-gpu, kvkit --gui
# vs QEMU -device virtio-gpu-pci -display sdl, both on one Xvfb display.
# BENCH_RUNTIME=S per run (default 10), BENCH_ROUNDS=N (default 3).
bash "$(dirname "$0")/../../scripts/setup.sh"
GUEST_KVER=$(ls -1 /lib/modules | grep -v cloud | sort -V | tail -1) bash "$(dirname "$0")/../../tests/guest/build.sh" \
	"$(dirname "$0")/../../build/guest-full" >/dev/null
exec bash "$(dirname "$0")/../lib/run_bench.sh" bench/gpu/gpu_bench.py "--mem 4096 --scratch 1024" \
	BENCH_RUNTIME="${BENCH_RUNTIME:-10}" BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
