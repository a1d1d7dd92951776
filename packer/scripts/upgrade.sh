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
apt="apt-get -q -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600"
$apt update
# a configuration file changed by hand (none should be: this runs before the
# roles) stays as it is
$apt -y -o Dpkg::Options::=--force-confold full-upgrade
$apt -y autoremove --purge
left=$(apt list --upgradable 2>/dev/null | grep -c 'upgradable from' || true)
if [ "$left" -ne 0 ]; then
  echo "upgrade.sh: still upgradable after the upgrade:" >&2
  apt list --upgradable >&2
  exit 1
fi
echo "upgrade.sh: nothing left upgradable"
