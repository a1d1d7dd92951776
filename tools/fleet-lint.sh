#!/usr/bin/env bash
# make fleet-lint: the fleet's CloudFormation template (aws/fleet.yml) through
# cfn-lint (schema, properties, intrinsic functions) and checkov (security
# policy), zero findings; a skip must be written beside its resource with its
# reason. Then the mutation check for the template: each protection below is
# removed from a copy and the named tool must fail on it, naming the check,
# so a linter that stopped looking would show here.
set -euo pipefail
cd "$(dirname "$0")/.."

template=aws/fleet.yml
req=aws/requirements-lint.txt
venv=${FLEET_LINT_VENV:-.cache/fleet-lint-venv}
if [[ ! -x $venv/bin/checkov ]] || ! cmp -s "$req" "$venv/requirements-lint.txt"; then
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" 2>"$venv.pip.log" \
    || { cat "$venv.pip.log"; exit 1; }
  cp "$req" "$venv/requirements-lint.txt"
fi

cfn_lint() { "$venv/bin/cfn-lint" --format parseable -- "$1"; }
# --skip-download: no call to the vendor's platform (CI has no such network)
checkov() {
  "$venv/bin/checkov" --skip-download --compact --quiet --framework cloudformation -f "$1"
}

echo "cfn-lint $template"
cfn_lint "$template"
echo "checkov $template"
checkov "$template"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# name | tool | check id it must report | python replacement (old -> new)
mutants=(
  "IMDSv1 allowed|checkov|CKV_AWS_79|HttpTokens: required|HttpTokens: optional"
  "SSH open to the world|checkov|CKV_AWS_24|      SecurityGroupEgress:|      SecurityGroupIngress:\n        - {Description: ssh, IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 0.0.0.0/0}\n      SecurityGroupEgress:"
  "ALB passes invalid headers|checkov|CKV_AWS_131|drop_invalid_header_fields.enabled, Value: \"true\"|drop_invalid_header_fields.enabled, Value: \"false\""
  "HTTP listener serves instead of redirecting|checkov|CKV_AWS_2|        - Type: redirect\n          RedirectConfig: {Protocol: HTTPS, Port: \"443\", StatusCode: HTTP_301}|        - Type: forward\n          TargetGroupArn: !Ref TargetGroup"
  "a roll-out preference misspelt|cfn-lint|E3016|MinHealthyPercentage: 100\n          MaxHealthyPercentage: 200\n          SkipMatching|MinHealthyPercent: 100\n          MaxHealthyPercentage: 200\n          SkipMatching"
  "the group's health check type misspelt|cfn-lint|E3031|HealthCheckType: ELB|HealthCheckType: EC3"
)
failed=0
for m in "${mutants[@]}"; do
  IFS='|' read -r name tool check old new <<<"$m"
  out=$work/mutant.yml
  python3 - "$template" "$out" "$old" "$new" <<'PY'
import sys
src, dst, old, new = sys.argv[1], sys.argv[2], *(a.replace("\\n", "\n") for a in sys.argv[3:])
text = open(src).read()
if text.count(old) != 1:
    sys.exit(f"mutation anchor not found exactly once in {src}: {old!r}")
open(dst, "w").write(text.replace(old, new))
PY
  set +e
  if [[ $tool == checkov ]]; then report=$(checkov "$out" 2>&1); else report=$(cfn_lint "$out" 2>&1); fi
  rc=$?
  set -e
  if [[ $rc -ne 0 && $report == *"$check"* ]]; then
    echo "mutant caught: $name -> $tool $check"
  else
    echo "MUTANT SURVIVED: $name ($tool exit $rc, $check not reported)"; echo "$report" | tail -20
    failed=1
  fi
done
exit "$failed"
