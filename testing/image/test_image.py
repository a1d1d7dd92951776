"""Checks only a baked image needs: every instance is its own machine.

Run by `molecule test -s image` against two instances booted from the image,
with the build VM's identity (recorded by Packer just before sealing) for
comparison.
"""

import json
import os
import re

import pytest

from harness.image import build_identity, instances, inventory  # noqa: F401 (fixtures)

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
# What an instance's boot must not run, and what it must run only after the
# API serves (the instance_boot role; ADR 0014). Written here, not read from
# the role: testing/static/test_roles.py holds the role's defaults to these
# lists, so removing a unit from the role fails there, and a unit that runs
# at boot anyway fails here.
MASKED_UNITS = ["e2scrub_reap.service", "systemd-binfmt.service",
                "proc-sys-fs-binfmt_misc.automount"]
MASKED_GENERATORS = ["systemd-cryptsetup-generator", "systemd-integritysetup-generator",
                     "systemd-veritysetup-generator", "systemd-hibernate-resume-generator",
                     "systemd-system-update-generator", "systemd-gpt-auto-generator"]
DEFERRED_UNITS = ["cloud-config.service", "cloud-final.service", "fail2ban.service",
                  "unattended-upgrades.service", "supermega-metrics-config.service",
                  "dbus.service", "systemd-logind.service", "ssh.service", "cron.service",
                  "systemd-user-sessions.service"]
pytestmark = pytest.mark.skipif(not INVENTORY, reason="run by molecule test -s image")


def host_key_fingerprints(host):
    out = host.check_output("for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $k; done")
    return {line.split()[1] for line in out.splitlines()}


def test_two_instances_were_booted(instances):
    assert len(instances) == 2


def test_every_vm_may_run_on_every_core():
    """The harness, not the image: Molecule's create runs under mitogen's
    strategy, which pins what it starts to one core on a small machine; the
    VMs must not inherit that (harness/vm.py use_every_core), or two
    share one core while the other idles."""
    run_dir = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    every_core = set(range(os.cpu_count()))
    allowed = {}
    for name in sorted(os.listdir(os.path.join(run_dir, "vms"))):
        with open(os.path.join(run_dir, "vms", name, "vm.json")) as f:
            allowed[name] = os.sched_getaffinity(json.load(f)["pid"])
    assert len(allowed) == 2 and all(cpus == every_core for cpus in allowed.values()), allowed


def test_ssh_host_keys_are_unique_per_instance(instances, build_identity):
    keys = [host_key_fingerprints(h) for h in instances.values()]
    assert all(keys)
    assert not keys[0] & keys[1], "instances share an SSH host key"
    for k in keys:
        assert not k & set(build_identity["host_keys"]), "an instance kept the build's host key"


def test_machine_ids_are_unique_per_instance(instances, build_identity):
    ids = [h.file("/etc/machine-id").content_string.strip() for h in instances.values()]
    assert all(len(i) == 32 for i in ids)
    assert ids[0] != ids[1]
    assert build_identity["machine_id"] not in ids


def test_tls_keys_are_unique_per_instance(instances):
    fingerprints = [
        h.check_output("sudo openssl x509 -in /etc/nginx/tls/server.crt -noout "
                       "-fingerprint -sha256")
        for h in instances.values()]
    assert fingerprints[0] != fingerprints[1]
    for h in instances.values():
        assert h.check_output("sudo stat -c '%U %a' /etc/nginx/tls/server.key") == "root 600"


def test_build_user_is_gone(instances, build_identity):
    user = build_identity["build_user"]
    assert user and user != "admin"
    for h in instances.values():
        assert not h.user(user).exists
        assert not h.file(f"/home/{user}").exists
        assert h.run(f"sudo grep -rl {user} /etc/sudoers /etc/sudoers.d").stdout.strip() == ""


def test_no_authorized_key_but_the_instances_own(instances):
    for h in instances.values():
        keys = h.check_output("sudo sh -c 'cat /root/.ssh/authorized_keys "
                              "/home/*/.ssh/authorized_keys 2>/dev/null; true'")
        assert [line for line in keys.splitlines() if line.strip()] and \
            all("molecule-image" in line for line in keys.splitlines() if line.strip())


def test_cloud_init_ran_for_this_instance(instances):
    ids = [h.check_output("cloud-init query instance_id") for h in instances.values()]
    assert ids[0] != ids[1]
    for h in instances.values():
        assert "status: done" in h.check_output("cloud-init status")


