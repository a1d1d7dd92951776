"""The fleet's CloudFormation template (aws/fleet.yml) against what the image
and the roles really do: it cannot be deployed here, so what it shares with
the code CI runs is checked statically (make fleet-lint runs cfn-lint and
checkov on it; this checks the project's own invariants)."""

import ipaddress
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from harness import ROOT
from harness.fleet_template import load, resource, user_data

EDGE_TOOL = os.path.join(ROOT, "ansible", "roles", "nginx", "files", "supermega-edge-config")


@pytest.fixture(scope="module")
def template():
    return load()


def role_default(role, name):
    with open(os.path.join(ROOT, "ansible", "roles", role, "defaults", "main.yml")) as f:
        return yaml.safe_load(f)[name]


SAMPLES = {"ServerName": "api.bank.example", "VpcCidr": "10.20.0.0/16", "MonitoringCidr": ""}
METRICS_TOOL = os.path.join(ROOT, "ansible", "roles", "metrics", "files",
                            "supermega-metrics-config")


def test_user_data_writes_the_edge_settings_the_image_applies(template, tmp_path):
    """The file the nginx role's boot unit reads, with settings the same tool
    accepts, marking the host as behind the load balancer it trusts."""
    files = user_data(template, SAMPLES)["write_files"]
    path = role_default("nginx", "nginx_edge_settings_file")
    (settings_file,) = [f for f in files if f["path"] == path]
    settings = json.loads(settings_file["content"])
    assert settings["behind_load_balancer"] is True
    assert settings["trusted_proxies"] == ["10.20.0.0/16"]
    (tmp_path / "s.json").write_text(json.dumps(settings))
    out = subprocess.run([sys.executable, EDGE_TOOL, "--check", "--settings",
                          str(tmp_path / "s.json")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "valid", out
    # cloud-init on the image runs write_files (instance_boot keeps it)
    modules = role_default("instance_boot", "instance_boot_cloud_init_modules")
    assert "write_files" in modules["init"]


@pytest.mark.parametrize("monitoring,sources", [("", []), ("10.20.5.0/24", ["10.20.5.0/24"])])
def test_user_data_writes_the_scrape_settings_the_image_applies(template, tmp_path, monitoring,
                                                                sources):
    """The file the metrics role's boot unit reads: no source without
    MonitoringCidr (the exporters stay on loopback), that network alone with
    it; the same tool accepts it."""
    files = user_data(template, {**SAMPLES, "MonitoringCidr": monitoring})["write_files"]
    path = role_default("metrics", "metrics_settings_file")
    (settings_file,) = [f for f in files if f["path"] == path]
    assert json.loads(settings_file["content"]) == {"metrics_sources": sources}
    (tmp_path / "m.json").write_text(settings_file["content"])
    out = subprocess.run([sys.executable, METRICS_TOOL, "--check", "--ports", "9100",
                          "--settings", str(tmp_path / "m.json")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "valid", out


def test_the_exporters_are_open_to_the_monitoring_network_only(template):
    """The security group's rule for the exporters exists only with a
    MonitoringCidr, from it alone, on exactly the metrics role's ports."""
    pattern = re.compile(template["Parameters"]["MonitoringCidr"]["AllowedPattern"])
    for good in ("", "10.20.5.0/24", "192.0.2.10/32"):
        assert pattern.match(good), good
    for bad in ("0.0.0.0/0", "10.0.0.0", "prometheus", "10.0.0.0/33"):
        assert not pattern.match(bad), bad
    rule = template["Resources"]["InstanceIngressFromMonitoring"]
    assert rule["Condition"] == "WithMonitoring"
    assert template["Conditions"]["WithMonitoring"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "MonitoringCidr"}, ""]}]}
    props = rule["Properties"]
    assert props["CidrIp"] == {"Ref": "MonitoringCidr"}
    ports = [role_default("metrics", f"metrics_{n}_port") for n in ("node", "nginx", "mtail")]
    assert list(range(props["FromPort"], props["ToPort"] + 1)) == sorted(ports)


def test_the_trusted_range_parameter_accepts_only_networks_the_tool_accepts(template):
    pattern = re.compile(template["Parameters"]["VpcCidr"]["AllowedPattern"])
    for good in ("10.0.0.0/16", "172.31.0.0/16", "10.20.0.0/28"):
        assert pattern.match(good)
        ipaddress.ip_network(good)
    for bad in ("0.0.0.0/0", "10.0.0.0/8", "10.0.0.0", "vpc"):
        assert not pattern.match(bad), bad


