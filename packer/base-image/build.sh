#!/usr/bin/env bash
# Build a bootable, cloud-style Debian qcow2 from Debian's
# packages alone: MBR + ext4 + GRUB (BIOS), serial console, systemd,
# openssh-server, python3, sudo, cloud-init (NoCloud), no SSH host keys, an
# empty machine-id. It is the base for Molecule's VMs, Packer's local qemu
# source and the local Vagrant box.
#
# Usage: build.sh [OUTPUT_DIR]        (default: .cache/images under the repo)
#        BASE_RELEASE=trixie build.sh  Debian 13 (default: bookworm, Debian 12)
# Prints the image path on stdout. The image is cached under a name holding a
# hash of its recipe (this script and its files/): a second run with the
# same recipe reuses it. A .sha256 file is written beside it.
#
# Needs: root, loop devices, mmdebstrap, qemu-img, sfdisk, partx, mkfs.ext4,
# e2fsck, unshare, and network access to a Debian mirror (DEBIAN_MIRROR).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out_dir=${1:-$repo/.cache/images}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
size=${BASE_IMAGE_SIZE:-4G}
suite=${BASE_RELEASE:-bookworm}
case $suite in
  bookworm) number=12 ;;
  trixie) number=13 ;;
  *) printf 'base-image: ERROR: BASE_RELEASE must be bookworm or trixie, not %s\n' "$suite" >&2
     exit 2 ;;
esac

