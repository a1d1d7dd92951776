"""Static checks of the Packer templates, for the path nothing here can run.

The AMI (amazon-ebs.ubuntu) cannot be built on this project's CI: no AWS, no
Ubuntu archive. What it would do is read here with a real HCL parser
(python-hcl2), and its security-relevant settings are asserted, so a change
that would ship a weaker AMI fails `make unit`. The qcow2 that CI does build
and boot runs the same build block (same provisioners, same seal script);
what differs per source is a parameter, checked below.
"""

import os
import re
import subprocess
import sys

import pytest
from conftest import PACKER, load, provisioners

from harness import ROOT

CANONICAL = "099720109477"


def test_the_build_covers_every_source(sources, build):
    assert sorted(sources) == ["amazon-ebs.ubuntu", "qemu.local"]
    assert sorted(s.removeprefix("source.") for s in build["sources"]) == sorted(sources)


def test_ami_requires_imdsv2_with_hop_limit_1(ami):
    (meta,) = ami["metadata_options"]
    assert meta["http_endpoint"] == "enabled"
    assert meta["http_tokens"] == "required"
    assert meta["http_put_response_hop_limit"] == 1
    assert ami["imds_support"] == "v2.0"   # instances launched from the AMI, too


def test_ami_and_its_volume_are_encrypted_gp3(ami):
    assert ami["encrypt_boot"] is True
    (volume,) = ami["launch_block_device_mappings"]
    assert volume["encrypted"] is True
    assert volume["volume_type"] == "gp3"
    assert volume["delete_on_termination"] is True


