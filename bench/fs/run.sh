#!/bin/bash
# bench/fs: kvkit virtio-fs vs QEMU with virtiofsd vs QEMU virtio-9p vs the
# host on one folder.
# BENCH_FILES small files (10000), BENCH_BIG_MIB sequential (1024),
# BENCH_VMMS the guests to run (default: kvkit,kvkit-always,kvkit-dax,kvkit-daxi,virtiofsd,virtiofsd-always,9p;
# also kvkit-dax256), BENCH_DAX_MIB the DAX window (default: 1.25x the big file, rounded up to a power of two),
# BENCH_SHARE_TMPFS=1 the folder on a tmpfs with 2 MiB pages,
# BENCH_L1_CPUS the rig's L1 CPUs (2; the DAX runs of status.md used 1).
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.." || exit 1
# both VMMs boot the full Debian kernel: the cloud one has no 9p
GUEST_KVER=$(ls -1 /lib/modules | grep -v cloud | sort -V | tail -1) bash tests/guest/build.sh build/guest-full >/dev/null
bash "$HERE/get-virtiofsd.sh"
# A two-CPU L1, unlike the tests (docs/testing.md): in a one-CPU L1 QEMU's
# 9p crawled (its untar of 10,000 files: 379 s; 5.6 s with two), which
# would flatter kvkit.
exec bash "$HERE/../lib/run_bench.sh" bench/fs/fs_bench.py "--mem 8192 --scratch 6144 --cpus ${BENCH_L1_CPUS:-2}" \
	BENCH_FILES="${BENCH_FILES:-10000}" BENCH_BIG_MIB="${BENCH_BIG_MIB:-1024}" \
	BENCH_VMMS="${BENCH_VMMS:-kvkit,kvkit-always,kvkit-dax,kvkit-daxi,virtiofsd,virtiofsd-always,9p}" BENCH_SHARE_TMPFS="${BENCH_SHARE_TMPFS:-0}" BENCH_DAX_MIB="${BENCH_DAX_MIB:-}"
