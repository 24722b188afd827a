#!/bin/bash
# kvkit's test command: installs what it needs, builds (gcc, clang, and an
# ASan+UBSan build), runs the unit tests, then the end-to-end tests with the
# real Debian guest under real KVM: directly where the host's KVM can boot a
# stock kernel, otherwise inside the nested rig (one L1 boot for all of them).
# Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOG=$ROOT/build/test-logs
PASS=0; FAIL=0

bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$LOG"
step() { echo "== $*"; }

count_cmocka() { # file
	local p f
	p=$(grep -aoE '\[  PASSED  \] [0-9]+' "$1" | awk '{s+=$NF} END {print s+0}')
	f=$(grep -aoE '\[  FAILED  \] [0-9]+' "$1" | awk '{s+=$NF} END {print s+0}')
	PASS=$((PASS + p)); FAIL=$((FAIL + f))
}
count_pytest() { # file
	local line p f e
	line=$(grep -aE '^=+ .*(passed|failed|error|skipped).* in [0-9.]+s' "$1" | tail -1)
	p=$(echo "$line" | grep -oE '[0-9]+ passed' | cut -d' ' -f1); p=${p:-0}
	f=$(echo "$line" | grep -oE '[0-9]+ failed' | cut -d' ' -f1); f=${f:-0}
	e=$(echo "$line" | grep -oE '[0-9]+ error' | cut -d' ' -f1); e=${e:-0}
	[ -z "$line" ] && f=1
	PASS=$((PASS + p)); FAIL=$((FAIL + f + e))
}

step "build: gcc, clang, gcc with ASan+UBSan"
if ! make -s -j2 all tests >"$LOG/build.log" 2>&1 ||
   ! make -s -j2 CC=clang BUILD=build/clang all tests >>"$LOG/build.log" 2>&1 ||
   ! make -s -j2 SAN=1 BUILD=build/san all tests >>"$LOG/build.log" 2>&1; then
	tail -30 "$LOG/build.log"; echo "0 passed, 1 failed"; exit 1
fi
step "guest: kernel + initramfs from Debian packages"
bash tests/guest/build.sh >"$LOG/guest.log" 2>&1 || { cat "$LOG/guest.log"; echo "0 passed, 1 failed"; exit 1; }

step "unit tests (plain and ASan+UBSan)"
for t in build/tests/test_* build/san/tests/test_*; do
	"$t" >"$LOG/unit.$(basename "$(dirname "$(dirname "$t")")").$(basename "$t").log" 2>&1
	f="$LOG/unit.$(basename "$(dirname "$(dirname "$t")")").$(basename "$t").log"
	grep -aE '^\[  (PASSED|FAILED|  SKIPPED)|^SKIP' "$f" | sed "s|^|  $t: |"
	count_cmocka "$f"
done

step "fuzz smoke: each harness for 10 s"
if make -s fuzz >>"$LOG/build.log" 2>&1; then
	for h in build/fuzz/fuzz_*; do
		if "$h" -max_total_time=10 >"$LOG/$(basename "$h").log" 2>&1; then
			PASS=$((PASS + 1)); echo "  $h: ok"
		else
			FAIL=$((FAIL + 1)); echo "  $h: CRASH (see $LOG/$(basename "$h").log)"
		fi
	done
else
	echo "  fuzz harnesses did not build (clang with libFuzzer missing)"; FAIL=$((FAIL + 1))
fi

MODE=$(bash tests/rig/probe.sh)
step "e2e tests: $MODE"
# TMPDIR: disk images go on a disk-backed filesystem (O_DIRECT; the rig's
# --scratch disk is mounted there)
E2E="cd $ROOT && export KVKIT_E2E_KVM=1 PYTHONDONTWRITEBYTECODE=1 TMPDIR=/var/tmp && \
/usr/bin/python3 -m pytest -p no:cacheprovider -v tests/e2e > $LOG/e2e.log 2>&1; \
KVKIT=$ROOT/build/san/kvkit ASAN_OPTIONS=detect_leaks=0 /usr/bin/python3 -m pytest -p no:cacheprovider -v tests/e2e \
  -k 'one_cpu or reboot or sigterm or pidfile or test_cli or two_disks or mkfs or discard or bad_disks or fallback or unix_socket_state or bad_requests or config_file or rest_startup' > $LOG/e2e-san.log 2>&1; true"
if [ "$MODE" = direct ]; then
	bash -c "$E2E"
else
	bash tests/rig/nested-kvm.sh --mem 8192 --scratch 8192 --dir "$ROOT" -- bash -c "$E2E" >"$LOG/rig.log" 2>&1
	rc=$?
	[ $rc -ge 124 ] && { echo "  the rig failed (status $rc):"; tail -20 "$LOG/rig.log"; }
fi
for f in e2e e2e-san; do
	[ -f "$LOG/$f.log" ] || echo "=== no result from $f" > "$LOG/$f.log"
	grep -aE ' (PASSED|FAILED|SKIPPED|ERROR)' "$LOG/$f.log" | sed "s|^|  $f: |"
	count_pytest "$LOG/$f.log"
	grep -q FAILED "$LOG/$f.log" && sed -n '/= FAILURES =/,/short test summary/p' "$LOG/$f.log" | head -80
done

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
