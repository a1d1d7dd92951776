#!/bin/sh
# The OpenSCAP scan, run as root on the machine scanned: the AMI's build
# instance before its seal (Packer, CIS Ubuntu 24.04 Level 1 Server), and an
# instance of the baked qcow2 in CI (harness/scap.py, ANSSI BP-028
# intermediary). One script; the content, the profile and the tailoring are
# parameters (docs/adr/0020-openscap-anssi-bp28.md).
#
#   SCAP_CONTENT=/tmp/scap/ssg-debian12-ds.xml   ComplianceAsCode data stream
#   SCAP_TAILORING=/tmp/scap/tailoring.xml       the waivers (its profile is scanned)
#   SCAP_PROFILE=xccdf_...profile_...            the tailoring's profile id
#   SCAP_OUT=/tmp/scap/out                       results.xml, summary.json written here
#   SCAP_REMOVE_SCANNER=yes|no                   purge the scanner afterwards if this
#                                                script installed it (the AMI: the image
#                                                does not ship it); default yes
#
# Debian's (or Ubuntu's) openscap-scanner is installed if it is missing. The
# HTML report is rendered by the controller from results.xml (native speed).
# Exit: 0 when no selected rule fails or errors, 2 when one does (each listed
# on stderr), 1 on a bad parameter or a scanner that could not run.
set -eu

die() { echo "scap-scan: ERROR: $*" >&2; exit 1; }

content=${SCAP_CONTENT:-}
tailoring=${SCAP_TAILORING:-}
profile=${SCAP_PROFILE:-}
out=${SCAP_OUT:-}
remove=${SCAP_REMOVE_SCANNER:-yes}

[ -s "$content" ] || die "SCAP_CONTENT must name a data stream file (got '$content')"
[ -s "$tailoring" ] || die "SCAP_TAILORING must name a tailoring file (got '$tailoring')"
case $profile in
  xccdf_*_profile_*) ;;
  *) die "SCAP_PROFILE must be an XCCDF profile id (xccdf_..._profile_...), got '$profile'" ;;
esac
grep -q "id=\"$profile\"" "$tailoring" || die "SCAP_PROFILE $profile is not a profile of $tailoring"
[ -n "$out" ] || die "SCAP_OUT must name the results directory"
case $remove in yes|no) ;; *) die "SCAP_REMOVE_SCANNER must be yes or no, got '$remove'" ;; esac
[ "$(id -u)" -eq 0 ] || die "must run as root (the rules read /etc/shadow, sudoers, every file's mode)"

installed=no
if ! command -v oscap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  # apt skips a mirror address that refused or timed out a connection for the
  # rest of its run, so its own Acquire::Retries cannot outlast such an outage:
  # a failed apt step runs again, as a new apt process, after a pause (as the
  # roles' package steps do: docs/adr/0021-package-steps-run-again.md)
  for n in 0 1 2 3 4; do
    [ "$n" -eq 0 ] || { echo "scap-scan: the install failed, again in 20 s ($n of 4)" >&2; sleep 20; }
    apt-get -q -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 update >&2 &&
      apt-get -q -y -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 install \
        --no-install-recommends openscap-scanner >&2 && break
  done
  command -v oscap >/dev/null 2>&1 || die "could not install openscap-scanner"
  installed=yes
fi

mkdir -p "$out"
rm -f "$out/results.xml" "$out/summary.json"
echo "scap-scan: $(oscap --version | head -1), profile $profile" >&2
start=$(date +%s)
# --skip-valid: the data stream is Debian's package, verified by apt; schema
# validation of its 10 MB costs minutes under emulation and proves nothing more.
set +e
oscap xccdf eval --skip-valid --tailoring-file "$tailoring" --profile "$profile" \
  --results "$out/results.xml" "$content" >"$out/oscap.log" 2>&1
code=$?
set -e
seconds=$(( $(date +%s) - start ))

if [ "$installed" = yes ] && [ "$remove" = yes ]; then
  apt-get -q -y -o DPkg::Lock::Timeout=600 purge --autoremove openscap-scanner >&2
fi

# oscap: 0 every rule passed, 2 at least one failed, anything else: it did not run.
case $code in 0|2) ;; *) cat "$out/oscap.log" >&2; die "oscap exited $code" ;; esac
[ -s "$out/results.xml" ] || die "oscap wrote no results"

# The counts and the failing rules, from the results (python3: the image has it).
python3 - "$out/results.xml" "$seconds" "$profile" >"$out/summary.json" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
X = "{http://checklists.nist.gov/xccdf/1.2}"
results, seconds, profile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
test = ET.parse(results).getroot().find(".//" + X + "TestResult")
counts, failing = {}, []
for rule in test.iter(X + "rule-result"):
    result = rule.find(X + "result").text
    counts[result] = counts.get(result, 0) + 1
    if result in ("fail", "error", "unknown"):
        failing.append({"rule": rule.get("idref"), "result": result})
print(json.dumps({"profile": profile, "seconds": seconds, "counts": counts,
                  "failing": failing}, indent=1))
EOF
python3 - "$out/summary.json" <<'EOF'
import json, sys
summary = json.load(open(sys.argv[1]))
counts = ", ".join(f"{n} {result}" for result, n in sorted(summary["counts"].items()))
print(f"scap-scan: {summary['seconds']} s: {counts}", file=sys.stderr)
for rule in summary["failing"]:
    print(f"scap-scan: FAILED: {rule['rule']} ({rule['result']})", file=sys.stderr)
sys.exit(2 if summary["failing"] else 0)
EOF
