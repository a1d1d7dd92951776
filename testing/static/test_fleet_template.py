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
from harness.fleet_template import evaluate, load, resource, user_data

EDGE_TOOL = os.path.join(ROOT, "ansible", "roles", "nginx", "files", "supermega-edge-config")


@pytest.fixture(scope="module")
def template():
    return load()


def role_default(role, name):
    with open(os.path.join(ROOT, "ansible", "roles", role, "defaults", "main.yml")) as f:
        return yaml.safe_load(f)[name]


SAMPLES = {"ServerName": "api.bank.example", "LoadBalancerSubnetCidrs": "10.20.1.0/24,10.20.2.0/24",
           "MonitoringCidr": "", "AllowUnauthenticatedCallers": "false",
           "ClientSubjects": "CN=web-tier,O=SuperMega Bank;CN=batch,O=SuperMega Bank"}
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
    # the load balancer's subnets, not the VPC: no other host in it is believed
    assert settings["trusted_proxies"] == ["10.20.1.0/24", "10.20.2.0/24"]
    # the load balancer checks the certificate; the instance, the subject it passes
    assert settings["client_auth"] == "load_balancer"
    assert settings["client_subjects"] == ["CN=web-tier,O=SuperMega Bank",
                                           "CN=batch,O=SuperMega Bank"]
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


@pytest.mark.parametrize("unauthenticated, subjects, auth, listed", [
    ("false", "", "load_balancer", []),
    ("true", "", "none", [])])
def test_mutual_tls_off_only_by_its_named_parameter(template, tmp_path, unauthenticated,
                                                    subjects, auth, listed):
    values = {**SAMPLES, "AllowUnauthenticatedCallers": unauthenticated, "ClientSubjects": subjects}
    (settings_file,) = [f for f in user_data(template, values)["write_files"]
                        if f["path"] == role_default("nginx", "nginx_edge_settings_file")]
    settings = json.loads(settings_file["content"])
    assert (settings["client_auth"], settings["client_subjects"]) == (auth, listed)
    (tmp_path / "s.json").write_text(json.dumps(settings))
    out = subprocess.run([sys.executable, EDGE_TOOL, "--check", "--settings",
                          str(tmp_path / "s.json")], capture_output=True, text=True)
    assert out.returncode == 0, out


def test_the_https_listener_verifies_client_certificates_against_the_banks_ca(template):
    auth = resource(template, "HttpsListener")["MutualAuthentication"]
    condition, on, off = auth["Fn::If"]
    assert condition == "WithMutualTls"
    assert template["Conditions"]["WithMutualTls"] == {
        "Fn::Equals": [{"Ref": "AllowUnauthenticatedCallers"}, "false"]}
    assert template["Parameters"]["AllowUnauthenticatedCallers"]["Default"] == "false"
    assert on == {"Mode": "verify", "TrustStoreArn": {"Ref": "TrustStore"},
                  "IgnoreClientCertificateExpiry": False}
    assert off == {"Mode": "off"}
    store = resource(template, "TrustStore")
    assert store["CaCertificatesBundleS3Bucket"] == {"Ref": "ClientCaBundleS3Bucket"}
    revocation = resource(template, "TrustStoreRevocation")["RevocationContents"]
    assert revocation == [{"RevocationType": "CRL", "S3Bucket": {"Ref": "ClientCaBundleS3Bucket"},
                           "S3Key": {"Ref": "ClientCrlS3Key"}}]
    # the CA is required unless mutual TLS is turned off by name
    rule = template["Rules"]["CallersAreAuthenticated"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AllowUnauthenticatedCallers"},
                                                    "false"]}
    assert "ClientCaBundleS3Bucket" in json.dumps(rule["Assertions"])


def test_the_trusted_proxies_are_the_load_balancers_subnets_only(template):
    """Not the VPC: trusted_proxies from LoadBalancerSubnetCidrs, subnets the
    edge tool accepts, one to eight."""
    assert "VpcCidr" not in template["Parameters"]
    text = json.dumps(resource(template, "LaunchTemplate")["LaunchTemplateData"]["UserData"])
    assert "LoadBalancerSubnetCidrs" in text and "VpcCidr" not in text
    pattern = re.compile(template["Parameters"]["LoadBalancerSubnetCidrs"]["AllowedPattern"])
    for good in ("10.20.1.0/24", "10.20.1.0/24,10.20.2.0/24", "172.31.0.0/16,10.0.0.16/28"):
        assert pattern.match(good)
        for cidr in good.split(","):
            ipaddress.ip_network(cidr)
    for bad in ("0.0.0.0/0", "10.0.0.0/8", "10.0.0.0", "10.0.1.0/24, 10.0.2.0/24",
                "10.0.1.0/24,", ",".join(["10.0.1.0/24"] * 9)):
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
    # the load balancer: only the client slots add ingress, on 443 and 80
    assert "SecurityGroupIngress" not in resource(template, "LoadBalancerSecurityGroup")
    assert "Default" not in template["Parameters"]["ClientCidrs"]


