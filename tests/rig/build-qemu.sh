#!/bin/bash
# Build the rig's own outer QEMU: Debian's QEMU 10.0 source (bookworm-backports)
# with the patches in tests/rig/qemu/, x86_64-softmmu only. Test
# infrastructure: kvkit itself never runs QEMU.
#
# Why: stock QEMU's TCG aborts ("tcg_handle_interrupt: assertion failed")
# when an L2 guest writes CR8 under SVM virtual interrupt masking, which
# every UEFI guest does (qemu-cr8-bql.patch, docs/testing.md).
#
# The result is cached outside the checkout, keyed by the patches, the
# configure flags and the source version, so a machine builds it once
# (about 15 minutes on 2 cores). Prints the path of the qemu-system-x86_64 binary.
#   build-qemu.sh          build if needed, print the binary's path
#   build-qemu.sh --path   print the path if it is built, exit 1 if not
# KVKIT_RIG_CACHE: where builds are kept (default /var/cache/kvkit-rig).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${KVKIT_RIG_CACHE:-/var/cache/kvkit-rig}
SRC_PKG=qemu
SRC_SUITE=bookworm-backports
# The patch was verified against this upstream release: a different one is
# refused rather than patched blindly.
UPSTREAM=10.0.2
# Only the emulator itself is built (half of QEMU's 2500 objects: no tools,
# tests or softfloat test suites); its data files (SeaBIOS, option ROMs)
# are Debian's, from the qemu-system-data of the same release, which
# nested-kvm.sh passes with -L.
CONFIGURE="--prefix=/usr --target-list=x86_64-softmmu --python=/usr/bin/python3
--without-default-features --enable-tcg --enable-kvm --enable-virtfs --enable-attr
--enable-fdt=system --enable-pixman --disable-docs --disable-download --disable-install-blobs --disable-tools"
KEY=$( (echo "$CONFIGURE"; cat "$HERE"/qemu/*.patch) | sha256sum | cut -c1-16)
OUT=$CACHE/qemu-$UPSTREAM-$KEY
BIN=$OUT/bin/qemu-system-x86_64

if [ "${1:-}" = --path ]; then
	[ -x "$BIN" ] && { echo "$BIN"; exit 0; }
	exit 1
fi
[ -x "$BIN" ] && { echo "$BIN"; exit 0; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
mkdir -p "$CACHE" 2>/dev/null || { $SUDO mkdir -p "$CACHE" && $SUDO chown "$(id -u)" "$CACHE"; }
# one build at a time on a machine; a second caller waits for the first
exec 9>"$CACHE/.lock"
flock 9
[ -x "$BIN" ] && { echo "$BIN"; exit 0; }

log() { echo "build-qemu: $*" >&2; }
export DEBIAN_FRONTEND=noninteractive
# meson >= 1.5 and python3-pycotap come from bookworm-backports (QEMU 10's
# configure refuses bookworm's meson 1.0); the source package from its
# deb-src entry
BUILD_DEPS="ninja-build pkg-config libglib2.0-dev libpixman-1-dev libfdt-dev libattr1-dev zlib1g-dev
python3-venv bzip2 flex bison"
SOURCES=/etc/apt/sources.list.d/bookworm-backports.sources # the name setup.sh uses
if ! grep -qs "deb-src" "$SOURCES"; then
	printf 'Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
		$SUDO tee "$SOURCES" >/dev/null
	$SUDO apt-get update -q >/dev/null || { log "apt-get update failed"; exit 1; }
fi
missing=""
for p in $BUILD_DEPS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -n "$missing" ] && { log "installing$missing"; $SUDO apt-get install -y -q $missing >/dev/null; }
mv_ok=$(dpkg-query -W -f='${Version}' meson 2>/dev/null | awk -F. '{print ($1 > 1 || ($1 == 1 && $2 >= 5)) ? "yes" : "no"}' || true)
if [ "$mv_ok" != yes ] || ! dpkg-query -W python3-pycotap >/dev/null 2>&1; then
	log "installing meson and python3-pycotap from $SRC_SUITE"
	$SUDO apt-get install -y -q -t "$SRC_SUITE" meson python3-pycotap >/dev/null
fi

WORK=$(mktemp -d /var/tmp/kvkit-qemu.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
log "fetching the $SRC_PKG source from $SRC_SUITE"
# Only the upstream tarball is needed. apt says where it is and its SHA-256
# (from the signed index); the mirror has been seen to serve it while the
# .dsc and Debian's packaging 404, so it is fetched alone and checked.
read -r url file sum < <(apt-get source -q --print-uris "$SRC_PKG/$SRC_SUITE" 2>/dev/null |
	awk '/\.orig\.tar\.xz/ {gsub("\047", "", $1); sub("SHA256:", "", $4); print $1, $2, $4}')
[ -n "${file:-}" ] || { log "apt knows no $SRC_PKG source in $SRC_SUITE (a deb-src entry in $SOURCES)"; exit 1; }
[ "$file" = "qemu_$UPSTREAM+ds.orig.tar.xz" ] ||
	{ log "$SRC_SUITE has $file, not QEMU $UPSTREAM: check the patches against it and update UPSTREAM"; exit 1; }
curl -sSf -o "$file" "$url" || { log "cannot fetch $url"; exit 1; }
echo "$sum  $file" | sha256sum -c --quiet - || { log "$file does not match apt's checksum"; exit 1; }
ORIG=$WORK/$file
tar -xf "$ORIG"
cd qemu-$UPSTREAM
for p in "$HERE"/qemu/*.patch; do
	patch -p1 --forward --quiet < "$p" || { log "$(basename "$p") does not apply"; exit 1; }
done
log "configuring and building (about 15 minutes on 2 cores); log: $OUT.log"
mkdir -p "$OUT.tmp/bin"
{
	# shellcheck disable=SC2086 # CONFIGURE is a list of flags
	./configure $CONFIGURE && ninja -C build -j"$(nproc)" qemu-system-x86_64 &&
	cp build/qemu-system-x86_64 "$OUT.tmp/bin/"
} >"$OUT.log" 2>&1 || { tail -30 "$OUT.log" >&2; rm -rf "$OUT.tmp"; log "build failed"; exit 1; }
# the finished tree is renamed into place: a build cut short leaves no binary
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "built $BIN"
echo "$BIN"
