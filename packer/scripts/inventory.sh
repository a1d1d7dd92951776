#!/bin/sh
# What the image holds, written for the artifacts beside it (and, through
# packer/scripts/sbom.py, for the SBOM inside it), plus the build VM's
# identity (the baked-image checks prove instances do not share it).
#   /tmp/image-packages.txt    every Debian package: name, version, architecture
#   /tmp/image-wheels.txt      the API venv's pip freeze
#   /tmp/image-wheelhouse.txt  the release's wheelhouse: SHA-256 and file name
# Fails if any package is still upgradable (upgrade.sh ran before the roles:
# nothing the roles installed may be older than the mirror's).
set -eu
left=$(apt list --upgradable 2>/dev/null | grep -c 'upgradable from' || true)
if [ "$left" -ne 0 ]; then
  echo "inventory.sh: packages still upgradable before the seal:" >&2
  apt list --upgradable >&2
  exit 1
fi
dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | sort > /tmp/image-packages.txt
/opt/supermega-api/current/venv/bin/python -m pip --disable-pip-version-check freeze --all \
  | sort > /tmp/image-wheels.txt
(cd /opt/supermega-api/current/wheelhouse && sha256sum -- *.whl) \
  | awk '{print $1 "\t" $2}' | sort -k2 > /tmp/image-wheelhouse.txt
[ -s /tmp/image-wheelhouse.txt ] || { echo "inventory.sh: the wheelhouse is empty" >&2; exit 1; }
{
  printf '{"machine_id": "%s", "host_keys": [' "$(cat /etc/machine-id)"
  first=1
  for key in /etc/ssh/ssh_host_*_key.pub; do
    [ $first = 1 ] || printf ', '
    printf '"%s"' "$(ssh-keygen -lf "$key" | awk '{print $2}')"
    first=0
  done
  printf '], "build_user": "%s", "build_key": "%s"}\n' "${SUDO_USER:-unknown}" \
    "$(ssh-keygen -lf "/home/${SUDO_USER}/.ssh/authorized_keys" 2>/dev/null | awk '{print $2}' | head -1)"
} > /tmp/image-build-identity.json
chmod 0644 /tmp/image-packages.txt /tmp/image-wheels.txt /tmp/image-wheelhouse.txt \
  /tmp/image-build-identity.json
