#!/bin/sh
# The mutation check's "older base" (testing/image/test_mutants.py): one
# installed package taken back to an older version the mirror still has (the
# release's own, where -updates or -security has a newer one), as an image
# baked from a base of some weeks ago holds it. Run as root on an instance;
# prints the package and the versions. Undone by packer/scripts/upgrade.sh.
#
# Which package: neither essential nor required/important, not a kernel; one
# with no maintainer scripts first, then the smallest (under emulation
# ca-certificates' scripts alone cost ~3 minutes each way); and one whose
# downgrade changes that package alone (apt's simulation says so first; up
# to 10 tried).
set -eu
export DEBIAN_FRONTEND=noninteractive
# (the image checks fetched the mirror's index minutes before, in the same
# verify; an instance with no index, as with `make mutants` alone, fetches it)
ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get -q update >/dev/null

scripted=$(find /var/lib/dpkg/info -maxdepth 1 -type f \
  \( -name '*.preinst' -o -name '*.postinst' -o -name '*.prerm' -o -name '*.postrm' \) \
  -printf '%f\n' | sed -E 's/(:[a-z0-9]+)?\.[a-z]+$//' | sort -u)
candidates=$(dpkg-query -W \
  -f '${db:Status-Abbrev} ${Package} ${Priority} ${Essential} ${Installed-Size}\n' |
  awk -v scripted="$scripted" '
    BEGIN { n = split(scripted, s, "\n"); for (i = 1; i <= n; i++) has[s[i]] = 1 }
    $1 == "ii" && $3 != "required" && $3 != "important" && $4 != "yes" && $2 !~ /^linux-/ {
      print (($2 in has) ? 1 : 0), $5 + 0, $2 }' |
  sort -n -k1,1 -k2,2 | awk '{ print $3 }')
# the candidates the mirror has two binary versions of (one apt-cache call
# for all: one per package cost minutes under emulation; source lines left out)
# shellcheck disable=SC2086 # one argument per package
several=$(apt-cache madison $candidates | awk -F '|' '
  $3 ~ /Packages[ ]*$/ { gsub(/ /, "", $1); gsub(/ /, "", $2); k = $1 " " $2
    if (!(k in seen)) { seen[k] = 1; if (++n[$1] == 2) print $1 } }')
tried=0
for pkg in $(printf '%s\n' "$candidates" | awk -v several="$several" '
    BEGIN { n = split(several, s, "\n"); for (i = 1; i <= n; i++) ok[s[i]] = 1 }
    $0 in ok'); do
  [ "$tried" -lt 10 ] || break
  tried=$((tried + 1))
  installed=$(dpkg-query -W -f '${Version}' "$pkg")
  # the oldest binary version the mirror has, in dpkg's order (epochs and all)
  old=""
  for version in $(apt-cache madison "$pkg" | awk -F '|' '$3 ~ /Packages[ ]*$/ {
      gsub(/ /, "", $2); print $2 }'); do
    if [ -z "$old" ] || dpkg --compare-versions "$version" lt "$old"; then old=$version; fi
  done
  dpkg --compare-versions "$old" lt "$installed" || continue
  changes=$(apt-get -s -q --allow-downgrades install "$pkg=$old" | grep -c -E '^(Inst|Remv) ' || true)
  [ "$changes" -eq 1 ] || continue
  echo "downgrading $pkg from $installed to $old"
  apt-get -q -y --allow-downgrades -o Dpkg::Options::=--force-confold install "$pkg=$old" >/dev/null
  exit 0
done
echo "downgrade-one.sh: no installed package can be taken back alone to an older version" \
  "the mirror has (tried $tried)" >&2
exit 1