def test_ami_starts_from_canonicals_ubuntu_24_04(ami):
    (selector,) = ami["source_ami_filter"]
    assert selector["owners"] == [CANONICAL]
    assert selector["most_recent"] is True
    assert selector["filters"]["name"].startswith(
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-")


@pytest.mark.parametrize("source", ["amazon-ebs.ubuntu", "qemu.local"])
def test_every_source_clears_the_temporary_key(sources, source):
    assert sources[source]["ssh_clear_authorized_keys"] is True


def test_temporary_security_group_is_never_open_to_the_world(ami, variables):
    # the operator's CIDRs when given, else this build host's own public address
    assert ami["temporary_security_group_source_public_ip"] is True
    assert "var.aws_build_source_cidrs" in ami["temporary_security_group_source_cidrs"]
    cidrs = variables["aws_build_source_cidrs"]
    assert cidrs["default"] == []
    (rule,) = cidrs["validation"]
    assert '"0.0.0.0/0"' in rule["condition"] and '"::/0"' in rule["condition"]
    assert "security_group_id" not in ami and "security_group_ids" not in ami


def test_build_instance_in_a_private_subnet_is_reachable(ami, variables):
    assert ami["ssh_interface"] == "${var.aws_ssh_interface}"
    (rule,) = variables["aws_ssh_interface"]["validation"]
    for interface in ("public_ip", "private_ip", "session_manager"):
        assert f'"{interface}"' in rule["condition"]
    # a public address only when Packer connects through it
    assert ami["associate_public_ip_address"] == '${var.aws_ssh_interface == "public_ip"}'


def test_seal_is_the_last_step_of_every_source(build):
    steps = provisioners(build)
    kind, seal = steps[-1]
    assert kind == "shell" and seal["script"] == "packer/scripts/seal.sh"
    assert "only" not in seal and "except" not in seal
    # what differs per source is a parameter of the one script
    assert seal["environment_vars"] == [
        'SEAL_REMOVE_BUILD_USER=${source.type == "qemu" ? "yes" : "no"}']
    # and nothing else seals: the qemu shutdown is a plain power-off
    for _kind, body in steps[:-1]:
        assert "seal" not in str(body.get("script", "")) + str(body.get("inline", ""))


def test_qemu_shutdown_does_no_sealing_of_its_own(sources):
    assert sources["qemu.local"]["shutdown_command"] == "sudo systemctl poweroff"


def test_one_playbook_for_every_source_with_the_ec2_time_source(build, variables):
    ansible = [body for kind, body in provisioners(build) if kind == "ansible"]
    assert len(ansible) == 1 and ansible[0]["playbook_file"] == "ansible/site.yml"
    assert "only" not in ansible[0]
    extra = " ".join(ansible[0]["extra_arguments"])
    assert "hardening_time_sync_servers" in extra and 'source.type == "amazon-ebs"' in extra
    assert variables["aws_time_sync_servers"]["default"] == ["169.254.169.123"]


def per_source(templates, sources, build, local, variable):
    """The map `locals.LOCAL` gives per source type, after checking it names
    every source the build has and is passed to the playbook as VARIABLE,
    picked by the building source's type."""
    (values,) = [block[local] for doc in templates.values()
                 for block in doc.get("locals", []) if local in block]
    assert {name.split(".")[0] for name in sources} == set(values)
    (ansible,) = [body for kind, body in provisioners(build) if kind == "ansible"]
    extra = " ".join(ansible["extra_arguments"])
    wired = rf"{variable}\s*=\s*local\.{local}\[source\.type\]"
    assert re.search(wired, extra), extra
    return values


def test_each_source_pins_cloud_init_to_its_own_datasource(templates, sources, build):
    """instance_boot_datasources per source type: NoCloud for the qcow2, Ec2 for
    the AMI, and a list for every source the build has."""
    datasources = per_source(templates, sources, build, "cloud_init_datasources",
                             "instance_boot_datasources")
    assert datasources == {"qemu": ["NoCloud", "None"], "amazon-ebs": ["Ec2", "None"]}


def test_only_the_ami_keeps_cloud_init_local_stage(templates, sources, build):
    """instance_boot_local_stage per source type: the AMI's network is
    rendered by cloud-init's local stage (EC2's per-instance configuration), so
    the AMI keeps it; the qcow2's network comes up without cloud-init, so its
    instances skip it. A value for every source, wired into the playbook."""
    stages = per_source(templates, sources, build, "cloud_init_local_stage",
                        "instance_boot_local_stage")
    assert stages == {"qemu": False, "amazon-ebs": True}


def test_only_the_qcow2_keeps_just_its_own_disk_drivers_in_the_initramfs(templates, sources, build):
    """instance_boot_initramfs_modules per source type: the qcow2's instances
    boot on the build's virtio disk, so its initramfs holds only those drivers
    (dep); an AMI's instance type may change (Xen or Nitro), so it keeps most,
    which boots anywhere. A value for every source, wired into the playbook."""
    modules = per_source(templates, sources, build, "initramfs_modules",
                         "instance_boot_initramfs_modules")
    assert modules == {"qemu": "dep", "amazon-ebs": "most"}


def test_cloud_init_is_waited_for_first(build):
    kind, body = provisioners(build)[0]
    assert kind == "shell" and body["script"] == "packer/scripts/wait-cloud-init.sh"


def fake_cloud_init(tmp_path, exit_code):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "cloud-init"
    tool.write_text(f"#!/bin/sh\necho 'status: done'\necho 'detail: fake'\nexit {exit_code}\n")
    tool.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")


@pytest.mark.parametrize("code,expected", [(0, 0), (2, 0), (1, 1)])
def test_wait_cloud_init_accepts_recoverable_errors_only(tmp_path, code, expected):
    """cloud-init >= 23.4 (Ubuntu 24.04) exits 2 for "done with recoverable
    errors": the build goes on and prints the detail; 1 stops it."""
    out = subprocess.run(["sh", os.path.join(PACKER, "scripts", "wait-cloud-init.sh")],
                         env=fake_cloud_init(tmp_path, code), capture_output=True, text=True)
    assert out.returncode == expected, out
    assert "detail: fake" in out.stdout
    if code == 2:
        assert "recoverable errors" in out.stdout


@pytest.mark.parametrize("value", ["", "maybe"])
def test_seal_refuses_an_unknown_parameter_before_touching_anything(value):
    env = dict(os.environ, SUDO_USER="packer", SEAL_REMOVE_BUILD_USER=value, PATH="/nonexistent")
    out = subprocess.run(["/bin/sh", os.path.join(PACKER, "scripts", "seal.sh")], env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "SEAL_REMOVE_BUILD_USER" in out.stderr


@pytest.fixture(scope="module")
def packer_tree(tmp_path_factory):
    """What `packer validate` needs (the tree Debian's Packer 1.6 can read,
    a build key, a seed), as packer/validate.sh makes it."""
    work = tmp_path_factory.mktemp("packer")
    subprocess.run(["bash", os.path.join(PACKER, "validate.sh"), "--prepare-only",
                    str(work / "src")], check=True, cwd=ROOT)
    (work / "cidata").mkdir()
    for name in ("user-data", "meta-data"):
        (work / "cidata" / name).touch()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "key")],
                   check=True)
    return work


