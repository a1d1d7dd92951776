"""cfn-lint rules for aws/fleet.yml: the project's own invariants, which no
generic policy knows (`make fleet-lint` appends them: cfn-lint
--append-rules aws/lint_rules). cfn-lint hands them the template after
AWS::LanguageExtensions, so the client slots' loop is expanded.

    E9001  the HTTPS listener authenticates callers (mutual TLS, verify mode)
    E9002  the instances trust the load balancer's subnets only
    E9003  nginx keeps connections longer than the load balancer's idle timeout
    E9004  the instance refresh bakes longer than its slowest rollback alarm
    E9005  the instances take 443 from the load balancer's security group only
    E9006  a revocation list given as a parameter is loaded into the trust store
"""

import json
import os

import yaml
from cfnlint.rules import CloudFormationLintRule, RuleMatch

NGINX_DEFAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ansible",
                              "roles", "nginx", "defaults", "main.yml")


def resources(cfn, kind):
    return {name: r for name, r in cfn.template.get("Resources", {}).items()
            if isinstance(r, dict) and r.get("Type") == kind}


class ListenerMutualTls(CloudFormationLintRule):
    id = "E9001"
    shortdesc = "Callers are authenticated at the load balancer"
    description = ("Every HTTPS listener has MutualAuthentication in verify mode with a trust "
                   "store; off only behind a condition on the AllowUnauthenticatedCallers "
                   "parameter (the operator's explicit choice).")
    tags = ["supermega", "security"]

    def verify(self, mode):
        return (isinstance(mode, dict) and mode.get("Mode") == "verify"
                and "TrustStoreArn" in mode and mode.get("IgnoreClientCertificateExpiry") is False)

    def match(self, cfn):
        matches = []
        for name, listener in resources(cfn, "AWS::ElasticLoadBalancingV2::Listener").items():
            props = listener.get("Properties", {})
            if props.get("Protocol") != "HTTPS":
                continue
            auth = props.get("MutualAuthentication")
            if self.verify(auth):
                continue
            if isinstance(auth, dict) and "Fn::If" in auth:
                condition, on, _ = auth["Fn::If"]
                test = json.dumps(cfn.template.get("Conditions", {}).get(condition))
                if self.verify(on) and '"AllowUnauthenticatedCallers"' in test:
                    continue
            matches.append(RuleMatch(["Resources", name, "Properties"],
                                     f"{name}: no mutual TLS in verify mode: any caller that "
                                     "reaches the load balancer reads every customer"))
        return matches


class TrustedProxiesAreTheLoadBalancer(CloudFormationLintRule):
    id = "E9002"
    shortdesc = "Instances trust the load balancer's subnets only"
    description = ("The edge settings' trusted_proxies in the launch template's user-data come "
                   "from LoadBalancerSubnetCidrs alone: a wider range (the VPC) would let any "
                   "host in it forge X-Forwarded-For and the client certificate's subject.")
    tags = ["supermega", "security"]

    def match(self, cfn):
        matches = []
        for name, lt in resources(cfn, "AWS::EC2::LaunchTemplate").items():
            user_data = lt.get("Properties", {}).get("LaunchTemplateData", {}).get("UserData")
            sub = (user_data or {}).get("Fn::Base64", {}).get("Fn::Sub")
            if not (isinstance(sub, list) and len(sub) == 2):
                matches.append(RuleMatch(["Resources", name], f"{name}: user-data not understood"))
                continue
            text, variables = sub
            if '"trusted_proxies": ${TrustedProxies}' not in text:
                matches.append(RuleMatch(["Resources", name], f"{name}: trusted_proxies is not "
                                         "the TrustedProxies variable"))
                continue
            refs = json.dumps(variables.get("TrustedProxies"))
            if '{"Ref": "LoadBalancerSubnetCidrs"}' not in refs or refs.count('"Ref"') != 1:
                matches.append(RuleMatch(["Resources", name, "Properties"],
                                         f"{name}: trusted_proxies comes from {refs}, not from "
                                         "LoadBalancerSubnetCidrs alone"))
        return matches


class KeepAliveBeyondIdleTimeout(CloudFormationLintRule):
    id = "E9003"
    shortdesc = "nginx keeps connections longer than the load balancer"
    description = ("The image's nginx keep-alive (the nginx role's nginx_keepalive_timeout) "
                   "exceeds the ALB's idle_timeout.timeout_seconds (AWS: else intermittent "
                   "502s).")
    tags = ["supermega", "reliability"]

    def match(self, cfn):
        with open(NGINX_DEFAULTS) as f:
            keepalive = int(yaml.safe_load(f)["nginx_keepalive_timeout"])
        matches = []
        for name, lb in resources(cfn, "AWS::ElasticLoadBalancingV2::LoadBalancer").items():
            attributes = {a.get("Key"): a.get("Value") for a in
                          lb.get("Properties", {}).get("LoadBalancerAttributes", [])}
            idle = int(attributes.get("idle_timeout.timeout_seconds", 60))
            if keepalive <= idle:
                matches.append(RuleMatch(["Resources", name, "Properties"],
                                         f"{name}: idle timeout {idle} s, nginx keeps "
                                         f"connections {keepalive} s: must be shorter"))
        return matches


