#!/bin/sh
# Seal the image: nothing that identifies the build machine survives, so every
# instance makes its own identity at first boot (dev-sec issue #697: shared SSH
# host keys across instances). One script for every source: the qcow2 CI tests
# is sealed by exactly the code that seals the AMI.
#
# Runs as root (sudo) as the build's last provisioner, in two parts:
#   now          identity, cloud-init state, caches, logs, apt lists;
#   at shutdown  seal-final.service's ExecStop, once the build's SSH sessions
#                are gone: the build user's keys (and, with
#                SEAL_REMOVE_BUILD_USER=yes, the user), the build's journal,
#                the unit itself; then free space is trimmed. It runs however
#                the machine stops: Packer's shutdown_command (qemu) or the
#                EC2 API's StopInstances (amazon-ebs), an ACPI shutdown that
#                systemd carries out the same way.
#
# Parameters (environment):
#   SEAL_REMOVE_BUILD_USER  yes: delete the build user, its home and sudo rule
#                           (qemu: a user made only for the build);
#                           no:  keep it with an empty authorized_keys
#                           (EC2: `ubuntu`, the AMI's login user for cloud-init).
set -eu
build_user=${SUDO_USER:?seal.sh must run through sudo from the build user}
remove_user=${SEAL_REMOVE_BUILD_USER:?set SEAL_REMOVE_BUILD_USER=yes or no}
case $remove_user in
  yes|no) ;;
  *) echo "seal.sh: SEAL_REMOVE_BUILD_USER must be yes or no, not '$remove_user'" >&2; exit 2 ;;
esac
[ "$build_user" != root ] || { echo "seal.sh: refusing to seal as root's own session" >&2; exit 2; }

# cloud-init: forget this instance, its seed and its logs (runs afresh per instance).
# (The build user's sudo rule, /etc/sudoers.d/90-cloud-init-users, stays until
# the shutdown: Packer's shutdown_command needs it.)
cloud-init clean --logs --seed

# Identity: SSH host keys, machine-id, the random seed, the self-signed TLS key.
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed
# The build's hostname would name the first lines of every instance's journal
# (before cloud-init sets the instance's own): boot as plain "localhost".
echo localhost > /etc/hostname
if [ -f /etc/nginx/tls/selfsigned ]; then
  rm -f /etc/nginx/tls/server.key /etc/nginx/tls/server.crt
fi

# Caches and logs of the build.
apt-get clean
rm -rf /var/lib/apt/lists/*
touch -d @0 /var/lib/apt/lists        # tell apt its (empty) cache is stale
rm -f /var/lib/fail2ban/fail2ban.sqlite3
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /tmp/* /var/tmp/* /root/.ansible /root/.bash_history

# The last part, at shutdown. ExecStop of a unit that is "active" from now
# on runs when the machine stops, before journald and the file systems go.
cat > /usr/local/sbin/seal-final <<FINAL
#!/bin/sh
# Written by packer/scripts/seal.sh; removes itself. Runs once, at the build's shutdown.
pkill -KILL -u ${build_user} || true
if [ ${remove_user} = yes ]; then
  userdel --remove --force ${build_user} || true
else
  for keys in ~${build_user}/.ssh/authorized_keys /root/.ssh/authorized_keys; do
    [ -f "\$keys" ] && : > "\$keys"
  done
  rm -rf ~${build_user}/.ansible ~${build_user}/.bash_history ~${build_user}/.cache
fi
rm -f /etc/sudoers.d/90-cloud-init-users
cloud-init clean --logs >/dev/null 2>&1 || true
# The journal lives under the build's machine-id: journald writes to /run only
# from here to power-off, and the build's files go, so an instance's journal
# holds its own boots only.
journalctl --relinquish-var || true
rm -rf /var/log/journal/*
systemctl disable seal-final.service >/dev/null 2>&1 || true
rm -f /etc/systemd/system/seal-final.service /usr/local/sbin/seal-final
sync
fstrim --all || true
FINAL
chmod 0700 /usr/local/sbin/seal-final
cat > /etc/systemd/system/seal-final.service <<'UNIT'
[Unit]
Description=Seal the image at the build's shutdown (packer/scripts/seal.sh)
After=systemd-journald.service local-fs.target ssh.service
DefaultDependencies=no
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/usr/local/sbin/seal-final
TimeoutStopSec=120
UNIT
systemctl daemon-reload
systemctl start seal-final.service
echo "sealed; at shutdown: build user ${build_user} $( [ "$remove_user" = yes ] && echo removed || echo kept without keys)"