def bind(node, identifier, value):
    """A Fn::ForEach fragment with its identifier bound (${Slot}, Ref Slot)."""
    text = json.dumps(node).replace("${" + identifier + "}", value)
    return json.loads(text.replace(json.dumps({"Ref": identifier}), json.dumps(value)))


def client_rules(template, client_cidrs):
    """The load balancer's ingress rules CloudFormation would create for
    ClientCidrs: the slots' loop expanded, each slot's condition evaluated."""
    slot_name, slots, fragment = template["Resources"]["Fn::ForEach::ClientRules"]
    _, condition_slots, conditions = template["Conditions"]["Fn::ForEach::ClientSlots"]
    assert slots == condition_slots
    values = {"ClientCidrs": client_cidrs}
    rules = {}
    for slot in slots:
        (cond_name, cond), = bind(conditions, slot_name, slot).items()
        for logical_id, rule in bind(fragment, slot_name, slot).items():
            assert rule["Condition"] == {"Fn::Sub": cond_name}
            if evaluate(template, cond, values):
                props = rule["Properties"]
                assert logical_id not in rules, f"{logical_id} twice"
                rules[logical_id] = (evaluate(template, props["CidrIp"], values),
                                     props["FromPort"], props["ToPort"])
    return rules


@pytest.mark.parametrize("cidrs", [
    "10.1.10.0/24,10.11.0.0/24",          # the same digits (&{} ids collided: 10110024)
    "10.30.0.0/24",
    ",".join(f"10.{n}.0.0/16" for n in range(8))])
def test_every_client_network_gets_its_own_rules_whatever_its_digits(template, cidrs):
    rules = client_rules(template, cidrs)
    networks = cidrs.split(",")
    assert sorted(rules.values()) == sorted((c, p, p) for c in networks for p in (80, 443))
    assert len(rules) == 2 * len(networks)      # unique logical ids, one per network and port


def test_client_networks_are_named_never_everyone(template):
    pattern = re.compile(template["Parameters"]["ClientCidrs"]["AllowedPattern"])
    for good in ("10.30.0.0/24", "10.30.0.0/24,10.31.0.0/24", "203.0.113.7/32"):
        assert pattern.match(good), good
    for bad in ("0.0.0.0/0", "10.0.0.0/4", "10.30.0.0/24,", "10.30.0.0/24,,10.31.0.0/24",
                "10.30.0.0/24, 10.31.0.0/24", ",".join(["10.30.0.0/24"] * 9), ""):
        assert not pattern.match(bad), bad


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
    # between 100 % and 150 % of the desired capacity: with the minimum fleet
    # (2), one replacement at a time, as the README and ADR 0015 say
    assert (prefs["MinHealthyPercentage"], prefs["MaxHealthyPercentage"]) == (100, 150)
    min_size = template["Parameters"]["MinSize"]["MinValue"]
    assert min_size * prefs["MaxHealthyPercentage"] // 100 - min_size == 1
    props = asg["Properties"]
    assert props["HealthCheckType"] == "ELB"
    assert props["InstanceMaintenancePolicy"] == {"MinHealthyPercentage": 100,
                                                  "MaxHealthyPercentage": 150}
    assert props["LaunchTemplate"]["Version"] == {
        "Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]}
    assert template["Parameters"]["MinSize"]["MinValue"] >= 2


def test_the_stack_waits_until_its_instances_serve(template):
    """The creation check is wired: after the group and the listener, for
    MinSize healthy targets of this target group, run again for a new image
    (its handler is tested below)."""
    check = template["Resources"]["InstancesServe"]
    assert check["Type"] == "Custom::InstancesServe"
    assert set(check["DependsOn"]) == {"AutoScalingGroup", "HttpsListener"}
    assert check["Properties"] == {"ServiceToken": {"Fn::GetAtt": ["ServingCheckFunction", "Arn"]},
                                   "TargetGroupArn": {"Ref": "TargetGroup"},
                                   "Count": {"Ref": "MinSize"}, "ImageId": {"Ref": "ImageId"}}


def test_the_load_balancer_logs_every_request_and_every_handshake(template):
    """Access logs and connection logs (refused client certificates and why)."""
    attributes = {a["Key"]: a["Value"] for a in
                  resource(template, "LoadBalancer")["LoadBalancerAttributes"]}
    for kind in ("access_logs", "connection_logs"):
        assert attributes[f"{kind}.s3.enabled"] == "true", kind
        assert attributes[f"{kind}.s3.bucket"] == {"Ref": "AccessLogBucket"}, kind


def test_allowed_subjects_are_refused_without_certificates(template):
    """ClientSubjects with AllowUnauthenticatedCallers=true would be checked on
    certificates nobody presents: the template refuses that pair."""
    rule = template["Rules"]["SubjectsNeedCertificates"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AllowUnauthenticatedCallers"},
                                                    "true"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "ClientSubjects"}, ""]}


def test_https_listener_is_tls12_or_13_only(template):
    policy = resource(template, "HttpsListener")["SslPolicy"]
    assert policy.startswith("ELBSecurityPolicy-TLS13-1-2-"), policy
    redirect = resource(template, "HttpListener")["DefaultActions"][0]
    assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"


