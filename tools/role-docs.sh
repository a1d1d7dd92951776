#!/usr/bin/env bash
# meta/argument_specs.yml is the single source of each role's variables:
# aar-doc (PyPI, as dev-sec uses it) generates from it both defaults/main.yml
# (every default, its description as the comment) and the README's variable
# table (with the project's template, ansible/roles/README-variables.md.j2).
#
#   tools/role-docs.sh          regenerate defaults and tables in place
#   tools/role-docs.sh --check  fail if any differs from what aar-doc makes
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
    rm -f "$copy/defaults/main.yml"
    "$aar_doc" "$copy" defaults >/dev/null
    for file in README.md defaults/main.yml; do
      if ! diff -u "$role/$file" "$copy/$file"; then
        echo "role-docs: $role/$file is not what aar-doc makes from its argument_specs (run make role-docs)" >&2
        status=1
      fi
    done
    rm -rf "$scratch"
  else
    "$aar_doc" --output-template "$template" "$role" markdown >/dev/null
    rm -f "$role/defaults/main.yml"
    "$aar_doc" "$role" defaults >/dev/null
  fi
done
exit "$status"
