#!/usr/bin/env bash
# Check the Packer templates: formatting, and `packer validate` of both
# sources (the qemu image and the AMI). No cloud credentials are needed.
#
#   packer/validate.sh                     fmt + validate
#   packer/validate.sh --prepare-only DIR  make DIR a source tree Packer 1.6 can read
#
# Modern Packer (>= 1.7) validates packer/ as it is. Debian's Packer 1.6.6
# cannot parse a few things, so it is given a derived tree in which
#   - plugins.pkr.hcl (required_plugins, Packer >= 1.7) is left out;
#   - aws.pkr.hcl has the settings newer than its built-in amazon builder
#     removed: `metadata_options`, `imds_support` (IMDSv2; amazon plugin
#     >= 1.2.1) and `temporary_security_group_source_public_ip`. Everything
#     else in the AMI source is validated by 1.6.6 as written; those settings
#     are checked by `packer fmt` and by testing/static/test_packer.py (a
#     real HCL parser) here, and by modern Packer elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"
  ln -s "$(pwd)/packer/api.pkr.hcl" "$dir/api.pkr.hcl"
  # Drop those settings (and only those).
  awk '
    /^[[:space:]]*metadata_options[[:space:]]*\{/ { skip = 1; next }
    skip && /^[[:space:]]*\}/ { skip = 0; next }
    skip { next }
    /^[[:space:]]*(imds_support|temporary_security_group_source_public_ip)[[:space:]]*=/ { next }
    { print }
  ' packer/aws.pkr.hcl >"$dir/aws.pkr.hcl"
  if grep -q -e metadata_options -e imds_support -e source_public_ip "$dir/aws.pkr.hcl"; then
    echo "validate.sh: could not strip the settings Packer 1.6 does not know" >&2
    exit 1
  fi
}

if [[ ${1:-} == --prepare-only ]]; then
  prepare "$2"
  exit 0
fi

command -v packer >/dev/null || { echo "validate.sh: packer not found" >&2; exit 1; }
packer fmt -check -diff packer/
version=$(packer version | sed -n 's/^Packer v\([0-9.]*\).*/\1/p')
# Variables a real build would pass (a build key and seed are made per build;
# validate only needs files that exist).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/cidata" "$scratch/scap"
touch "$scratch/cidata/user-data" "$scratch/cidata/meta-data"
# (the AMI's scan content: packer/build-ami.sh fetches the real one)
touch "$scratch/scap/ssg-ubuntu2404-ds.xml"
ssh-keygen -q -t ed25519 -N '' -f "$scratch/key"
vars=(-var base_image_url=/nonexistent.qcow2 -var base_image_checksum=none
      -var "build_ssh_key=$scratch/key" -var "seed_dir=$scratch/cidata"
      -var "output_dir=$scratch/image" -var "scap_content_dir=$scratch/scap")
if [[ $(printf '%s\n1.7.0\n' "$version" | sort -V | head -1) == 1.7.0 ]]; then
  packer init packer/ >/dev/null
  packer validate "${vars[@]}" packer/
else
  prepare "$scratch/src"
  packer validate "${vars[@]}" "$scratch/src"
  echo "validate.sh: Packer $version validated both sources (newer AMI settings: fmt and tests only, see header)"
fi
