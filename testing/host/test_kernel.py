"""Kernel parameters, modules, limits (linux-baseline sysctl-*, os-10)."""

import pytest

# The hardened kernel: dev-sec linux-baseline's sysctl controls (their ids
# beside them) and, after them, kernel self-protection beyond it (CIS 1.5,
# KSPP). Written here, not read from the role: removing a value from the role
# fails testing/static/test_roles.py (the role must set every one of these)
# and the running kernel's value fails the test below.
EXPECTED_SYSCTLS = {
    "net.ipv4.ip_forward": 0,  # sysctl-01
    "net.ipv4.conf.all.forwarding": 0,  # sysctl-01
    "net.ipv6.conf.all.forwarding": 0,  # sysctl-19
    "net.ipv4.conf.all.rp_filter": 1,  # sysctl-02
    "net.ipv4.conf.default.rp_filter": 1,  # sysctl-02
    "net.ipv4.icmp_ignore_bogus_error_responses": 1,  # sysctl-03
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,  # sysctl-04
    "net.ipv4.icmp_ratelimit": 100,  # sysctl-05
    "net.ipv4.icmp_ratemask": 88089,  # sysctl-06
    "net.ipv4.tcp_timestamps": 0,  # sysctl-07
    "net.ipv4.conf.all.arp_ignore": 2,  # sysctl-08 (1), ANSSI BP-028 R12 (2: stricter)
    "net.ipv4.conf.all.arp_announce": 2,  # sysctl-09
    "net.ipv4.tcp_rfc1337": 1,  # sysctl-10
    "net.ipv4.tcp_syncookies": 1,  # sysctl-11
    "net.ipv4.conf.all.shared_media": 1,  # sysctl-12
    "net.ipv4.conf.default.shared_media": 1,  # sysctl-12
    "net.ipv4.conf.all.accept_source_route": 0,  # sysctl-13
    "net.ipv4.conf.default.accept_source_route": 0,  # sysctl-13
    "net.ipv6.conf.all.accept_source_route": 0,  # sysctl-13
    "net.ipv6.conf.default.accept_source_route": 0,  # sysctl-13
    "net.ipv4.conf.all.accept_redirects": 0,  # sysctl-14
    "net.ipv4.conf.default.accept_redirects": 0,  # sysctl-14
    "net.ipv4.conf.all.secure_redirects": 0,  # sysctl-15
    "net.ipv4.conf.default.secure_redirects": 0,  # sysctl-15
    "net.ipv4.conf.all.send_redirects": 0,  # sysctl-16
    "net.ipv4.conf.default.send_redirects": 0,  # sysctl-16
    "net.ipv4.conf.all.log_martians": 1,  # sysctl-17
    "net.ipv4.conf.default.log_martians": 1,  # sysctl-17
    "net.ipv6.conf.all.accept_redirects": 0,  # sysctl-20
    "net.ipv6.conf.default.accept_redirects": 0,  # sysctl-20
    "kernel.sysrq": 0,  # sysctl-30
    "fs.suid_dumpable": 0,  # sysctl-31a
    "kernel.randomize_va_space": 2,  # sysctl-32
    "fs.protected_fifos": 2,  # sysctl-34
    "fs.protected_hardlinks": 1,  # sysctl-34
    "fs.protected_regular": 2,  # sysctl-34
    "fs.protected_symlinks": 1,  # sysctl-34
    "kernel.kptr_restrict": 2,
    "kernel.dmesg_restrict": 1,
    "kernel.yama.ptrace_scope": 2,
    "kernel.unprivileged_bpf_disabled": 1,
    "net.core.bpf_jit_harden": 2,
    "kernel.perf_event_paranoid": 3,
    "dev.tty.ldisc_autoload": 0,
    "vm.unprivileged_userfaultfd": 0,
    "kernel.core_uses_pid": 1,
    # ANSSI BP-028 intermediary (R9, R12, R13), as ComplianceAsCode's content checks it
    "kernel.panic_on_oops": 1,
    "kernel.perf_cpu_time_max_percent": 1,
    "kernel.perf_event_max_sample_rate": 1,
    "kernel.pid_max": 65536,
    "vm.mmap_min_addr": 65536,
    "net.ipv4.conf.all.accept_local": 0,
    "net.ipv4.conf.all.arp_filter": 0,
    "net.ipv4.conf.all.drop_gratuitous_arp": 1,
    "net.ipv4.conf.all.route_localnet": 0,
    "net.ipv4.ip_local_port_range": "32768 65535",
    "net.ipv6.conf.all.accept_ra_defrtr": 0,
    "net.ipv6.conf.default.accept_ra_defrtr": 0,
    "net.ipv6.conf.all.accept_ra_pinfo": 0,
    "net.ipv6.conf.default.accept_ra_pinfo": 0,
    "net.ipv6.conf.all.accept_ra_rtr_pref": 0,
    "net.ipv6.conf.default.accept_ra_rtr_pref": 0,
    "net.ipv6.conf.all.autoconf": 0,
    "net.ipv6.conf.default.autoconf": 0,
    "net.ipv6.conf.all.max_addresses": 1,
    "net.ipv6.conf.default.max_addresses": 1,
    "net.ipv6.conf.all.router_solicitations": 0,
    "net.ipv6.conf.default.router_solicitations": 0,
}


