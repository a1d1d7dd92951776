#!/usr/bin/env bash
# Each role's README variable table, generated from meta/argument_specs.yml
# (the single source of a role's documentation) by aar-doc (PyPI), with the
# project's table template (ansible/roles/README-variables.md.j2).
#
#   scripts/role-docs.sh          rewrite the tables in place
#   scripts/role-docs.sh --check  fail if any README differs from what aar-doc makes
set -euo pipefail
cd "$(dirname "$0")/.."
template=$PWD/ansible/roles/README-variables.md.j2
aar_doc=${AAR_DOC:-.venv/bin/aar-doc}
status=0
for role in ansible/roles/*/; do
  role=${role%/}
  [[ -f $role/meta/argument_specs.yml ]] || continue
  if [[ ${1:-} == --check ]]; then
    scratch=$(mktemp -d)
    cp -r "$role" "$scratch/"
    copy=$scratch/$(basename "$role")
    "$aar_doc" --output-template "$template" "$copy" markdown >/dev/null
    if ! diff -u "$role/README.md" "$copy/README.md"; then
      echo "role-docs: $role/README.md is not what aar-doc makes from its argument_specs (run make role-docs)" >&2
      status=1
    fi
    rm -rf "$scratch"
  else
    "$aar_doc" --output-template "$template" "$role" markdown >/dev/null
  fi
done
exit "$status"
