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
if [ "$(bash tests/rig/probe.sh)" = direct ]; then
	exec env "$@" /usr/bin/python3 "$script"
fi
# shellcheck disable=SC2086 # rig_opts is a list of options
exec bash tests/rig/nested-kvm.sh $rig_opts --dir "$PWD" -- env "$@" /usr/bin/python3 "$script"