class RefreshBakesPastItsAlarms(CloudFormationLintRule):
    id = "E9004"
    shortdesc = "The instance refresh bakes longer than its rollback alarms"
    description = ("AutoScalingInstanceRefresh has BakeTime above the evaluation window of "
                   "every alarm that rolls it back: an image that fails only once all of it "
                   "serves is still rolled back.")
    tags = ["supermega", "reliability"]

    def window(self, cfn, alarm_name):
        alarm = cfn.template["Resources"].get(alarm_name, {}).get("Properties", {})
        periods = [m["MetricStat"]["Period"] for m in alarm.get("Metrics", [])
                   if "MetricStat" in m] or [alarm.get("Period", 0)]
        return int(alarm.get("EvaluationPeriods", 0)) * max(int(p) for p in periods)

    def match(self, cfn):
        matches = []
        for name, asg in resources(cfn, "AWS::AutoScaling::AutoScalingGroup").items():
            refresh = asg.get("UpdatePolicy", {}).get("AutoScalingInstanceRefresh")
            if refresh is None:
                continue
            prefs = refresh.get("Preferences", {})
            alarms = [a.get("Ref") for a in prefs.get("AlarmSpecification", {}).get("Alarms", [])]
            slowest = max([self.window(cfn, a) for a in alarms] or [0])
            bake = int(prefs.get("BakeTime", 0))
            if not alarms or bake <= slowest:
                matches.append(RuleMatch(["Resources", name, "UpdatePolicy"],
                                         f"{name}: BakeTime {bake} s does not outlast the "
                                         f"rollback alarms ({alarms}, slowest {slowest} s)"))
        return matches


def refs(value):
    """The resources a property names, wherever they sit in it: !Ref X and
    !GetAtt X.GroupId (or any attribute) alike."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return {value["Ref"]}
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            return {target[0] if isinstance(target, list) else str(target).split(".")[0]}
        return set().union(*(refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(refs(v) for v in value)) if value else set()
    return set()


def rules_in(value):
    """The ingress rules in an inline SecurityGroupIngress, whatever wraps
    them (a list, an !If of lists)."""
    if isinstance(value, dict):
        if "IpProtocol" in value:
            return [value]
        return [rule for v in value.values() for rule in rules_in(v)]
    if isinstance(value, list):
        return [rule for v in value for rule in rules_in(v)]
    return []


def covers_443(rule):
    if str(rule.get("IpProtocol")) in ("-1", "all"):
        return True
    try:
        return int(rule.get("FromPort", -1)) <= 443 <= int(rule.get("ToPort", -1))
    except (TypeError, ValueError):
        return True     # (a port given by a parameter: not provably elsewhere)


class InstancesFromTheLoadBalancerOnly(CloudFormationLintRule):
    id = "E9005"
    shortdesc = "The instances take 443 from the load balancer only"
    description = ("Every ingress rule of the instances' security groups (those of a launch "
                   "template) that covers 443 has the load balancer's security group as its "
                   "source: no address range reaches nginx past the ALB's mutual TLS.")
    tags = ["supermega", "security"]

    def match(self, cfn):
        instance_groups, lb_groups = set(), set()
        for lt in resources(cfn, "AWS::EC2::LaunchTemplate").values():
            data = lt.get("Properties", {}).get("LaunchTemplateData", {})
            instance_groups |= refs([data.get("SecurityGroupIds"), data.get("SecurityGroups"),
                                     [i.get("Groups") for i in data.get("NetworkInterfaces", [])
                                      if isinstance(i, dict)]])
        for lb in resources(cfn, "AWS::ElasticLoadBalancingV2::LoadBalancer").values():
            lb_groups |= refs(lb.get("Properties", {}).get("SecurityGroups"))
        rules = [(["Resources", name, "Properties"], r.get("Properties", {}))
                 for name, r in resources(cfn, "AWS::EC2::SecurityGroupIngress").items()
                 if refs(r.get("Properties", {}).get("GroupId")) & instance_groups]
        for group in instance_groups:
            inline = (cfn.template["Resources"].get(group, {}).get("Properties", {})
                      .get("SecurityGroupIngress"))
            rules += [(["Resources", group, "Properties", "SecurityGroupIngress"], rule)
                      for rule in rules_in(inline)]
        matches = []
        for path, rule in rules:
            if covers_443(rule) and not refs(rule.get("SourceSecurityGroupId")) & lb_groups:
                matches.append(RuleMatch(path, f"{path[1]}: 443 on the instances from "
                                         f"{rule.get('CidrIp') or rule.get('CidrIpv6') or rule}"
                                         ", not from the load balancer's security group"))
        return matches


class RevocationListLoaded(CloudFormationLintRule):
    id = "E9006"
    shortdesc = "A revocation list given is loaded"
    description = ("When the ClientCrlS3Key parameter exists, a TrustStoreRevocation loads that "
                   "key into the trust store the HTTPS listener verifies with: a revoked "
                   "caller's certificate is refused at the handshake.")
    tags = ["supermega", "security"]

    def match(self, cfn):
        if "ClientCrlS3Key" not in cfn.template.get("Parameters", {}):
            return []
        stores = set()
        for listener in resources(cfn, "AWS::ElasticLoadBalancingV2::Listener").values():
            stores |= refs(listener.get("Properties", {}).get("MutualAuthentication"))
        kind = "AWS::ElasticLoadBalancingV2::TrustStoreRevocation"
        for revocation in resources(cfn, kind).values():
            props = revocation.get("Properties", {})
            if (refs(props.get("TrustStoreArn")) & stores
                    and "ClientCrlS3Key" in refs(props.get("RevocationContents"))):
                return []
        return [RuleMatch(["Parameters", "ClientCrlS3Key"],
                          "ClientCrlS3Key is taken but no TrustStoreRevocation loads it into the "
                          "listener's trust store: revoked callers would still be let in")]
