#!/usr/bin/env bash
# make fleet-lint: the fleet's CloudFormation template (aws/fleet.yml) through
# cfn-lint (schema, properties, intrinsic functions) and checkov (security
# policy), zero findings; a skip must be written beside its resource with its
# reason; the project's own rules (aws/lint_rules: mutual TLS, trusted
# proxies, keep-alive, bake time) run with cfn-lint. Then the mutation check
# for the template (tools/fleet_mutants.py): each protection is removed from a
# copy and the named tool must fail on it, naming the check, so a linter or a
# rule that stopped looking would show here.
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

rules=aws/lint_rules      # the project's own invariants (cfn-lint rules E9001-E9006)
cfn_lint() { "$venv/bin/cfn-lint" --append-rules "$rules" --format parseable -- "$1"; }
# --skip-download: no call to the vendor's platform (CI has no such network)
checkov() {
  "$venv/bin/checkov" --skip-download --compact --quiet --framework cloudformation -f "$1"
}

echo "cfn-lint $template (with $rules)"
cfn_lint "$template"
echo "checkov $template"
checkov "$template"

# The mutation check: tools/fleet_mutants.py lists each protection, the copy
# without it, and the tool and check that must report it.
"$venv/bin/python" tools/fleet_mutants.py "$template" "$venv/bin/cfn-lint" "$venv/bin/checkov" "$rules"
