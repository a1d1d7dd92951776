#!/usr/bin/env bash
# The AMI's SBOM and package manifest, published where the fleet's owners look
# for "which images carry it?": S3 objects named by the AMI's id, and the
# AMI tagged with their place and the SBOM's SHA-256. Packer's shell-local
# post-processor runs it on the build host after the AMI exists (source
# amazon-ebs only; the qcow2 keeps them beside the image, in build/).
#
#   MANIFEST  Packer's manifest (the AMI's id is its last build's artifact_id)
#   SBOM      the CycloneDX SBOM (packer/scripts/sbom.py)
#   PACKAGES  the package manifest (dpkg)
#   BUCKET    the S3 bucket (var.aws_sbom_bucket)
#   REGION    the AMI's region
#
# AWS credentials come from the SDK chain, as Packer's. Not run here (no AWS
# access): testing/unit/test_image_manifest.py runs it against a stand-in `aws`
# that records its calls.
set -euo pipefail

die() { printf 'publish-sbom: ERROR: %s\n' "$*" >&2; exit 1; }

for var in MANIFEST SBOM PACKAGES BUCKET REGION; do
  [[ -n ${!var:-} ]] || die "$var is empty (for BUCKET: -var aws_sbom_bucket=...)"
done
for file in "$MANIFEST" "$SBOM" "$PACKAGES"; do
  [[ -s $file ]] || die "$file is missing or empty"
done
command -v aws >/dev/null || die "the AWS CLI (aws) is not on PATH"

# The last build of the manifest is this one: "region:ami-id".
artifact=$(python3 -c '
import json, sys
builds = json.load(open(sys.argv[1]))["builds"]
last = [b for b in builds if b["packer_run_uuid"] == json.load(open(sys.argv[1]))["last_run_uuid"]]
print(last[-1]["artifact_id"])' "$MANIFEST")
ami=${artifact#*:}
[[ $ami =~ ^ami-[0-9a-f]{8,17}$ ]] || die "the manifest's last artifact is not an AMI: '$artifact'"

digest=$(sha256sum "$SBOM" | cut -d' ' -f1)
prefix="s3://$BUCKET/sboms/$ami"
aws --region "$REGION" s3 cp --only-show-errors "$SBOM" "$prefix/sbom.cdx.json" \
  --content-type application/vnd.cyclonedx+json
aws --region "$REGION" s3 cp --only-show-errors "$PACKAGES" "$prefix/packages.txt" \
  --content-type text/plain
aws --region "$REGION" ec2 create-tags --resources "$ami" --tags \
  "Key=SbomSha256,Value=$digest" "Key=SbomUri,Value=$prefix/sbom.cdx.json"
printf 'publish-sbom: %s: SBOM sha256:%s at %s/\n' "$ami" "$digest" "$prefix" >&2
