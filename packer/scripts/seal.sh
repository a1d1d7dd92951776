#!/bin/sh
# Seal the image: nothing that identifies this build VM survives, so every
# instance makes its own identity on first boot (dev-sec issue #697: shared
# SSH host keys across instances). Runs as root via sudo; the build user is
# removed at shutdown by /usr/local/sbin/seal-final (it is still logged in now).
set -eu
build_user=${SUDO_USER:?seal.sh must run through sudo from the build user}

# cloud-init: forget this instance, its seed and its logs (runs afresh per instance).
cloud-init clean --logs --seed
rm -f /etc/sudoers.d/90-cloud-init-users.d

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
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
rm -rf /tmp/* /var/tmp/* /root/.ansible /root/.bash_history

# The last step runs at shutdown (packer's shutdown_command), once the build
# user's session is gone: remove the user, its key and its sudo rule, trim, power off.
cat > /usr/local/sbin/seal-final <<FINAL
#!/bin/sh
sleep 2
pkill -KILL -u ${build_user} || true
userdel --remove --force ${build_user} || true
rm -f /etc/sudoers.d/90-cloud-init-users /usr/local/sbin/seal-final
cloud-init clean --logs >/dev/null 2>&1 || true
# The journal lives under the build's machine-id: tell journald to write to
# /run only from here to power-off (else it recreates the directory and logs the
# shutdown into it), then drop it, so instances start with their own journal only.
journalctl --relinquish-var || true
rm -rf /var/log/journal/*
sync
fstrim --all || true
systemctl poweroff
FINAL
chmod 0700 /usr/local/sbin/seal-final
echo "sealed (build user ${build_user} is removed at shutdown)"
