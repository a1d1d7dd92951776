"""harness/vm.py without booting anything: the accelerator setting, the
NoCloud seed every VM boots with, the SSH banner wait, and that stop only
ever signals the qemu its own directory started."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest
import yaml

from harness import vm


@pytest.mark.parametrize("accel, expected", [("kvm", ["-accel", "kvm", "-cpu", "host"]),
                                             ("tcg", ["-accel", "tcg,thread=multi",
                                                      "-cpu", "qemu64"])])
def test_the_accelerator_is_a_setting(accel, expected):
    assert vm.accel_args(accel, "") == expected


def test_an_unknown_accelerator_is_refused_by_name():
    with pytest.raises(SystemExit, match="--accel must be 'kvm' or 'tcg', not 'hvf'"):
        vm.accel_args("hvf", "")


def test_the_seed_makes_a_key_only_sudo_user_in_the_ssh_group(tmp_path):
    iso = vm.write_seed(str(tmp_path), "api", "admin", "ssh-ed25519 AAAA test",
                        {"write_files": [{"path": "/etc/x", "content": "y"}]})
    assert os.path.getsize(iso) > 0
    text = (tmp_path / "user-data").read_text()
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    (user,) = data["users"]
    assert user["name"] == "admin" and user["lock_passwd"] is True
    assert user["groups"] == ["ssh-users"]
    assert user["ssh_authorized_keys"] == ["ssh-ed25519 AAAA test"]
    assert data["ssh_pwauth"] is False and data["disable_root"] is True
    assert data["write_files"] == [{"path": "/etc/x", "content": "y"}]


def test_every_seed_is_a_new_instance(tmp_path):
    ids = set()
    for n in range(2):
        vm.write_seed(str(tmp_path / str(n)), "api", "admin", "key", {}, iso=False)
        ids.add(yaml.safe_load((tmp_path / str(n) / "meta-data").read_text())["instance-id"])
    assert len(ids) == 2


def serve(banner_after):
    """A loopback listener that accepts (as qemu's hostfwd does) and sends an
    SSH banner after BANNER_AFTER seconds (None: never)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def run():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if banner_after is not None:
                time.sleep(banner_after)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            time.sleep(0.5)
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    return server


def test_the_ssh_wait_ends_at_the_banner():
    server = serve(banner_after=0.2)
    try:
        vm.wait_for_ssh_banner(server.getsockname()[1], time.monotonic() + 30, lambda: True)
    finally:
        server.close()


def test_an_accepted_connection_without_a_banner_is_not_ssh(monkeypatch):
    monkeypatch.setattr(vm, "SSH_PROBE_INTERVAL", 0.2)
    server = serve(banner_after=None)
    try:
        with pytest.raises(SystemExit, match="no SSH banner"):
            vm.wait_for_ssh_banner(server.getsockname()[1], time.monotonic() + 3, lambda: True)
    finally:
        server.close()


def test_stop_never_signals_a_process_its_directory_did_not_start(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "qemu.pid").write_text(f"{stranger.pid}\n")
        (tmp_path / vm.STATE).write_text(json.dumps({"pid": stranger.pid}))
        vm.stop_dir(str(tmp_path))
        assert stranger.poll() is None, "stop_dir killed a process that is not its qemu"
        assert not (tmp_path / "qemu.pid").exists() and not (tmp_path / vm.STATE).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_a_free_port_is_free():
    port = vm.free_port()
    with socket.create_server(("127.0.0.1", port)):
        pass