def packer_validate(tree, *overrides):
    args = ["-var", "base_image_url=/nonexistent.qcow2", "-var", "base_image_checksum=none",
            "-var", f"build_ssh_key={tree / 'key'}", "-var", f"seed_dir={tree / 'cidata'}",
            "-var", f"output_dir={tree / 'image'}"]
    for override in overrides:
        args += ["-var", override]
    # ansible-playbook must be found (the provisioner checks its version)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(["packer", "validate", *args, str(tree / "src")], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


@pytest.mark.parametrize("override, message", [
    ("accelerator=hvf", "The accelerator value must be kvm or tcg."),
    ("disk_cache=fast", "The disk_cache value must be one of qemu's cache modes"),
    ("disk_size=8GB", "The disk_size value must be a size in M or G, like 8G."),
    ("cpus=0", "The cpus value must be at least 1."),
    ("memory=512", "The memory value must be at least 1024 (MiB)"),
    ("aws_ssh_interface=ssh", "The aws_ssh_interface value must be public_ip, private_ip or"),
    ('aws_build_source_cidrs=["0.0.0.0/0"]', "must not open the build instance to the whole"),
])
def test_a_wrong_value_is_refused_by_name_before_anything_is_built(packer_tree, override,
                                                                   message):
    out = packer_validate(packer_tree, override)
    assert out.returncode != 0
    assert message in " ".join((out.stdout + out.stderr).split()), out.stdout + out.stderr


def test_the_values_make_image_passes_are_accepted(packer_tree):
    out = packer_validate(packer_tree, "accelerator=tcg", "disk_cache=unsafe", "disk_size=8G",
                          "cpus=1", "memory=2048")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", ["accelerator", "disk_cache", "disk_size", "cpus", "memory",
                                  "aws_ssh_interface", "aws_build_source_cidrs"])
def test_every_variable_with_fixed_choices_has_a_validation_block(name):
    variables = {}
    for path in ("api.pkr.hcl", "aws.pkr.hcl"):
        for block in load(path).get("variable", []):
            variables.update(block)
    assert variables[name].get("validation"), f"variable {name} has no validation block"


def test_every_update_is_applied_right_after_cloud_init_for_every_source(build):
    """upgrade.sh, as root, before the playbook: the roles configure the
    packages that ship (docs/adr/0019-patched-at-bake.md)."""
    steps = provisioners(build)
    kind, upgrade = steps[1]
    assert kind == "shell" and upgrade["script"] == "packer/scripts/upgrade.sh"
    assert "only" not in upgrade and "except" not in upgrade
    assert upgrade["execute_command"].startswith("sudo ")
    assert steps[2][0] == "ansible"


def test_the_manifest_and_sbom_are_made_and_put_in_the_image_before_the_seal(build):
    steps = provisioners(build)
    scripts = [body.get("script") for _kind, body in steps]
    inventory = scripts.index("packer/scripts/inventory.sh")
    (sbom,) = [i for i, (kind, body) in enumerate(steps)
               if kind == "shell-local" and "packer/scripts/sbom.py" in " ".join(body["inline"])]
    (upload,) = [i for i, (kind, body) in enumerate(steps)
                 if kind == "file" and body.get("source", "").endswith("image-sbom.cdx.json")]
    (install,) = [i for i, (kind, body) in enumerate(steps)
                  if kind == "shell" and "/usr/share/supermega-api/sbom.cdx.json"
                  in " ".join(body.get("inline", []))]
    assert inventory < sbom < upload < install < len(steps) - 1      # the seal is last
    for i in (inventory, sbom, upload, install):
        assert "only" not in steps[i][1], steps[i]                   # every source


def test_only_the_ami_publishes_its_sbom_after_the_manifest(build):
    (chain,) = build["post-processors"]
    kinds = [(kind, body) for block in chain["post-processor"] for kind, body in block.items()]
    assert [k for k, _ in kinds] == ["manifest", "shell-local"]
    publish = kinds[1][1]
    assert publish["script"] == "packer/scripts/publish-sbom.sh"
    assert publish["only"] == ["amazon-ebs.ubuntu"]
    env = dict(v.split("=", 1) for v in publish["environment_vars"])
    assert env["BUCKET"] == "${var.aws_sbom_bucket}"
    assert env["MANIFEST"] == kinds[0][1]["output"]