log() { printf 'base-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# What a cloud image boots with. Beyond the essentials (kernel, GRUB,
# systemd, sshd, cloud-init, python3 for Ansible, qemu-guest-agent for
# Vagrant), it carries the packages Ubuntu 24.04's cloud image ships by
# default and Debian's does not (ufw, unattended-upgrades, timesyncd, cron,
# logrotate, curl), so a converge here does the same work as on the real target.
packages=(
  linux-image-cloud-amd64 grub-pc systemd-sysv systemd-resolved udev dbus
  openssh-server sudo python3 python3-apt cloud-init cloud-guest-utils
  qemu-guest-agent ca-certificates netbase iproute2 kmod procps less
  ufw unattended-upgrades systemd-timesyncd cron logrotate curl
)

# The recipe: what goes into the image. Any change gives a new cache key.
recipe_hash=$( { cat "$0"; find "$here/files" -type f -print0 | sort -z | xargs -0 cat;
                 echo "$suite $mirror $security_mirror $size ${packages[*]}"; } | sha256sum | cut -c1-16)
name="debian$number-base-$recipe_hash"
image="$out_dir/$name.qcow2"

if [[ -f $image && -f $image.sha256 ]]; then
  if (cd "$out_dir" && sha256sum --quiet -c "$name.qcow2.sha256"); then
    log "reusing cached $image"
    echo "$image"
    exit 0
  fi
  log "cached $image fails its checksum: rebuilding"
fi

# --- preflight: say exactly what is missing ---------------------------------
[[ $(id -u) -eq 0 ]] || die "needs root (loop devices, mounts, chroot); run with sudo"
for tool in mmdebstrap qemu-img sfdisk partx losetup mkfs.ext4 e2fsck dumpe2fs unshare blkid; do
  command -v "$tool" >/dev/null || die "'$tool' not found (install: mmdebstrap qemu-utils fdisk util-linux e2fsprogs)"
done
[[ -e /dev/loop-control ]] || die "no /dev/loop-control: this machine has no loop device support"

# Re-exec in a private mount namespace: mounts made here never leak into (or
# stay pinned by) other namespaces, and vanish if this script dies.
if [[ ${BASE_IMAGE_IN_NS:-} != 1 ]]; then
  mkdir -p "$out_dir"
  start=$(date +%s)
  BASE_IMAGE_IN_NS=1 unshare --mount --propagation private "$0" "$out_dir" >&2
  log "built $image in $(( $(date +%s) - start ))s ($(du -h "$image" | cut -f1) on disk)"
  echo "$image"
  exit 0
fi

work=$(mktemp -d "$out_dir/.build-XXXXXX")
raw=$work/disk.raw
root=$work/root
loop=""
cleanup() {
  set +e
  for m in dev/pts dev proc sys; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done
  mountpoint -q "$root" && umount "$root"
  [[ -n $loop ]] && { partx -d "$loop" 2>/dev/null; losetup -d "$loop"; }
  rm -rf "$work"
}
trap cleanup EXIT

log "partitioning a $size disk"
truncate -s "$size" "$raw"
echo 'label: dos
start=1MiB, type=83, bootable' | sfdisk --quiet "$raw"
loop=$(losetup --find --show "$raw")
partx -a "$loop" 2>/dev/null || partx -u "$loop"
part=${loop}p1
for _ in $(seq 50); do [[ -b $part ]] && break; sleep 0.1; done
[[ -b $part ]] || die "partition device $part did not appear"

mkfs.ext4 -q -L rootfs -m 1 "$part"
uuid=$(blkid -s UUID -o value "$part")
mkdir -p "$root"
mount "$part" "$root"

log "mmdebstrap $suite from $mirror (${#packages[@]} packages)"
include=$(IFS=,; echo "${packages[*]}")
# (the hook's "$1" is the root directory, expanded by mmdebstrap's hook shell;
# 99mmdebstrap holds the --aptopt used for this build only: an image keeping it
# would override the roles' apt settings, as it did package_fetch's retries)
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=apt --include="$include" \
  --aptopt='Acquire::Retries "3"' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_* "$1"/etc/apt/apt.conf.d/99mmdebstrap' \
  "$suite" "$root" \
  "deb $mirror $suite main" \
  "deb $mirror $suite-updates main" \
  "deb $security_mirror $suite-security main"

log "configuring the image"
cp -a "$here/files/." "$root/"
cat >"$root/etc/fstab" <<EOF
UUID=$uuid  /  ext4  errors=remount-ro,discard  0  1
EOF
echo localhost >"$root/etc/hostname"
# Every instance gets its own identity at first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
chroot "$root" passwd --lock root >/dev/null
chroot "$root" systemctl enable --quiet systemd-networkd systemd-resolved ssh-host-keys.service

# A private /dev for the chroot: the loop nodes GRUB needs plus the by-uuid
# link that makes grub-mkconfig write root=UUID=... (no udev here).
mount -t tmpfs -o mode=0755 none "$root/dev"
cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty "$loop" "$part" "$root/dev/"
mkdir -p "$root/dev/disk/by-uuid" "$root/dev/pts"
ln -s "../../${part#/dev/}" "$root/dev/disk/by-uuid/$uuid"
mount -t devpts devpts "$root/dev/pts"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
chroot "$root" grub-install --target=i386-pc --recheck "$loop" >/dev/null 2>&1 \
  || die "grub-install failed"
chroot "$root" update-grub >/dev/null 2>&1 || die "update-grub failed"
grep -q "root=UUID=$uuid" "$root/boot/grub/grub.cfg" \
  || die "grub.cfg does not boot root=UUID=$uuid"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/tmp/* "$root"/root/.bash_history
# The lists are gone: make apt's "cache age" (the lists dir mtime) say so, or
# `apt: update_cache, cache_valid_time` would skip the update it needs.
touch -d @0 "$root/var/lib/apt/lists"
umount "$root/dev/pts" "$root/dev" "$root/proc" "$root/sys"
fstrim "$root" 2>/dev/null || true
umount "$root"

# A filesystem that was not cleanly unmounted must not become an image.
dumpe2fs -h "$part" 2>/dev/null | grep -q '^Filesystem state: *clean$' \
  || die "ext4 on $part is not clean after unmount"
e2fsck -fn "$part" >/dev/null || die "e2fsck found errors in the image"
partx -d "$loop" 2>/dev/null || true
losetup -d "$loop"
loop=""

log "converting to qcow2"
qemu-img convert -O qcow2 "$raw" "$work/$name.qcow2"
mv "$work/$name.qcow2" "$image"
(cd "$out_dir" && sha256sum "$name.qcow2" >"$name.qcow2.sha256")
# Keep one base image: older recipes' images are dead weight.
find "$out_dir" -maxdepth 1 -name "debian$number-base-*.qcow2*" ! -name "$name.qcow2*" -delete
