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
if [ "$(bash tests/rig/probe.sh)" = direct ]; then
	grep -q '\[never\]\|\[deny\]' "$THP" 2>/dev/null &&
		echo "bench: $THP is never: kvkit's guest RAM gets no huge pages, QEMU's does (echo advise > $THP)"
	exec env "$@" /usr/bin/python3 "$script"
fi
# the rig's L1 is a throwaway VM: set it there
# shellcheck disable=SC2086 # rig_opts is a list of options
exec bash tests/rig/nested-kvm.sh $rig_opts --dir "$PWD" -- bash -c \
	"echo advise > $THP && echo 'bench: huge pages for shared memory (kvkit) and anonymous memory (QEMU)' && exec env $* /usr/bin/python3 $script"
