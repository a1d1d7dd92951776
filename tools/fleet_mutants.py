"""The mutation check for aws/fleet.yml (`make fleet-lint`): each protection
is removed from a copy of the template, and the named tool must fail on the
copy, naming the named check. A linter or a rule that stopped looking shows
here as a surviving mutant.

    python3 tools/fleet_mutants.py TEMPLATE CFN_LINT CHECKOV RULES_DIR

Every edit is an exact text replacement that must match once.
"""

import subprocess
import sys
import tempfile

OLD_CLIENT_LOOP = '''  Fn::ForEach::ClientRules:
    - Cidr
    - !Ref ClientCidrs
    - LbIngressHttps&{Cidr}:
        Type: AWS::EC2::SecurityGroupIngress
        Properties:
          GroupId: !Ref LoadBalancerSecurityGroup
          IpProtocol: tcp
          FromPort: 443
          ToPort: 443
          CidrIp: !Ref Cidr
'''

# name, tool, the check it must report, [(old text, new text), ...]
MUTANTS = [
    ("IMDSv1 allowed", "checkov", "CKV_AWS_79",
     [("HttpTokens: required", "HttpTokens: optional")]),
    ("SSH open to the world", "checkov", "CKV_AWS_24",
     [("      SecurityGroupEgress:\n        - Description: HTTPS out",
       "      SecurityGroupIngress:\n        - {Description: ssh, IpProtocol: tcp, FromPort: 22,"
       " ToPort: 22, CidrIp: 0.0.0.0/0}\n      SecurityGroupEgress:\n"
       "        - Description: HTTPS out")]),
    ("ALB passes invalid headers", "checkov", "CKV_AWS_131",
     [('drop_invalid_header_fields.enabled, Value: "true"',
       'drop_invalid_header_fields.enabled, Value: "false"')]),
    ("HTTP listener serves instead of redirecting", "checkov", "CKV_AWS_2",
     [('        - Type: redirect\n          RedirectConfig: {Protocol: HTTPS, Port: "443", '
       'StatusCode: HTTP_301}',
       "        - Type: forward\n          TargetGroupArn: !Ref TargetGroup")]),
    ("a roll-out preference misspelt", "cfn-lint", "E3016",
     [("MinHealthyPercentage: 100\n          MaxHealthyPercentage: 150\n          SkipMatching",
       "MinHealthyPercent: 100\n          MaxHealthyPercentage: 150\n          SkipMatching")]),
    ("the group's health check type misspelt", "cfn-lint", "E3031",
     [("HealthCheckType: ELB", "HealthCheckType: EC3")]),
    ("no mutual authentication on the HTTPS listener", "cfn-lint", "E9001",
     [("      MutualAuthentication: !If\n        - WithMutualTls\n        - Mode: verify\n"
       "          TrustStoreArn: !Ref TrustStore\n          IgnoreClientCertificateExpiry: false\n"
       '        - Mode: "off"\n', "")]),
    ("a VPC-wide trusted range", "cfn-lint", "E9002",
     [("  LoadBalancerSubnetCidrs:\n",
       "  VpcCidr:\n    Type: String\n    Default: 10.20.0.0/16\n  LoadBalancerSubnetCidrs:\n"),
      ('TrustedProxies: !Join ["", [\'["\', !Join [\'", "\', !Split [",", '
       '!Ref LoadBalancerSubnetCidrs]], \'"]\']]',
       'TrustedProxies: !Sub \'["${VpcCidr}"]\'')]),
    ("nginx keep-alive at or below the idle timeout", "cfn-lint", "E9003",
     [('{Key: idle_timeout.timeout_seconds, Value: "60"}',
       '{Key: idle_timeout.timeout_seconds, Value: "75"}')]),
    ("no BakeTime on the instance refresh", "cfn-lint", "E9004",
     [("          BakeTime: 600\n", "")]),
    ("the instances' 443 open to an address range", "cfn-lint", "E9005",
     [("      SourceSecurityGroupId: !Ref LoadBalancerSecurityGroup\n",
       "      CidrIp: 10.0.0.0/8\n")]),
    ("the revocation list never loaded", "cfn-lint", "E9006",
     [("      RevocationContents:\n        - {RevocationType: CRL, S3Bucket: "
       "!Ref ClientCaBundleS3Bucket, S3Key: !Ref ClientCrlS3Key}\n",
       "      RevocationContents:\n        - {RevocationType: CRL, S3Bucket: "
       "!Ref ClientCaBundleS3Bucket, S3Key: !Ref ClientCaBundleS3Key}\n")]),
    ("client rules named by their network (a colliding pair)", "cfn-lint",
     "E0001:Error transforming template: Duplicate",
     [("  ClientCidrs:\n    Type: String\n",
       "  ClientCidrs:\n    Type: CommaDelimitedList\n    Default: 10.1.10.0/24,10.11.0.0/24\n"),
      ("  Fn::ForEach::ClientRules:\n", OLD_CLIENT_LOOP + "  Fn::ForEach::SlotRules:\n")]),
]


def mutate(text, edits):
    for old, new in edits:
        if text.count(old) != 1:
            raise SystemExit(f"mutation anchor not found exactly once: {old[:80]!r}")
        text = text.replace(old, new)
    return text


def main(template, cfn_lint, checkov, rules):
    with open(template) as f:
        original = f.read()
    survived = 0
    with tempfile.TemporaryDirectory() as work:
        for name, tool, check, edits in MUTANTS:
            path = f"{work}/mutant.yml"
            with open(path, "w") as f:
                f.write(mutate(original, edits))
            if tool == "checkov":
                argv = [checkov, "--skip-download", "--compact", "--quiet",
                        "--framework", "cloudformation", "-f", path]
            else:
                argv = [cfn_lint, "--append-rules", rules, "--format", "parseable", "--", path]
            out = subprocess.run(argv, capture_output=True, text=True)
            report = out.stdout + out.stderr
            if out.returncode != 0 and check in report:
                print(f"mutant caught: {name} -> {tool} {check}")
            else:
                print(f"MUTANT SURVIVED: {name} ({tool} exit {out.returncode}, {check} not "
                      f"reported)\n{report[-2000:]}")
                survived += 1
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
