#!/usr/bin/env bash
# Bake the local qemu image (source qemu.local) from the one playbook.
#
#   packer/build-local.sh            base: the local Debian 12 base image (CI)
#   BASE_IMAGE_URL=... BASE_IMAGE_CHECKSUM=sha256:... packer/build-local.sh
#                                    base: any cloud image (Ubuntu 24.04 by default
#                                    in the template, for machines with internet)
#
#   IMAGE_COMPRESS=0                 no qcow2 compression (CI: the image is
#                                    booted here and thrown away)
#
# Writes build/image/supermega-api.qcow2, build/packer-manifest.json, the
# package manifest and wheel lists, the CycloneDX SBOM (build/image-sbom.cdx.json,
# also inside the image), and build/image-build.json (timings, size, the SBOM's
# SHA-256: the image's manifest digest, printed last).
# Works with Debian's Packer 1.6.6 (no `packer init`, no required_plugins:
# it builds from a directory holding only the files it can parse) and with
# modern Packer (>= 1.7, `packer init` on packer/ itself).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

log() { printf 'image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v packer >/dev/null || die "packer not found (apt install packer, or HashiCorp's release)"
command -v ansible-playbook >/dev/null || die "ansible-playbook not on PATH (make venv; PATH=.venv/bin:\$PATH)"

accel=${VM_ACCEL:-tcg}
cpu=${VM_CPU:-$([ "$accel" = kvm ] && echo host || echo qemu64)}
build=build
out=$build/image
seed=$build/packer-seed

if [[ -z ${BASE_IMAGE_URL:-} ]]; then
  base=$(bash packer/base-image/build.sh)
  BASE_IMAGE_URL=$base
  BASE_IMAGE_CHECKSUM="sha256:$(cut -d' ' -f1 "$base.sha256")"
fi

mkdir -p "$build"
rm -rf "$out" "$seed" "$build/packer-src" "$build"/image-*.txt "$build"/image-build-identity.json \
  "$build/packer-manifest.json" "$build"/image-sbom.*

# A key and a NoCloud seed for this build only (the one seed writer,
# harness/vm.py): the build user they create is removed when the image
# is sealed, and the key is never used again.
mkdir -p "$seed"
ssh-keygen -q -t ed25519 -N '' -C "packer-build-$(date +%s)" -f "$seed/build_key"
python3 -m harness.vm seed --dir "$seed/cidata" --hostname supermega-api-build \
  --user packer --ssh-pubkey "$seed/build_key.pub" >/dev/null

version=$(packer version | sed -n 's/^Packer v\([0-9.]*\).*/\1/p')
if [[ $(printf '%s\n1.7.0\n' "$version" | sort -V | head -1) == 1.7.0 ]]; then
  src=packer
  packer init "$src" >/dev/null
else
  # Packer 1.6.x: only the files it can parse (see packer/validate.sh).
  src=$build/packer-src
  bash packer/validate.sh --prepare-only "$src"
fi

git_revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain 2>/dev/null) ]] || git_revision="$git_revision-dirty"

log "packer $version, source qemu.local, accelerator $accel/$cpu, base $BASE_IMAGE_URL"
start=$(date +%s)
PACKER_LOG_PATH=$build/packer.log PACKER_LOG=1 \
  packer build -only=supermega-api.qemu.local -color=false \
  -var "base_image_url=$BASE_IMAGE_URL" \
  -var "base_image_checksum=$BASE_IMAGE_CHECKSUM" \
  -var "accelerator=$accel" \
  -var "disk_compression=$([ "${IMAGE_COMPRESS:-1}" = 0 ] && echo false || echo true)" \
  -var "disk_cache=unsafe" \
  -var "qemu_cpu=$cpu" \
  -var "git_revision=$git_revision" \
  -var "output_dir=$out" \
  -var "build_ssh_key=$seed/build_key" \
  -var "seed_dir=$seed/cidata" \
  -var "artifacts_dir=$build" \
  "$src"
seconds=$(( $(date +%s) - start ))
image=$out/supermega-api.qcow2
[[ -f $image ]] || die "packer finished but $image is missing"
(cd "$out" && sha256sum supermega-api.qcow2 >supermega-api.qcow2.sha256)
[[ -s $build/image-sbom.cdx.json && -s $build/image-sbom.sha256 ]] || die "packer finished but the SBOM is missing"
sbom_digest=$(cat "$build/image-sbom.sha256")
[[ $(sha256sum "$build/image-sbom.cdx.json" | cut -d' ' -f1) == "$sbom_digest" ]] \
  || die "build/image-sbom.cdx.json does not match the digest sbom.py printed"
bytes=$(stat -c %s "$image")
virtual=$(qemu-img info --output=json "$image" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
cat >"$build/image-build.json" <<EOF
{"image": "$repo/$image", "bake_seconds": $seconds, "file_bytes": $bytes,
 "virtual_bytes": $virtual, "accelerator": "$accel", "packer": "$version",
 "compressed": $([ "${IMAGE_COMPRESS:-1}" = 0 ] && echo false || echo true),
 "base": "$BASE_IMAGE_URL", "git_revision": "$git_revision",
 "sbom_sha256": "$sbom_digest", "packages": $(wc -l <"$build/image-packages.txt")}
EOF
log "baked $image in ${seconds}s: $((bytes / 1024 / 1024)) MiB on disk, $((virtual / 1024 / 1024 / 1024)) GiB virtual"
log "manifest: $build/image-packages.txt ($(wc -l <"$build/image-packages.txt") packages), SBOM $build/image-sbom.cdx.json"
log "manifest digest (the SBOM's SHA-256, also /usr/share/supermega-api/sbom.cdx.json in the image): sha256:$sbom_digest"
echo "$repo/$image"
