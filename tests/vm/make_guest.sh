#!/usr/bin/env bash
# Builds the tiny guest of the VM tests from Debian packages alone: the
# host's Debian kernel (linux-image-*), and an initramfs of busybox-static
# with the virtio modules of that kernel. Its /init formats the virtio disk
# (ext2, if it has no file system yet), writes /mnt/hello and 4 MiB of
# random data it never reads again (/mnt/big), then counts
# forever on the serial console: "tick N", and every 4 ticks it drops its
# caches and prints the file as read back from the disk.
#   make_guest.sh OUTDIR   ->  OUTDIR/vmlinuz OUTDIR/initrd.gz
set -euo pipefail
out=$1
mkdir -p "$out"
k=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
[ -n "$k" ] || { echo "make_guest: no kernel in /boot (install linux-image-cloud-amd64)" >&2; exit 1; }
kver=${k#/boot/vmlinuz-}
bb=$(command -v busybox || true)
[ -x /bin/busybox ] && bb=/bin/busybox
[ -n "$bb" ] || { echo "make_guest: no busybox (install busybox-static)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,lib,proc,sys,dev,mnt}
cp "$bb" "$root/bin/busybox"
mods=""
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
  f=$(find "/lib/modules/$kver/kernel" -name "$m.ko" -o -name "$m.ko.xz" | head -1)
  if [ -n "$f" ]; then
    case $f in *.xz) xz -dc "$f" > "$root/lib/$m.ko" ;; *) cp "$f" "$root/lib/$m.ko" ;; esac
    mods="$mods $m"
  fi
done
cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $mods; do insmod /lib/\$m.ko || echo "guest: insmod \$m failed"; done
i=0; while [ ! -b /dev/vda ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i+1)); done
if ! mount -t ext4 /dev/vda /mnt 2>/dev/null; then mke2fs -q /dev/vda && mount -t ext4 /dev/vda /mnt; fi
echo "guest: booted"
[ -f /mnt/hello ] || { echo "written by the guest before suspend" > /mnt/hello; sync; }
# data the guest does not read again: a resume on demand never fetches it
[ -f /mnt/big ] || { dd if=/dev/urandom of=/mnt/big bs=64k count=64 2>/dev/null; sync; }
n=0
while true; do
  n=\$((n+1)); echo "tick \$n"
  if [ \$((n % 4)) = 0 ]; then sync; echo 3 > /proc/sys/vm/drop_caches; echo "file: \$(cat /mnt/hello)"; fi
  sleep 0.5
done
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$out/initrd.gz"
cp "$k" "$out/vmlinuz"