def test_the_boot_took_the_fast_paths(instances):
    """docs/adr/0014-boot-path.md: ufw's rules from the kept ruleset (not ufw-init),
    cloud-init on the one datasource the image is for and without its local
    stage, nothing of e2scrub, binfmt_misc, KVM or the generators that find
    nothing here, the work off the API's path after it."""
    for h in instances.values():
        ufw = h.check_output("sudo journalctl -b --no-pager -q -u ufw.service")
        assert "loaded from the ruleset kept" in ufw, ufw
        assert h.check_output("cloud-init query platform") == "nocloud"
        datasources = h.check_output("sudo cat /run/cloud-init/ds-identify.log")
        assert re.search(r"^DSLIST=NoCloud None$", datasources, re.MULTILINE), datasources
        for unit in MASKED_UNITS:
            assert h.check_output(f"systemctl is-enabled {unit} || true") == "masked", unit
        # the generators that find nothing here do not run (a link to /dev/null)
        for generator in MASKED_GENERATORS:
            link = h.check_output(f"readlink /etc/systemd/system-generators/{generator} || true")
            assert link == "/dev/null", (generator, link)
        # KVM is refused (hardening): the emulated CPU offers virtualisation,
        # so udev would have loaded it at boot
        flags = h.check_output("grep -m1 '^flags' /proc/cpuinfo")
        assert re.search(r"\b(svm|vmx)\b", flags), f"no svm/vmx: the check proves nothing: {flags}"
        modules = h.check_output("cut -d' ' -f1 /proc/modules").split()
        assert not {"kvm", "kvm_amd", "kvm_intel"} & set(modules), modules
        # the qcow2's network comes up without cloud-init: no local stage
        # (instance_boot_local_stage false), the datasource found by the network stage
        assert h.check_output("systemctl is-enabled cloud-init-local.service || true") == "masked"
        # the initramfs holds the drivers of the qcow2's own disk hardware only
        # (instance_boot_initramfs_modules dep): virtio's, not Xen's (with
        # most it has 190 modules, xen-blkfront among them; NVMe is built
        # into Debian's cloud kernel, so its absence would prove nothing)
        conf = h.check_output("cat /etc/initramfs-tools/conf.d/supermega-modules.conf")
        assert re.search(r"^MODULES=dep$", conf, re.MULTILINE), conf
        modules = h.check_output("sudo lsinitramfs /boot/initrd.img-$(uname -r) | grep '[.]ko'")
        assert "/virtio_blk.ko" in modules and "/xen-blkfront.ko" not in modules, modules
        # only the modules an instance uses ran (the log names each module it runs)
        log = h.check_output("sudo cat /var/log/cloud-init.log")
        ran = {m.replace("-", "_") for m in re.findall(r"Running module (\S+) ", log)}
        # (and write_files, for the files in each one's user-data: instance-1's
        # scrape settings, instance-2's edge settings)
        needed = {"users_groups", "ssh", "write_files"}
        assert needed <= ran, ran
        assert not {"grub_dpkg", "apt_configure", "package_update_upgrade_install"} & ran, ran
        # and the boot work off the API's path (the role's list: cloud-init's
        # config and final stages, the scrape settings, the login services)
        # waited until the API served, ordered only: none is bound to the API,
        # so SSH still comes up on an instance whose nginx refuses its settings
        for unit in DEFERRED_UNITS:
            deps = h.check_output(f"systemctl show -p After -p Requires -p Requisite -p BindsTo "
                                  f"{unit}")
            props = dict(line.split("=", 1) for line in deps.splitlines())
            assert {"supermega-api.service", "nginx.service"} <= set(props["After"].split()), (
                unit, props)
            bound = " ".join(props[k] for k in ("Requires", "Requisite", "BindsTo"))
            assert "nginx" not in bound and "supermega-api" not in bound, (unit, props)


def test_no_configuration_ran_at_boot(instances):
    """The image boots ready: nothing but the instance's identity is made at boot."""
    for h in instances.values():
        # Ansible leaves ~/.ansible behind wherever it runs; the build's was sealed away,
        # and the Testinfra checks run over plain SSH.
        assert not h.file("/root/.ansible").exists
        units = h.check_output("systemctl list-units --all --no-legend --plain 'ansible*' "
                               "'packer*' 'seal*'")
        assert units.strip() == ""


def test_build_logs_and_state_were_cleaned(instances):
    for h in instances.values():
        # the journal holds this instance's boot only, nothing of the build
        boots = re.findall(r"^\s*-?\d+ [0-9a-f]{32} ",
                           h.check_output("journalctl --list-boots --no-pager"), re.MULTILINE)
        assert len(boots) == 1, boots
        assert h.check_output("sudo ls /var/log/journal").split() == [
            h.file("/etc/machine-id").content_string.strip()]
        assert len(h.check_output("ls /var/lib/cloud/instances").split()) == 1
        # (sudo logs this suite's own commands, and auditd's EXECVE records of
        # sudo carry their arguments, some of which name the build user: those
        # lines are this suite's, not the build's)
        journal = "\n".join(line for line in
                            h.check_output("sudo journalctl --no-pager -q").splitlines()
                            if "COMMAND=" not in line
                            and not re.search(r" audit(\[\d+\])?: EXECVE ", line))
        assert "packer" not in journal
        assert "supermega-api-build" not in journal   # the build VM's hostname


def test_the_login_users_start_up_files_are_its_own(instances):
    """cloud-init makes the login user at first boot from /etc/skel, which
    the image hardened: its shell start-up files are readable by it (and
    its group) only (ANSSI R50)."""
    for name, h in instances.items():
        user = h.check_output("id -un")
        modes = h.check_output(f"stat -c '%a %n' ~{user}/.bashrc ~{user}/.profile "
                               f"~{user}/.bash_logout").splitlines()
        assert modes and all(m.split()[0] == "640" for m in modes), (name, modes)


def test_every_instance_boots_with_the_hardening_kernel_arguments(instances):
    expected = {"mce=0", "page_alloc.shuffle=1", "slab_nomerge=yes",
                "rng_core.default_quality=500"}
    for name, h in instances.items():
        running = set(h.file("/proc/cmdline").content_string.split())
        assert expected <= running, (name, sorted(expected - running))
