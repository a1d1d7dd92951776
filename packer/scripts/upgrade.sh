#!/bin/sh
# Every available update, applied at the bake before the roles run (both
# sources): an instance starts with the mirror's packages of the bake's day,
# not the base image's, and unattended-upgrades has nothing to catch up on at
# its first boot (docs/adr/0019-patched-at-bake.md). A kernel update takes
# effect at the instances' first boot. Fails if anything is still
# upgradable afterwards (and inventory.sh checks again before the seal).
set -eu
export DEBIAN_FRONTEND=noninteractive
# (Ubuntu's cloud image may run apt-daily at its first boot: wait for its lock)
aptget() { apt-get -q -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 "$@"; }
# apt skips a mirror address that refused or timed out a connection for the
# rest of its run, so its own Acquire::Retries cannot outlast such an outage:
# a failed apt step runs again, as a new apt process, after a pause (as the
# roles' package steps do: docs/adr/0021-package-steps-run-again.md)
again() {
  n=0
  until "$@"; do
    n=$((n + 1)); [ "$n" -le 4 ] || return 1
    echo "upgrade.sh: failed, running it again in 20 s ($n of 4): $*" >&2; sleep 20
  done
}
again aptget update
# a configuration file changed by hand (none should be: this runs before the
# roles) stays as it is
again aptget -y -o Dpkg::Options::=--force-confold full-upgrade
aptget -y autoremove --purge
left=$(apt list --upgradable 2>/dev/null | grep -c 'upgradable from' || true)
if [ "$left" -ne 0 ]; then
  echo "upgrade.sh: still upgradable after the upgrade:" >&2
  apt list --upgradable >&2
  exit 1
fi
echo "upgrade.sh: nothing left upgradable"
