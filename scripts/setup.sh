#!/bin/bash
# Install the Debian packages kvkit needs to build, test and run its demo.
# Does nothing when they are all present. Needs root (or sudo) to install.
set -euo pipefail
PKGS="gcc make clang libclang-rt-14-dev libcmocka-dev acpica-tools pkg-config
qemu-system-x86 linux-image-amd64 linux-image-cloud-amd64 busybox-static cpio xz-utils zstd lz4 kmod
python3 python3-pytest libc6-dev
liburing-dev libnbd-dev libmicrohttpd-dev libjson-c-dev libisofs-dev curl
qemu-utils e2fsprogs util-linux xorriso fio"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "setup: installing$missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q $missing >/dev/null
