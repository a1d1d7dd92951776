#!/usr/bin/env bash
# Run `vagrant up` here, on a machine with no Vagrant Cloud, no KVM and no
# libvirt network we may aim traffic at:
#   - a local libvirt box made from the project's Debian base image: Debian 13
#     (trixie, Ubuntu 24.04's generation) by default, VAGRANT_RELEASE=bookworm
#     for Debian 12;
#   - a NoCloud seed ISO creating the `vagrant` user with a key made here
#     (no well-known insecure key);
#   - libvirtd/virtlogd started by hand if nothing runs them (no systemd here);
#   - libvirt domain type `qemu` (software emulation) and loopback-only
#     networking (VAGRANT_LOOPBACK_ONLY=1: qemu forwards 127.0.0.1 ports).
#
#   tools/vagrant-local.sh base      build (or reuse) the box's base image
#   tools/vagrant-local.sh box       build and add the box (cached by base image)
#   tools/vagrant-local.sh env       print the environment `vagrant` needs here
#   tools/vagrant-local.sh daemons   start libvirtd/virtlogd if not running
#   tools/vagrant-local.sh stop-daemons   stop the ones this script started
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
dir=$repo/build/vagrant
# The Debian release of the local box (make up, CI's make vagrant-check):
# trixie (Debian 13) unless VAGRANT_RELEASE says bookworm (Debian 12). Molecule
# and the image use Debian 12, so every CI run converges and checks both.
release=${VAGRANT_RELEASE:-trixie}
case $release in
  bookworm) box_name=supermega/debian12-local ;;
  trixie) box_name=supermega/debian13-local ;;
  *) printf 'vagrant-local: ERROR: VAGRANT_RELEASE must be trixie or bookworm, not %s\n' "$release" >&2
     exit 2 ;;
esac
box_file=${box_name#supermega/}.box

log() { printf 'vagrant-local: %s\n' "$*" >&2; }

env_vars() {
  cat <<EOF
export VAGRANT_DEFAULT_PROVIDER=libvirt
export VAGRANT_BOX=$box_name
export VAGRANT_LIBVIRT_DRIVER=${VAGRANT_LIBVIRT_DRIVER:-$([ "${VM_ACCEL:-tcg}" = kvm ] && echo kvm || echo qemu)}
export VAGRANT_LOOPBACK_ONLY=1
export VAGRANT_SEED_ISO=$dir/seed/seed.iso
export VAGRANT_SSH_KEY=$dir/vagrant_key
EOF
}

daemons() {
  mkdir -p "$dir"
  for daemon in virtlogd libvirtd; do
    if ! pgrep -x "$daemon" >/dev/null; then
      log "starting $daemon"
      "/usr/sbin/$daemon" --daemon --pid-file "$dir/$daemon.pid"
    fi
  done
  for _ in $(seq 30); do
    virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "ERROR: libvirtd does not answer on qemu:///system"
  exit 1
}

stop_daemons() {
  for daemon in libvirtd virtlogd; do
    pidfile=$dir/$daemon.pid
    if [[ -f $pidfile ]]; then
      pid=$(cat "$pidfile")
      if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$daemon" ]]; then
        log "stopping $daemon ($pid)"
        kill "$pid"
      fi
      rm -f "$pidfile"
    fi
  done
}

box() {
  base=$(BASE_RELEASE=$release bash packer/base-image/build.sh)
  mkdir -p "$dir"
  stamp=$dir/${box_file%.box}.stamp
  if [[ -f $stamp && $(cat "$stamp") == "$(basename "$base")" ]] \
     && vagrant box list 2>/dev/null | grep -q "^$box_name "; then
    log "box $box_name is current"
  else
    work=$(mktemp -d "$dir/.box-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    cp --sparse=always "$base" "$work/box.img"
    virtual_gb=$(qemu-img info --output=json "$base" |
      python3 -c 'import json,sys; print(-(-json.load(sys.stdin)["virtual-size"] // 2**30))')
    printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$virtual_gb" \
      >"$work/metadata.json"
    tar -C "$work" -cf "$dir/$box_file" metadata.json box.img
    vagrant box add --force --name "$box_name" "$dir/$box_file" >&2
    rm -f "$dir/$box_file"
    basename "$base" >"$stamp"
  fi
  if [[ ! -f $dir/vagrant_key ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "vagrant-local" -f "$dir/vagrant_key"
  fi
  # the one NoCloud seed writer (harness/vm.py): the `vagrant` user with this key
  python3 -m harness.vm seed --iso --dir "$dir/seed" --hostname supermega-api \
    --user vagrant --ssh-pubkey "$dir/vagrant_key.pub" >/dev/null
  log "box $box_name and seed ready"
}

case ${1:-} in
  base) BASE_RELEASE=$release bash packer/base-image/build.sh >/dev/null ;;
  box) box ;;
  env) env_vars ;;
  daemons) daemons ;;
  stop-daemons) stop_daemons ;;
  *) echo "usage: $0 base|box|env|daemons|stop-daemons" >&2; exit 2 ;;
esac
