#!/bin/bash
# Build the UEFI test guest: a raw GPT disk image from Debian packages,
#   partition 1: EFI system partition (FAT): systemd-boot as the default
#                loader \EFI\BOOT\BOOTX64.EFI, the kernel and initramfs
#   partition 2: ext4 root, a Debian bookworm made by mmdebstrap: systemd,
#                dbus (systemd-logind, which turns the power button into a
#                shutdown, does not start without it), the cloud kernel,
#                efibootmgr, socat, qemu-guest-agent, dmidecode
# The root is found by its partition label, so the same image boots from
# virtio-blk (vda) and NVMe (nvme0n1).
# The guest prints KVKIT-INIT on hvc0 when systemd starts its first unit;
# once systemd has finished booting, it prints KVKIT-MULTI-USER on
# hvc0, connects to the host on vsock port 1025, sends "Ready" the way
# podman's ready service does, then keeps the connection open as a shell
# (the tests' command channel). With nobody there (no vsock device, no
# listener) it powers off: bench/boot's UEFI case times boots that way.
# qemu-guest-agent listens on vsock port 1234. Consoles: ttyS0, then hvc0
# (virtio_console is a module in Debian's cloud kernel: with console=hvc0
# alone the initramfs has no console and the boot never reached the root).
# Output: $OUT/disk.raw, and the image's vmlinuz and initrd.img for direct
# boot (default build/efi). Needs root, mmdebstrap,
# dosfstools, mtools, fdisk, e2fsprogs and the Debian mirror.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../build/efi}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MIRROR=${KVKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STAMP="$(sha256sum "$0" | cut -c1-16)"
if [ -f "$OUT/disk.raw" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP" ]; then
	exit 0
fi
rm -f "$OUT/disk.raw" "$OUT/stamp" "$OUT/vmlinuz" "$OUT/initrd.img"
WORK=$(mktemp -d /var/tmp/kvkit-efi.XXXXXX)
# mmdebstrap mounts /proc and /sys in the tree: a run cut short can leave
# them, and a recursive delete must not walk into the host's (|| true:
# under set -e a failed umount, nothing being mounted, was the exit status)
trap 'umount -R "$WORK/root/proc" "$WORK/root/sys" "$WORK/root/dev" 2>/dev/null || true; rm -rf --one-file-system "$WORK"' EXIT
R=$WORK/root

# the guest's own units, written into the tree by a customize hook
cat > "$WORK/ready.service" <<'UNIT'
[Unit]
Description=Tell the host the guest is up (podman's Ready on vsock port 1025), then serve a shell on that connection
[Service]
ExecStart=/bin/sh -c 'systemctl is-system-running --wait >/dev/null; echo KVKIT-MULTI-USER > /dev/hvc0; socat VSOCK-CONNECT:2:1025 SYSTEM:"echo Ready; exec /bin/sh 2>&1" || systemctl poweroff'
Restart=no
[Install]
WantedBy=multi-user.target
UNIT
# CoreOS Ignition's applehv platform: one HTTP GET to the host on vsock
# port 1024 (podman relays it to its own server on first boot)
cat > "$WORK/ignition.service" <<'UNIT'
[Unit]
Description=Fetch the Ignition config over vsock port 1024, as Ignition's applehv platform does
Before=kvkit-ready.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'modprobe vmw_vsock_virtio_transport; printf "GET / HTTP/1.1\\r\\nHost: d\\r\\nAccept: application/json\\r\\nConnection: close\\r\\n\\r\\n" | socat -t 30 - VSOCK-CONNECT:2:1024 > /run/kvkit-ignition.http || true'
[Install]
WantedBy=multi-user.target
UNIT
# bench/boot's "init" mark: the first unit systemd runs, before sysinit
cat > "$WORK/init-mark.service" <<'UNIT'
[Unit]
Description=Print KVKIT-INIT on hvc0 as soon as systemd runs (bench/boot/efi.sh)
DefaultDependencies=no
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'modprobe virtio_console; echo KVKIT-INIT > /dev/hvc0 || true'
[Install]
WantedBy=sysinit.target
UNIT
cat > "$WORK/qga.service" <<'UNIT'
[Unit]
Description=QEMU guest agent on vsock port 1234 (kvkit --timesync)
[Service]
ExecStart=/usr/sbin/qemu-ga --method=vsock-listen --path=3:1234
[Install]
WantedBy=multi-user.target
UNIT

mmdebstrap --mode=root --variant=minbase \
	--include=systemd,systemd-sysv,udev,dbus,linux-image-cloud-amd64,systemd-boot-efi,efibootmgr,socat,qemu-guest-agent,kmod,iproute2,procps,dmidecode \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='echo kvkit-efi > "$1/etc/hostname"' \
	--customize-hook='printf "PARTLABEL=root / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
	--customize-hook="cp $WORK/ready.service \"\$1/etc/systemd/system/kvkit-ready.service\"" \
	--customize-hook="cp $WORK/qga.service \"\$1/etc/systemd/system/kvkit-qga.service\"" \
	--customize-hook="cp $WORK/ignition.service \"\$1/etc/systemd/system/kvkit-ignition.service\"" \
	--customize-hook="cp $WORK/init-mark.service \"\$1/etc/systemd/system/kvkit-init-mark.service\"" \
	--customize-hook='chroot "$1" systemctl enable kvkit-ready.service kvkit-qga.service kvkit-ignition.service kvkit-init-mark.service' \
	--customize-hook='chroot "$1" passwd -d root' \
	bookworm "$R" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 || { tail -30 "$WORK/mmdebstrap.log"; exit 1; }

KVER=$(ls "$R/lib/modules" | sort -V | tail -1)
# ESP: systemd-boot, one entry, no menu
ESP=$WORK/esp.img
mkfs.vfat -C -n KVKIT-ESP "$ESP" $((64 * 1024)) >/dev/null
mmd -i "$ESP" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$ESP" "$R/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$ESP" "$R/boot/vmlinuz-$KVER" ::/vmlinuz
mcopy -i "$ESP" "$R/boot/initrd.img-$KVER" ::/initrd.img
printf 'timeout 0\ndefault debian.conf\n' > "$WORK/loader.conf"
printf 'title Debian (kvkit UEFI test image)\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=PARTLABEL=root rw console=ttyS0 console=hvc0 quiet\n' > "$WORK/debian.conf"
mcopy -i "$ESP" "$WORK/loader.conf" ::/loader/loader.conf
mcopy -i "$ESP" "$WORK/debian.conf" ::/loader/entries/debian.conf

# root: the tree plus room for the journal and the tests' files
used=$(du -sm "$R" | cut -f1)
ROOTFS=$WORK/root.img
mkfs.ext4 -q -F -L kvkit-root -d "$R" "$ROOTFS" $((used + 384))M >/dev/null

esp_mib=64 root_mib=$(( $(stat -c %s "$ROOTFS") >> 20 ))
truncate -s $((1 + esp_mib + root_mib + 1))M "$WORK/disk.raw"
sfdisk -q "$WORK/disk.raw" <<EOF
label: gpt
start=1MiB, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP
start=$((1 + esp_mib))MiB, size=${root_mib}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
EOF
dd if="$ESP" of="$WORK/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$ROOTFS" of="$WORK/disk.raw" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
mv "$WORK/disk.raw" "$OUT/disk.raw"
# the same kernel and initramfs beside it: test_efi.py also boots the image's
# system directly (--bootloader linux), which the nested rig can run
cp "$R/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp "$R/boot/initrd.img-$KVER" "$OUT/initrd.img"
echo "$STAMP" > "$OUT/stamp"
echo "efi-image: $OUT/disk.raw ($(du -m "$OUT/disk.raw" | cut -f1) MiB used), kernel $KVER"