def alarm_window(template, name):
    """Seconds an alarm needs to go off: its periods times their length."""
    alarm = resource(template, name)
    periods = [m["MetricStat"]["Period"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
    return alarm["EvaluationPeriods"] * max(periods or [alarm.get("Period", 0)])


def test_the_alarms_roll_back_after_the_last_replacement_too(template):
    """BakeTime: the refresh stays open (and its alarms armed) longer than
    the slowest rollback alarm needs to go off."""
    prefs = template["Resources"]["AutoScalingGroup"]["UpdatePolicy"][
        "AutoScalingInstanceRefresh"]["Preferences"]
    alarms = [a["Ref"] for a in prefs["AlarmSpecification"]["Alarms"]]
    assert sorted(alarms) == ["Elb5xxRateAlarm", "Target5xxRateAlarm", "UnhealthyHostsAlarm"]
    assert prefs["BakeTime"] > max(alarm_window(template, a) for a in alarms), prefs


def test_the_load_balancers_own_5xx_are_alarmed(template):
    alarm = resource(template, "Elb5xxRateAlarm")
    names = [m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m]
    assert sorted(names) == ["HTTPCode_ELB_5XX_Count", "RequestCount"]


def test_nginx_keeps_connections_longer_than_the_load_balancer(template):
    """AWS: a target's keep-alive shorter than the load balancer's idle
    timeout closes connections the balancer is about to reuse (502s)."""
    attributes = {a["Key"]: a["Value"] for a in resource(template, "LoadBalancer")[
        "LoadBalancerAttributes"]}
    assert role_default("nginx", "nginx_keepalive_timeout") > int(
        attributes["idle_timeout.timeout_seconds"])


def test_the_scaling_policy_waits_for_the_listener(template):
    assert "HttpsListener" in template["Resources"]["RequestCountScaling"]["DependsOn"]


# --- The serving check: the template's own Lambda code, run here ----------

class Context:
    def __init__(self, budget_ms):
        self.left = budget_ms

    def get_remaining_time_in_millis(self):
        return self.left


class TargetHealth:
    """elbv2's describe_target_health, answering from a list of states."""

    def __init__(self, states_over_time):
        self.states = list(states_over_time)
        self.calls = 0

    def describe_target_health(self, TargetGroupArn):  # noqa: N803 (boto3's name)
        self.calls += 1
        states = self.states[min(self.calls, len(self.states)) - 1]
        return {"TargetHealthDescriptions": [{"TargetHealth": {"State": s}} for s in states]}


@pytest.fixture(scope="module")
def serving_check(template):
    code = resource(template, "ServingCheckFunction")["Code"]["ZipFile"]
    assert len(code) <= 4096, "CloudFormation's ZipFile holds 4096 characters"
    module = {}
    exec(compile(code, "index.py", "exec"), module)  # noqa: S102 (the template's own code)
    return module


@pytest.fixture
def answers(monkeypatch, serving_check):
    """What the function PUT to CloudFormation's response URL."""
    sent = []

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b""

    def urlopen(request, timeout):
        sent.append(json.loads(request.data))
        return Response()

    monkeypatch.setattr(serving_check["urllib"].request, "urlopen", urlopen)
    return sent


def event(kind="Create"):
    return {"RequestType": kind, "ResponseURL": "https://cloudformation.example/response",
            "StackId": "stack", "RequestId": "r1", "LogicalResourceId": "InstancesServe",
            "ResourceProperties": {"TargetGroupArn": "arn:tg", "Count": "2"}}


def test_the_stack_succeeds_once_min_size_targets_serve(serving_check, answers):
    health = TargetHealth([["initial", "initial"], ["healthy", "initial"], ["healthy", "healthy"]])
    status = serving_check["handler"](event(), Context(600000), client=health, sleep=lambda s: None)
    assert status == "SUCCESS" and health.calls == 3
    assert answers[-1]["Status"] == "SUCCESS" and answers[-1]["PhysicalResourceId"]


def test_a_stack_whose_instances_never_serve_fails(serving_check, answers):
    context = Context(120000)

    def sleep(seconds):
        context.left -= seconds * 1000

    health = TargetHealth([["unhealthy", "healthy"]])
    status = serving_check["handler"](event("Update"), context, client=health, sleep=sleep)
    assert status == "FAILED"
    assert "only 1 of 2 targets healthy" in answers[-1]["Reason"]


def test_an_error_fails_the_stack_with_its_name_and_a_delete_never_waits(serving_check, answers):
    class Broken:
        def describe_target_health(self, TargetGroupArn):  # noqa: N803
            raise RuntimeError("AccessDenied")

    assert serving_check["handler"](event(), Context(600000), client=Broken()) == "FAILED"
    assert answers[-1]["Reason"] == "RuntimeError: AccessDenied"
    assert serving_check["handler"](event("Delete"), Context(600000), client=Broken()) == "SUCCESS"
