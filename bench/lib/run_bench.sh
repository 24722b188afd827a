#!/bin/bash
# What every bench/*/run.sh does: install and build what is needed, then
# run one benchmark script with its settings, directly on a KVM that boots
# stock kernels or else inside the nested rig (one L1 for the whole run).
#   run_bench.sh SCRIPT "RIG-OPTIONS" [NAME=VALUE ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
script=$1 rig_opts=$2
shift 2
bash scripts/setup.sh
make -s -j2
bash tests/guest/build.sh >/dev/null
# Huge pages for both VMMs' guest RAM: QEMU's anonymous RAM gets them from
# the plain THP setting, kvkit's memfd only where shmem_enabled allows them.
THP=/sys/kernel/mm/transparent_hugepage/shmem_enabled
# The whole output is kept in bench/results/NAME-DATE-WHERE.txt; the bench's
# summary (bench/lib/report.py) then goes into docs/status.md.
where=$([ "$(bash tests/rig/probe.sh)" = direct ] && echo direct || echo rig)
name=$(basename "$script" .py)
name=${name%_bench}
raw=bench/results/$name-$(date +%F)-$where.txt
n=2
while [ -e "$raw" ]; do raw=bench/results/$name-$(date +%F)-$where-$n.txt; n=$((n + 1)); done
mkdir -p bench/results
rc=0
if [ "$where" = direct ]; then
	grep -q '\[never\]\|\[deny\]' "$THP" 2>/dev/null &&
		echo "bench: $THP is never: kvkit's guest RAM gets no huge pages, QEMU's does (echo advise > $THP)"
	env "$@" BENCH_WHERE=direct BENCH_RAW="$PWD/$raw" /usr/bin/python3 "$script" 2>&1 | tee "$raw" || rc=$?
else
	# the rig's L1 is a throwaway VM: set it there
	# shellcheck disable=SC2086 # rig_opts is a list of options
	bash tests/rig/nested-kvm.sh $rig_opts --dir "$PWD" -- bash -c \
		"echo advise > $THP && echo 'bench: huge pages for shared memory (kvkit) and anonymous memory (QEMU)' && exec env $* BENCH_WHERE=rig BENCH_RAW=$PWD/$raw /usr/bin/python3 $script" 2>&1 |
		tee "$raw" || rc=$?
fi
/usr/bin/python3 bench/lib/status_tables.py
exit "$rc"
