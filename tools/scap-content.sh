#!/usr/bin/env bash
# ComplianceAsCode's SCAP content, from Debian's own packages: ssg-debian
# (ssg-debian12-ds.xml: the ANSSI BP-028 profiles) and ssg-debderived
# (ssg-ubuntu2404-ds.xml: CIS Ubuntu 24.04). Debian 12 carries 0.1.65, which
# has neither, so they come from Debian 13 (trixie): fetched by apt through a
# trixie sources list kept in its own directory (the controller's apt
# configuration is not touched), verified by apt against the archive's signed
# index, and unpacked (dpkg -x) into the cache. Prints the content directory.
#
#   tools/scap-content.sh              .cache/scap/<version>/ (reused when there)
#   SCAP_CONTENT_VERSION=0.1.76        the version wanted (must be trixie's)
#
# The same content serves the qcow2's scan (CI) and the AMI's (Packer);
# docs/adr/0020-openscap-anssi-bp28.md says which profile and why.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

version=${SCAP_CONTENT_VERSION:-0.1.76}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=(ssg-base ssg-debian ssg-debderived)
cache=$repo/.cache/scap
out=$cache/$version
files=(ssg-debian12-ds.xml ssg-ubuntu2404-ds.xml)

log() { printf 'scap-content: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have() { for f in "${files[@]}"; do [[ -s $out/$f ]] || return 1; done; }
if have; then
  log "reusing $out"
  echo "$out"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: the content comes from Debian's packages"
work=$(mktemp -d "${TMPDIR:-/tmp}/scap-content.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/etc/preferences.d" "$work/unpack"
echo "deb $mirror trixie main" >"$work/etc/sources.list"
# Only these files: this apt sees trixie's index and nothing of the host's
# sources, state or cache. Signatures are checked with the host's Debian
# archive keyring (debian-archive-keyring carries trixie's keys).
apt_opts=(-o "Dir::Etc::sourcelist=$work/etc/sources.list" -o "Dir::Etc::sourceparts=-"
          -o "Dir::Etc::preferencesparts=$work/etc/preferences.d"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
          -o "Dir::State::status=/dev/null" -o "Acquire::Retries=5"
          -o "APT::Sandbox::User=root")
log "fetching ${packages[*]} $version from $mirror (trixie)"
apt-get -q "${apt_opts[@]}" update >&2 || die "apt-get update of trixie's index failed"
(cd "$work" && apt-get -q "${apt_opts[@]}" download "${packages[@]/%/=$version-1}" >&2) \
  || die "apt-get download of ${packages[*]} $version failed (is $version trixie's version?)"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/unpack"; done
mkdir -p "$cache"
rm -rf "$out.new"
mkdir -p "$out.new"
for f in "${files[@]}"; do
  cp "$work/unpack/usr/share/xml/scap/ssg/content/$f" "$out.new/$f" || die "$f is not in the packages"
done
(cd "$out.new" && sha256sum "${files[@]}" >SHA256SUMS)
rm -rf "$out"
mv "$out.new" "$out"
# One version kept: older ones are dead weight.
find "$cache" -mindepth 1 -maxdepth 1 ! -name "$version" -exec rm -rf {} +
log "content in $out"
echo "$out"