def test_imds_v2_only_encrypted_root_no_key(template):
    data = resource(template, "LaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert "KeyName" not in data
    assert data["Monitoring"] == {"Enabled": True}
    (root,) = data["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True and root["Ebs"]["VolumeType"] == "gp3"
    # the AMI's own root device and size (packer/aws.pkr.hcl)
    with open(os.path.join(ROOT, "packer", "aws.pkr.hcl")) as f:
        hcl = f.read()
    block = hcl[hcl.index("launch_block_device_mappings"):]
    assert root["DeviceName"] == re.search(r'device_name\s*=\s*"([^"]+)"', block).group(1)
    assert root["Ebs"]["VolumeSize"] >= int(re.search(r"volume_size\s*=\s*(\d+)", block).group(1))


def test_instances_take_443_from_the_load_balancer_only(template):
    sg = resource(template, "InstanceSecurityGroup")
    assert "SecurityGroupIngress" not in sg          # no inline rule, SSH or other
    ingress = [(n, r["Properties"]) for n, r in template["Resources"].items()
               if isinstance(r, dict) and r.get("Type") == "AWS::EC2::SecurityGroupIngress"
               and r["Properties"]["GroupId"] == {"Ref": "InstanceSecurityGroup"}]
    # besides the exporters' rule (only with a monitoring network: the test above)
    assert [n for n, _ in ingress if n != "InstanceIngressFromLoadBalancer"] == \
        ["InstanceIngressFromMonitoring"]
    assert [(p["FromPort"], p["ToPort"], p["SourceSecurityGroupId"]) for n, p in ingress
            if n == "InstanceIngressFromLoadBalancer"] == \
        [(443, 443, {"Ref": "LoadBalancerSecurityGroup"})]
    # the load balancer: only the ClientCidrs loop adds ingress, on 443 and 80
    assert "SecurityGroupIngress" not in resource(template, "LoadBalancerSecurityGroup")
    loop = template["Resources"]["Fn::ForEach::ClientRules"]
    assert loop[1] == {"Ref": "ClientCidrs"}
    assert sorted(r["Properties"]["FromPort"] for r in loop[2].values()) == [80, 443]
    assert "Default" not in template["Parameters"]["ClientCidrs"]
    rule = json.dumps(template["Rules"])
    assert "0.0.0.0/0" in rule


def test_the_instance_role_is_ssm_only(template):
    role = resource(template, "InstanceRole")
    assert "Policies" not in role
    assert role["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"}]


def test_health_checks_hit_the_unlimited_healthz_on_443(template):
    tg = resource(template, "TargetGroup")
    assert (tg["Protocol"], tg["Port"], tg["HealthCheckPath"]) == ("HTTPS", 443, "/healthz")
    with open(os.path.join(ROOT, "ansible", "roles", "nginx", "templates", "api.conf.j2")) as f:
        conf = f.read()
    https = conf[conf.index("listen 443"):]
    healthz = https[https.index("location = /healthz"):]
    healthz = healthz[:healthz.index("}")]
    assert "limit_req" not in healthz and "limit_conn" not in healthz


def test_the_roll_keeps_capacity_and_waits_for_health(template):
    asg = template["Resources"]["AutoScalingGroup"]
    prefs = asg["UpdatePolicy"]["AutoScalingInstanceRefresh"]["Preferences"]
    assert prefs["MinHealthyPercentage"] == 100 and prefs["MaxHealthyPercentage"] > 100
    props = asg["Properties"]
    assert props["HealthCheckType"] == "ELB"
    assert props["InstanceMaintenancePolicy"]["MinHealthyPercentage"] == 100
    assert props["LaunchTemplate"]["Version"] == {
        "Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]}
    assert template["Parameters"]["MinSize"]["MinValue"] >= 2


def test_https_listener_is_tls12_or_13_only(template):
    policy = resource(template, "HttpsListener")["SslPolicy"]
    assert policy.startswith("ELBSecurityPolicy-TLS13-1-2-"), policy
    redirect = resource(template, "HttpListener")["DefaultActions"][0]
    assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"
