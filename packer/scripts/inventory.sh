#!/bin/sh
# What the image holds, written for the artifacts beside it, plus the build
# VM's identity (the baked-image checks prove instances do not share it).
set -eu
dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | sort > /tmp/image-packages.txt
/opt/supermega-api/current/venv/bin/python -m pip --disable-pip-version-check freeze --all \
  | sort > /tmp/image-wheels.txt
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
chmod 0644 /tmp/image-packages.txt /tmp/image-wheels.txt /tmp/image-build-identity.json