# Added to the kernel command line (ANSSI BP-028 R8), from the next boot.
EXPECTED_KERNEL_ARGUMENTS = ["mce=0", "page_alloc.shuffle=1", "slab_nomerge=yes",
                             "rng_core.default_quality=500"]


def test_the_next_boot_has_the_hardening_kernel_arguments(host):
    """GRUB's generated menu (what the next boot runs) gives every kernel
    entry the arguments. (An instance of the image boots with them:
    testing/image/test_image.py reads its /proc/cmdline.)"""
    menu = host.check_output("sudo cat /boot/grub/grub.cfg")
    entries = [line.split() for line in menu.splitlines()
               if line.strip().startswith("linux") and "vmlinuz" in line]
    assert entries, "no kernel entry in grub.cfg"
    for words in entries:
        assert set(EXPECTED_KERNEL_ARGUMENTS) <= set(words), words


@pytest.mark.parametrize("key,value", sorted(EXPECTED_SYSCTLS.items()))
def test_sysctl(host, key, value):
    actual = host.sysctl(key)
    if isinstance(value, str):       # several numbers: the kernel separates them with tabs
        actual = " ".join(str(actual).split())
    assert actual == value


def test_no_sysctl_file_sets_a_hardened_parameter_otherwise(host):
    """Every file systemd-sysctl reads (as it reads them: a file in /etc
    shadows one of the same name in /usr/lib) gives each hardened parameter
    its hardened value or leaves it alone: the running value does not hang
    on the role's file sorting last, and an auditor reading the configuration
    (OpenSCAP does, /lib/sysctl.d included) finds one answer. Debian's
    99-protect-links.conf (fs.protected_fifos = 1) and systemd's
    50-pid-max.conf are diverted, their settings in /etc/sysctl.d."""
    config = host.check_output("systemd-analyze cat-config sysctl.d")
    # and every file as it lies, whoever reads it (merged /usr: /lib is /usr/lib)
    raw = host.check_output("cat /etc/sysctl.conf /etc/sysctl.d/*.conf /run/sysctl.d/*.conf "
                            "/usr/lib/sysctl.d/*.conf /usr/local/lib/sysctl.d/*.conf 2>/dev/null "
                            "|| true")
    conflicts = []
    for line in (config + "\n" + raw).splitlines():
        if "=" not in line or line.lstrip().startswith(("#", ";")):
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        key = key.lstrip("-")
        if key in EXPECTED_SYSCTLS and " ".join(value.split()) != str(EXPECTED_SYSCTLS[key]):
            conflicts.append(line)
    assert conflicts == []


def test_every_interface_filters_reverse_paths_strictly(host):
    """The kernel uses the looser of net.ipv4.conf.all.rp_filter and an
    interface's own: "all" at 1 is not enough if a glob (systemd's 50-default.conf:
    net.ipv4.conf.*.rp_filter = 2, on Debian 13) made an interface loose."""
    lines = host.check_output("for f in /proc/sys/net/ipv4/conf/*/rp_filter; do "
                              "echo \"$f $(cat $f)\"; done").splitlines()
    values = {line.split("/")[-2]: int(line.split()[-1]) for line in lines}
    effective = {iface: max(values["all"], v) for iface, v in values.items()}
    assert all(v == 1 for v in effective.values()), effective


def test_one_default_route_so_no_reply_fails_the_reverse_path_check(host):
    """With strict reverse-path filtering, a host with two default routes of
    one metric loses connections: the kernel takes the other route after a
    pause, and the replies that come in by that NIC are checked against the
    first route and dropped (ADR 0021: every other fresh connect to the
    mirror timed out on make up's two-NIC VM before its Vagrantfile took the
    route off the forwarded-ports NIC)."""
    routes = host.check_output("ip -4 route show default").splitlines()
    assert len(routes) == 1, routes


def test_sysctl_survives_reboot_via_config_file(host):
    content = host.file("/etc/sysctl.d/99-zz-hardening.conf").content_string
    assert "net.ipv4.conf.all.rp_filter = 1" in content
    assert "kernel.core_pattern = |/bin/false" in content


@pytest.mark.parametrize("module", ["cramfs", "freevxfs", "jffs2", "hfs", "hfsplus", "udf",
                                    "dccp", "sctp", "rds", "tipc", "kvm", "kvm_amd", "kvm_intel"])
def test_unused_module_cannot_load(host, module):
    """modprobe's effective configuration (every file in modprobe.d) refuses
    the module: loading it runs /bin/false, and no alias loads it. Read from
    the configuration, not from a dry run: `modprobe -n` prints nothing for a
    module already loaded, as KVM is on a VM booted before the role ran (the
    image's instances check that it is not loaded at boot)."""
    lines = host.run(f"modprobe --showconfig | grep -E '^(install|blacklist) {module}( |$)'").stdout
    assert f"install {module} /bin/false" in lines.splitlines(), lines
    assert f"blacklist {module}" in lines.splitlines(), lines


def test_core_dumps_disabled(host):
    limits = host.file("/etc/security/limits.d/10-hardening.conf").content_string
    assert "hard    core    0" in limits
    assert host.check_output("systemctl show -p DefaultLimitCORE --value") == "0"
    assert host.sysctl("kernel.core_pattern") == "|/bin/false"
