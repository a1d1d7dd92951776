#!/usr/bin/env bash
# Bake the AMI (source amazon-ebs.ubuntu) from the one playbook. Not runnable
# on this project's CI (no AWS access): the template is validated there
# (packer/validate.sh) and its wiring tested (testing/static/test_packer.py).
#
#   packer/build-ami.sh -var aws_sbom_bucket=BUCKET [-var aws_region=...] [more -var ...]
#
# Needs modern Packer (>= 1.7: `packer init` installs the amazon plugin),
# ansible-playbook on PATH (make venv), python3 with cyclonedx-python-lib
# (the project venv), the AWS CLI (the SBOM's upload) and AWS credentials from
# the SDK chain. Before Packer starts it fetches the scan's content
# (tools/scap-content.sh: Packer checks its file provisioners' sources up front).
# Writes the AMI's SBOM, package manifest and OpenSCAP results under build/
# (build/scap-ami/), the SBOM and manifest also to S3 (publish-sbom.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'build-ami: ERROR: %s\n' "$*" >&2; exit 1; }

args=("$@")
bucket=""
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    -var) [[ ${args[i + 1]:-} == aws_sbom_bucket=* ]] && bucket=${args[i + 1]#aws_sbom_bucket=} ;;
    -var=aws_sbom_bucket=*) bucket=${args[i]#-var=aws_sbom_bucket=} ;;
  esac
done
bucket=${bucket:-${PKR_VAR_aws_sbom_bucket:-}}
[[ -n $bucket ]] || die "aws_sbom_bucket is not set: the AMI's SBOM and manifest go to S3 (-var aws_sbom_bucket=BUCKET)"
[[ $bucket =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "aws_sbom_bucket '$bucket' is not an S3 bucket name"

command -v packer >/dev/null || die "packer not found (HashiCorp's release, >= 1.7)"
version=$(packer version | sed -n 's/^Packer v\([0-9.]*\).*/\1/p')
[[ $(printf '%s\n1.7.0\n' "$version" | sort -V | head -1) == 1.7.0 ]] \
  || die "Packer $version cannot build the AMI (the amazon plugin needs >= 1.7)"
command -v ansible-playbook >/dev/null || die "ansible-playbook not on PATH (make venv; PATH=.venv/bin:\$PATH)"
command -v aws >/dev/null || die "the AWS CLI (aws) is not on PATH: publish-sbom.sh uploads with it"
python3 -c 'import cyclonedx' 2>/dev/null || die "python3 lacks cyclonedx-python-lib (make venv; PATH=.venv/bin:\$PATH)"

content=$(bash tools/scap-content.sh)
git_revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain 2>/dev/null) ]] || git_revision="$git_revision-dirty"
packer init packer/ >/dev/null
packer build -only='supermega-api.amazon-ebs.ubuntu' \
  -var "git_revision=$git_revision" -var "scap_content_dir=$content" "${args[@]}" packer/
printf 'build-ami: SBOM sha256:%s\n' "$(sha256sum build/image-sbom.cdx.json | cut -d' ' -f1)" >&2
