#!/usr/bin/env bash
# Install the controller's system packages (Debian 12 / Ubuntu 24.04, as root).
# Everything here comes from the distribution's archive; Python tooling goes
# into the project venv (make venv), never into the system Python.
set -euo pipefail

packages=(
  make git ca-certificates curl openssl rsync
  # the shell programs' linter (make lint)
  shellcheck
  python3 python3-venv python3-pip
  # VMs: qemu (TCG or KVM), disk images, NoCloud seed ISOs
  qemu-system-x86 qemu-utils xorriso cloud-image-utils openssh-client
  # the local base image: a Debian root filesystem on a loop-mounted disk
  mmdebstrap fdisk util-linux e2fsprogs
  # the image build (Debian's Packer 1.6.6, with its qemu builder)
  packer
  # the multi-host network tests (namespaces, a scanner)
  iproute2 nmap
  # the native performance run (testing/perf): the roles' nginx config, and wrk
  nginx libnginx-mod-http-headers-more-filter wrk
  # the alert rules' tests (promtool; a real Prometheus and blackbox exporter scrape an
  # instance in CI) and the access-log metrics program (mtail)
  prometheus mtail prometheus-blackbox-exporter
  # the collector the roles' VM ships its journal to in CI (systemd-journal-remote)
  systemd-journal-remote
  # the load balancer in front of the local fleet (testing/fleet)
  haproxy
  # Ansible's apt module on this machine: a role's package step run against a local
  # repository (make unit, testing/unit/test_package_fetch.py)
  python3-apt
  # the OpenSCAP tooling here: the profiles' ids resolved in the content (make unit), the
  # scan's HTML report rendered from its results (make scap); the scan itself runs on the
  # instance, with the instance's own openscap-scanner
  openscap-scanner
  # `vagrant up` with libvirt (a local box; qemu software emulation where no KVM)
  vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-host-deps: needs root (apt-get); run it with sudo" >&2
  exit 1
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-host-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their services here (nginx would take :80; the
  # tests start what they need themselves): a policy-rc.d for the install.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# install-host-deps.sh: no service starts during the install\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  # (retries: one dropped connection to the mirror must not fail a fresh
  # machine's setup; the guests' fetches retry the same way, package_fetch.
  # apt skips an address that refused or timed out a connection for the rest
  # of its run, so a failed step runs again as a new apt process, as the
  # roles' package steps do: docs/adr/0021-package-steps-run-again.md)
  for n in 0 1 2 3 4; do
    ((n == 0)) || { echo "install-host-deps: apt failed, again in 20 s ($n of 4)" >&2; sleep 20; }
    apt-get update -q -o Acquire::Retries=5 &&
      apt-get install -y -q -o Acquire::Retries=5 --no-install-recommends "${missing[@]}" && break
    ((n < 4)) || exit 1
  done
else
  echo "install-host-deps: all ${#packages[@]} packages present"
fi
