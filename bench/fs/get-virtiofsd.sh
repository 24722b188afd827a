#!/bin/bash
# The C virtiofsd that bench/fs runs beside QEMU: Debian 12's own QEMU 7.2
# package (qemu-system-common) carries it; QEMU 10 from backports no longer
# does. Extracted into build/virtiofsd/ (not installed: the system keeps
# QEMU 10).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=build/virtiofsd
[ -x "$OUT/virtiofsd" ] && exit 0
ver=$(apt-cache madison qemu-system-common | awk -F'|' '$2 ~ /^ *1:7\./ {gsub(/ /, "", $2); print $2; exit}')
[ -n "$ver" ] || { echo "get-virtiofsd: no QEMU 7.2 qemu-system-common in the package lists (apt-get update?)" >&2; exit 1; }
tmp=$(mktemp -d /var/tmp/kvkit-virtiofsd.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q "qemu-system-common=$ver" >/dev/null 2>&1) ||
	{ echo "get-virtiofsd: cannot download qemu-system-common=$ver" >&2; exit 1; }
dpkg-deb -x "$tmp"/qemu-system-common_*.deb "$tmp/x"
mkdir -p "$OUT"
cp "$tmp/x/usr/lib/qemu/virtiofsd" "$OUT/virtiofsd.new"
mv "$OUT/virtiofsd.new" "$OUT/virtiofsd"
echo "get-virtiofsd: $OUT/virtiofsd from qemu-system-common $ver"
