#!/bin/bash
# Build the test guest from Debian packages: the Debian cloud kernel and a
# busybox initramfs that loads the virtio modules and runs the test script
# passed on the kernel command line. Output: $OUT/vmlinuz, $OUT/initrd.img
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../build/guest}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# GUEST_KVER: another installed kernel (bench/fs and the display tests use
# the full one: the cloud kernel has no 9p for QEMU's -virtfs and no
# virtio-gpu driver)
KVER=${GUEST_KVER:-$(ls -1 /lib/modules | grep cloud | sort -V | tail -1 || true)}
[ -n "$KVER" ] || KVER=$(ls -1 /lib/modules | sort -V | tail -1)
[ -f "/boot/vmlinuz-$KVER" ] || { echo "guest: needs linux-image-cloud-amd64" >&2; exit 2; }
STAMP="$KVER $(sha256sum "$HERE/init" "$HERE/mark.c" "$HERE/fsposix.c" "$HERE/display.c" "$0" | sha256sum | cut -c1-16)"
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ]; then
	exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
R=$WORK/root
mkdir -p "$R/bin" "$R/lib/modules" "$R/proc" "$R/sys" "$R/dev" "$R/etc/acpi/PWRF" "$R/tmp" "$R/mnt"
cp /bin/busybox "$R/bin/busybox"
gcc -static -Os -s -o "$R/bin/kvkit-mark" "$HERE/mark.c"
gcc -static -Os -s -o "$R/bin/kvkit-fsposix" "$HERE/fsposix.c"
gcc -static -Os -s -I/usr/include/libdrm -o "$R/bin/kvkit-display" "$HERE/display.c"
cp "$R/bin/kvkit-fsposix" "$OUT/" # the host checks the big file with it too
cp "$HERE/init" "$R/init"
chmod +x "$R/init"
# power button: busybox acpid runs /etc/acpi/PWRF/00000080
printf '#!/bin/sh\necho "KVKIT-POWER-BUTTON" > /dev/console\n[ -e /dev/hvc0 ] && echo "KVKIT-POWER-BUTTON" > /dev/hvc0\npoweroff -f\n' > "$R/etc/acpi/PWRF/00000080"
chmod +x "$R/etc/acpi/PWRF/00000080"
# busybox udhcpc runs this to configure the interface it got a lease for
# (Debian's busybox looks for it in /etc/udhcpc)
mkdir -p "$R/etc/udhcpc"
cat > "$R/etc/udhcpc/default.script" <<'DHCP'
#!/bin/sh
case "$1" in
deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
bound|renew)
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
	[ -n "$router" ] && ip route add default via "${router%% *}"
	: > /etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
	echo "DHCP-BOUND ip=$ip router=$router dns=$dns mtu=$mtu" ;;
esac
DHCP
chmod +x "$R/etc/udhcpc/default.script"
# a dynamically linked host tool with its libraries (mkfs.ext4 for the disk tests)
add_bin() { # path [name...]
	local f=$1 l; shift
	mkdir -p "$R$(dirname "$f")"
	cp -L "$f" "$R$f"
	for l in $(ldd "$f" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'); do
		mkdir -p "$R$(dirname "$l")"
		[ -e "$R$l" ] || cp -L "$l" "$R$l"
	done
	for n in "$@"; do ln -sf "$(basename "$f")" "$R$(dirname "$f")/$n"; done
}
add_bin /sbin/mke2fs mkfs.ext4
add_bin /sbin/blkdiscard # util-linux: -z (WRITE_ZEROES), which busybox lacks
cp /etc/mke2fs.conf "$R/etc/"
deps() { local d; for d in $(modinfo -k "$KVER" -F depends "$1" 2>/dev/null | tr ',' ' '); do deps "$d"; done; echo "$1"; }
MODS=$(for m in virtio_pci virtio_console virtio-rng virtio_blk virtio_net virtio_balloon vmw_vsock_virtio_transport virtiofs 9pnet_virtio 9p crc32c_generic ext4 isofs button evdev virtio_input virtio-gpu; do deps "$m"; done | awk '!s[$0]++')
: > "$R/etc/kvkit-modules"
for m in $MODS; do
	f=$(modinfo -k "$KVER" -n "$m" 2>/dev/null) || continue
	[ -f "$f" ] || continue # built in
	n=$(basename "$f"); n=${n%%.ko*}
	case "$f" in
	*.xz) xz -dc "$f" > "$R/lib/modules/$n.ko" ;;
	*.zst) zstd -qdc "$f" > "$R/lib/modules/$n.ko" ;;
	*) cp "$f" "$R/lib/modules/$n.ko" ;;
	esac
	echo "$n" >> "$R/etc/kvkit-modules"
done
(cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$OUT/initrd.img"
cp "/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
# An uncompressed ELF vmlinux for the PVH boot test: Debian compresses the
# kernel inside the bzImage with LZ4 (legacy frame); find it and unpack it.
rm -f "$OUT/vmlinux"
off=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.find(b"\x02\x21\x4c\x18"))' "$OUT/vmlinuz")
if [ "$off" -ge 0 ] && command -v lz4 >/dev/null; then
	tail -c +$((off + 1)) "$OUT/vmlinuz" | lz4 -dc > "$OUT/vmlinux" 2>/dev/null || true
	head -c 4 "$OUT/vmlinux" | grep -q ELF || rm -f "$OUT/vmlinux"
fi
echo "$STAMP" > "$OUT/stamp"
echo "guest: kernel $KVER, modules: $(tr '\n' ' ' < "$R/etc/kvkit-modules")"
