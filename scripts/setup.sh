#!/bin/bash
# Install the Debian packages kvkit needs to build, test and run its demo.
# Does nothing when they are all present. Needs root (or sudo) to install.
set -euo pipefail
PKGS="gcc make clang libclang-rt-14-dev libcmocka-dev acpica-tools pkg-config
linux-image-amd64 linux-image-cloud-amd64 busybox-static cpio xz-utils zstd lz4 kmod
python3 python3-pytest libc6-dev
liblz4-dev libzstd-dev liblzma-dev zlib1g-dev
liburing-dev libnbd-dev libmicrohttpd-dev libjson-c-dev libisofs-dev libslirp-dev libseccomp-dev curl
qemu-utils e2fsprogs util-linux iproute2 xorriso fio iperf3 socat qemu-guest-agent openssl
ovmf mmdebstrap dosfstools mtools fdisk passt libpng-dev ethtool"
# The display (--gui, VNC) and its tests. From bookworm-backports: QEMU 10
# below brings backports' libdrm and libwayland, which bookworm's SDL2
# development package cannot sit beside.
PKGS_BPO="libsdl2-dev libvncserver-dev libdrm-dev xvfb xdotool x11-apps"
# The nested-KVM rig runs on QEMU's TCG: bookworm's QEMU 7.2 wedges its L1
# now and then (both L1 CPUs stuck), QEMU 10 from bookworm-backports does not.
# (deb-src too: tests/rig/build-qemu.sh builds the rig's patched QEMU from it.)
QEMU_MIN=10
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
missing="" missing_bpo=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
for p in $PKGS_BPO; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_bpo="$missing_bpo $p"
done
# || true: on a machine that never had QEMU, dpkg-query fails (pipefail)
qv=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null | sed 's/^[0-9]*://; s/\..*//' || true)
need_qemu=$([ "${qv:-0}" -ge "$QEMU_MIN" ] 2>/dev/null && echo no || echo yes)
[ -z "$missing$missing_bpo" ] && [ "$need_qemu" = no ] && exit 0
echo "setup: installing$missing$missing_bpo$([ "$need_qemu" = yes ] && echo " qemu-system-x86 (bookworm-backports)")" >&2
if { [ "$need_qemu" = yes ] || [ -n "$missing_bpo" ]; } && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
	printf 'Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
		$SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
fi
$SUDO apt-get update -q >/dev/null || { echo "setup: apt-get update failed" >&2; exit 1; }
[ -n "$missing" ] && $SUDO apt-get install -y -q $missing >/dev/null
[ "$need_qemu" = yes ] && $SUDO apt-get install -y -q -t bookworm-backports qemu-system-x86 >/dev/null
[ -n "$missing_bpo" ] && $SUDO apt-get install -y -q -t bookworm-backports $missing_bpo >/dev/null
exit 0
