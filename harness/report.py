#!/usr/bin/env python3
"""Write docs/verification.md (its headline figures first) from what the run
recorded: build/timings.json (every stage, harness/timings.py),
build/image-build.json (the bake), build/nfr-results.json (the NFR suite),
build/perf-native.json (testing/perf), build/mutants.json (the mutation check),
build/alerts-live.json, build/journal-upload.json and build/fleet.json (the
local fleet; its pictures go to docs/img/).

    python -m harness.report [--docs docs/verification.md]

`.ci/run` calls it at the end of every run (`make report`), so the committed
files are those of the run that produced them; a figure the run did not
measure is printed as "not measured", never carried over from an older run.
"""

import argparse
import json
import os
import re
import time

from harness import BUILD, ROOT
from harness.guards import failed_in_its_body, passed_wholly


def load(name):
    path = os.path.join(BUILD, name)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def fmt(value, unit=" s"):
    return "not measured" if value is None else f"{value}{unit}"


def minutes(seconds):
    return "not measured" if seconds is None else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def stage_rows(t):
    rows = [
        ("CI: host packages + venv", "ci_setup_seconds", "`.ci/run`"),
        ("lint", "lint_seconds", "`make lint`"),
        ("unit tests (first in the roles lane)", "unit_seconds", "`make unit`"),
        ("native performance", "perf_native_seconds", "`make perf-native`"),
        ("fleet template: cfn-lint, checkov, its mutants (in the roles lane)",
         "fleet_lint_seconds", "`make fleet-lint`"),
        ("roles: molecule create (boot to SSH)", "molecule_default_create_seconds",
         "`molecule test` (default)"),
        ("roles: molecule converge (from scratch)", "molecule_default_converge_seconds", ""),
        ("roles: molecule idempotence (changed must be 0)",
         "molecule_default_idempotence_seconds", ""),
        ("roles: molecule verify (Testinfra)", "molecule_default_verify_seconds", ""),
        ("roles: whole `molecule test`", "molecule_default_seconds", ""),
        ("vagrant: the Debian 13 base image (make up's driver: built, or reused)",
         "vagrant_base_image_seconds", "`make vagrant-check`"),
        ("vagrant: the local box (from that base image)", "vagrant_box_seconds", ""),
        ("vagrant: boot (make up's driver)", "vagrant_boot_seconds", ""),
        ("vagrant: a converge the preflight refuses (make up must not say up)",
         "vagrant_refused_converge_seconds", ""),
        ("vagrant: the converge from scratch (make up again)", "vagrant_converge_seconds", ""),
        ("vagrant: the roles' Testinfra suite on the VM", "vagrant_verify_seconds", ""),
        ("vagrant destroy", "vagrant_destroy_seconds", ""),
        ("OpenSCAP: an instance of the image booted and scanned (ANSSI BP-028 intermediary)",
         "scap_seconds", "`make scap`"),
        ("image: packer build (qemu.local)", "image_seconds", "`make image`"),
        ("  of which the converge", "image_converge_seconds", ""),
        ("NFR: molecule create (one instance)", "molecule_nfr_create_seconds",
         "`molecule test -s nfr`"),
        ("NFR: molecule verify (the suite, testing/nfr)", "molecule_nfr_verify_seconds", ""),
        ("NFR: whole scenario", "molecule_nfr_seconds", ""),
        ("image: molecule create (two instances)", "molecule_image_create_seconds",
         "`molecule test -s image`"),
        ("image: verify (suite, image checks, mutants)", "molecule_image_verify_seconds", ""),
        ("  of which the mutation check", "mutants_seconds", ""),
        ("image: whole scenario", "molecule_image_seconds", ""),
        ("local fleet: HAProxy before the image's instances (callers, abuse, roll, loss)",
         "fleet_check_seconds", "`make fleet-check`"),
        ("lane roles (unit tests, fleet lint, molecule default, Vagrant on Debian 13, the OpenSCAP "
         "scan)",
         "lane_roles_seconds",
         "`make vm-suites`"),
        ("lane image (bake, NFR scenario, image scenario, local fleet), beside it",
         "lane_image_seconds",
         ""),
        ("whole `.ci/run`", "ci_total_seconds", "`bash .ci/run`"),
    ]
    out = ["| Stage | Seconds | Command |", "|---|---|---|"]
    for label, key, command in rows:
        out.append(f"| {label} | {fmt(t.get(key), '')} | {command} |")
    return out


def boots(t):
    """Every instance of the image booted in the run: boot-to-healthy and systemd-analyze."""
    out = []
    for key in sorted(t):
        match = re.match(r"molecule_(\w+?)_(.+)_boot_to_healthy_seconds$", key)
        if match:
            scenario, instance = match.groups()
            analyze = t.get(f"molecule_{scenario}_{instance}_systemd_analyze") or []
            out.append((scenario, instance, t[key],
                        t.get(f"molecule_{scenario}_{instance}_boot_to_ssh_seconds"), analyze))
    return out


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else round((values[mid - 1] + values[mid]) / 2, 1)


def before_boots(baseline):
    """The same figures before the boot-path changes (docs/boot-baseline.json)."""
    rows = baseline.get("boots", [])
    if not rows:
        return []
    ci = [r["healthy"] for r in rows if r["where"] == "CI run"]
    out = ["", f"Before the boot-path changes (docs/adr/0014-boot-path.md), the image of "
           f"{baseline['commit']}: median {median(ci)} s in its CI run; "
           "docs/boot-baseline.json says where each figure comes from.", "",
           "| Where | Scenario | Instance | vCPUs | Boot to healthy | systemd-analyze |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['where']} | {r['scenario']} | {r['instance']} | {r['vcpus']} | "
                   f"{r['healthy']} s | {'<br>'.join(r['analyze'][:6]) or 'not recorded'} |")
    return out


def boot_alone_section(alone):
    """build/boot-alone.json (testing/boot): the image booted alone, interleaved
    with the base image it was baked from (the reference)."""
    boots, refs = alone.get("boots", []), alone.get("references", [])
    if not boots:
        return ["", "Alone (`make boot-alone`): not measured in this run."]
    first = boots[0]
    ratio = alone.get("ratio")
    verdict = ("not reached: a boot failed" if ratio is None
               else "held" if ratio <= alone["ratio_bound"] else "MISSED")
    out = ["", f"Alone (`make boot-alone`, testing/boot): {len(boots)} instances of the image, "
           f"each after a boot of the base image it was baked from, one at a time with no other "
           f"VM running, {first['vcpus']} vCPUs / {first['memory_mib']} MiB (the template's "
           f"t3.small), under TCG; the image with the fleet's user-data, timed to its first "
           f"HTTPS /healthz 200; the base with its seed alone, timed to login and SSH. Median "
           f"boot to healthy **{alone.get('median_healthy')} s**, the base's median boot "
           f"{alone.get('median_reference')} s: ratio **{ratio}** (bound "
           f"{alone['ratio_bound']}: {verdict}). Run: {alone.get('run')}.", "",
           "| Base image boot | to login and SSH | Host load before |", "|---|---|---|"]
    out += [f"| {r['instance']} | {r['ssh']} s | {r['host_load_before']} |" for r in refs]
    out += ["", "| Instance | Boot to healthy | Boot to SSH | Host load before | systemd-analyze "
            "(and the slowest units) | nginx's critical chain |", "|---|---|---|---|---|---|"]
    for b in boots:
        chain = "<br>".join(line.strip().replace("└─", "") for line in b["critical_chain"][:9])
        out.append(f"| {b['instance']} | {b['healthy']} s | {b['ssh']} s | "
                   f"{b['host_load_before']} | {'<br>'.join(b['analyze'][:7])} | {chain} |")
    return out


def perf_table(perf):
    if not perf.get("a"):
        return ["not measured"]
    labels = {"a": "(a) `python app/app.py` (Flask's server, :5000)",
              "b": "(b) gunicorn as deployed, direct",
              "c": "(c) nginx HTTPS -> unix socket -> gunicorn"}
    out = ["| Target | median req/s | spread (min-max) | median p99 ms | socket errors | "
           "non-2xx/3xx |", "|---|---|---|---|---|---|"]
    for t in "abc":
        r = perf[t]
        out.append(f"| {labels[t]} | {r['median_rps']} | {r['min_rps']}-{r['max_rps']} | "
                   f"{r['median_p99_ms']} | {r['socket_errors']} | {r['non_2xx_3xx']} |")
    ratios = perf["ratios"]
    out.append("")
    out.append(f"Ratios of the medians: c/b = {ratios['c_over_b']}, c/a = {ratios['c_over_a']} "
               f"(per round: c/b {ratios['per_round']['c_over_b']}, "
               f"c/a {ratios['per_round']['c_over_a']}); goals {perf.get('goals')}.")
    return out


def mutants_table(rows):
    if not rows:
        return ["not run"]
    out = ["| Protection removed on the live instance | Guarding test | Fails without it | "
           "Passes again after | Caught |", "|---|---|---|---|---|"]
    for r in rows:
        mutated = guard_run(r.get("mutated"), r.get("mutated_outcomes"), failed_in_its_body)
        restored = guard_run(r.get("restored"), r.get("restored_outcomes"), passed_wholly)
        out.append(f"| {r['mutation']} | `{r['guard']}` | {mutated} | {restored} | "
                   f"{'yes' if r.get('caught') else 'NO'} |")
    return out


def guard_run(code, outcomes, verdict):
    """One run of a guard, judged as the mutation check judges it (a row from
    before the outcomes were kept: by its exit code alone), with its test
    cases by outcome."""
    if outcomes is None:
        ok = code == (1 if verdict is failed_in_its_body else 0)
        return "yes" if ok else f"NO (exit {code})"
    cases = ", ".join(f"{n} {k}" for k, n in outcomes.items() if n)
    return f"{'yes' if verdict(code, outcomes) else 'NO'} (exit {code}: {cases or 'no case'})"


def alerts_live_section(runs):
    """The project's rules in a real Prometheus scraping a live host: the
    image's instance-1 (a baked instance, its monitoring source from
    user-data)."""
    lines = ["", "## Alerts on a live host (testing/host/test_alerts_live.py)", ""]
    if not runs:
        return lines + ["not run"]
    first = next(iter(runs.values()))
    lines += [
        "Debian's Prometheus and blackbox exporter on the controller's loopback scrape the host "
        "through forwarded ports, from its monitoring source: blackbox probes HTTPS /healthz, "
        "node exporter, nginx exporter and mtail directly; every target up. Scrape every "
        f"{first.get('scrape_interval_seconds')} s, rules evaluated every "
        f"{first.get('evaluation_interval_seconds')} s. The API's socket and service stopped:",
        "",
        "| scenario/host | ApiDown `for` | pending after | firing after | resolved after the "
        "start | a second Prometheus whose ApiDown reads a job that does not exist | run |",
        "|---|---|---|---|---|---|---|"]
    for name, a in sorted(runs.items()):
        lines.append(
            f"| {name} | {a.get('api_down_for_seconds')} s | "
            f"{fmt(a.get('pending_after_seconds'))} | {fmt(a.get('fired_after_seconds'))} | "
            f"{fmt(a.get('resolved_after_seconds'))} | saw the outage: "
            f"{'yes' if a.get('miswired_saw_outage') else 'NO'}; its ApiDown: "
            f"{', '.join(a.get('miswired_rule_states') or ['n/a'])} (the check tells a working "
            f"rule from a miswired one: {'yes' if a.get('caught_when_miswired') else 'NO'}) | "
            f"{a.get('date')} |")
    return lines


def journal_section(j):
    """The journal shipped to a real systemd-journal-remote."""
    lines = ["", "## Logs leave the host (testing/host/test_journal_upload.py)", ""]
    if not j:
        return lines + ["not run"]
    lines += [
        f"systemd-journal-upload on {j.get('host')} (the roles' VM) ships its journal over TLS "
        "to Debian's systemd-journal-remote on the controller, with this run's test CA.", "",
        "| A collector with another CA's certificate received | the request logged during "
        "that outage arrived (after the real collector started) | a request's id at the "
        f"collector after (bound {j.get('bound_seconds')} s) |", "|---|---|---|",
        f"| {j.get('stranger_received_entries')} entries | "
        f"{fmt(j.get('first_after_outage_seconds'))} | {fmt(j.get('arrival_seconds'))} |", "",
        f"Run: {j.get('date')}."]
    return lines


def fleet_picture(name, scenario, out_dir):
    """Requests answered per second, one line per series (200s, 429s,
    failures; by client where it matters), the scenario's events marked;
    returns the file's name."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    top = 1
    for label, counts in scenario["per_second"].items():
        good = label.endswith("200")
        ax.step(range(len(counts)), counts, where="post", label=label,
                linewidth=1.6 if good else 1.2, linestyle="-" if good else "--")
        top = max([top, *counts])
    for n, (at, what) in enumerate(scenario["events"]):
        ax.axvline(at, color="grey", linestyle=":", linewidth=0.8)
        ax.text(at, top * (0.95 - 0.12 * (n % 4)), " " + what, fontsize=7)
    ax.set_xlabel("seconds")
    ax.set_ylabel("requests answered per second")
    ax.set_title(f"Local fleet: {name}", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    filename = f"fleet-{name}.png"
    fig.savefig(os.path.join(out_dir, filename), metadata={"Software": None})
    plt.close(fig)
    return filename


def callers_rows(c):
    """Who the fleet lets in (testing/fleet's caller checks)."""
    if not c:
        return ["Callers: not checked in this run."]
    refused = c.get("refused_at_balancer", {})
    return [
        "| Caller | Outcome |", "|---|---|",
        f"| no certificate | {refused.get('None', 'n/a')} (refused at the balancer) |",
        f"| a certificate of another CA | {refused.get('stranger', 'n/a')} |",
        f"| an expired certificate | {refused.get('expired', 'n/a')} |",
        f"| the callers' CA, allowed subject | {c.get('good_certificate', 'n/a')} |",
        f"| the callers' CA, another subject | {c.get('subject_not_allowed', 'n/a')} |",
        f"| the ALB's subject header sent straight to an instance | "
        f"{c.get('forged_header_straight', 'n/a')}, logged as {c.get('logged_as', 'n/a')} |",
        f"| a burst naming a steady client in X-Forwarded-For, through the balancer | "
        f"{c.get('forging_burst', 'n/a')}; the named client's {c.get('victim_requests', 'n/a')} "
        f"requests meanwhile: {c.get('victim_failed', 'n/a')} failed |",
        f"| the same straight to an instance | {c.get('straight_statuses', 'n/a')}, logged as "
        f"{c.get('straight_logged_as', 'n/a')} |"]


def fleet_section(f, docs_dir):
    """The local fleet: HAProxy before instances of the image (testing/fleet)."""
    lines = ["", "## The fleet behind a load balancer (testing/fleet, `make fleet-check`)", ""]
    if not f:
        return lines + ["not run"]
    boot = f.get("boot", {})
    check = boot.get("health_check", {})
    lines += [
        "HAProxy (Debian's package) on the controller's loopback terminates TLS and verifies "
        "the callers' client certificates against the run's test CA (the ALB's trust store, "
        "verify mode), passes the verified subject in the ALB's header "
        "(X-Amzn-Mtls-Clientcert-Subject), re-encrypts to each instance's 443, health-checks "
        f"`/healthz` every {check.get('inter_ms')} ms ({check.get('fall')} failures mark a "
        "server down) and appends the client's address to X-Forwarded-For. The instances are "
        "the baked image, booted with the user-data of aws/fleet.yml's launch template (qemu's "
        "gateway as the load balancer's subnet, client_auth load_balancer). Three steady "
        "clients send 4 requests/s each, each from its own loopback address.", "",
        f"First two instances healthy after: {boot.get('instances')} (both: "
        f"{boot.get('both_seconds')} s).", ""]
    lines += callers_rows(f.get("callers"))
    lines += ["", "| Scenario | Requests | Failed | Figures |", "|---|---|---|---|"]
    abuse, roll, kill = f.get("abuse"), f.get("roll"), f.get("kill")
    if abuse:
        lines.append(
            f"| one abusive client | {abuse['requests']} | {abuse['steady_failed']} of the steady "
            f"clients' | burst {abuse['abusive_rps']} req/s for {abuse['burst_seconds']} s: "
            f"{abuse['abusive_statuses']}; steady requests in those seconds: "
            f"{abuse['steady_during_burst']}, all 200; failed health checks "
            f"{abuse['checks_failed']}; 429s logged for the abuser's own address "
            f"{abuse['logged_429']}; nobody banned |")
    if roll:
        steps = "; ".join(f"{s['new']} in, {s['old']} out in {s['seconds']} s (boot to healthy "
                          f"{s['boot_to_healthy']} s)" for s in roll["steps"])
        lines.append(f"| rolling replacement | {roll['requests']} | {roll['failed']} | "
                     f"roll {roll['roll_seconds']} s: {steps} |")
    if kill:
        lines.append(
            f"| instance lost (qemu SIGKILL) | {kill['requests']} | {kill['failed']} | "
            f"{kill['in_flight_at_kill']} in flight at the kill; marked down after "
            f"{kill['detection_seconds']} s; failed after that: {kill['failed_after_detection']} |")
    for name in ("abuse", "roll", "kill"):
        if f.get(name):
            filename = fleet_picture(name, f[name], os.path.join(docs_dir, "img"))
            lines += ["", f"![{name}](img/{filename})"]
    return lines


def scap_section(scan):
    """The OpenSCAP scan of an instance of the image (build/scap.json)."""
    out = ["", "## OpenSCAP: ANSSI BP-028 intermediary (`make scap`, testing/benchmark)", ""]
    if not scan.get("counts"):
        return out + ["Not run in this run."]
    counts = scan["counts"]
    passed, failed = counts.get("pass", 0), len(scan.get("failing", []))
    evaluated = passed + failed
    rate = f"{100 * passed / evaluated:.1f} %" if evaluated else "n/a"
    out += [f"An instance of the image, booted with the fleet's user-data, scanned by Debian's "
            f"openscap-scanner with ComplianceAsCode's `ssg-debian12-ds.xml` (Debian's ssg-debian "
            f"0.1.76), profile `{scan['extends']}` tailored by "
            f"`compliance/anssi-bp28-intermediary-debian12.xml`: **{passed} pass, {failed} fail** "
            f"of the rules that apply (pass rate {rate}); "
            + ", ".join(f"{n} {result}" for result, n in sorted(counts.items())
                        if result not in ("pass", "fail"))
            + f"; {len(scan.get('waivers', {}))} rules waived. The scan took "
            f"{scan.get('seconds', 'n/a')} s of the {scan.get('total_seconds', 'n/a')} s with the "
            "boot (`oscap xccdf eval` on the instance, 1 vCPU, TCG). Results and the HTML report: "
            "`build/scap/` (CI artifacts).", ""]
    if scan.get("failing"):
        out += ["Failing rules (each fails CI):", ""]
        out += [f"- `{f['rule'].removeprefix('xccdf_org.ssgproject.content_rule_')}` "
                f"({f['result']})" for f in scan["failing"]]
        out.append("")
    out += ["Waived rules, each with the reason the tailoring file gives:", "",
            "| Rule | Reason |", "|---|---|"]
    out += [f"| `{rule}` | {reason} |" for rule, reason in sorted(scan.get("waivers", {}).items())]
    return out


def cis_forecast_section(path):
    """The AMI's CIS Level 1 Server forecast (docs/cis-forecast.md, written
    by `make cis-forecast` by hand: not a CI figure)."""
    out = ["", "## CIS Ubuntu 24.04 Level 1 Server: the AMI's rules, forecast on Debian 12 "
           "(`make cis-forecast`, by hand)", "",
           "The AMI's build scans with CIS Level 1 Server before its seal "
           "(`compliance/cis-ubuntu2404-level1-server.xml`), which cannot run here. The CIS rules "
           "that Debian's content also checks were scanned on an instance of the image; each "
           "failure is waived for the AMI with its reason, or the AMI's build fails on it.", ""]
    if not os.path.isfile(path):
        return out + ["Not measured yet."]
    with open(path) as f:
        return out + [line for line in f.read().splitlines() if not line.startswith("<!--")]


def failed_stages(t):
    """One line: the stages of the run that exited non-zero (a red run's figures are still
    figures, but the reader must know the run was red)."""
    failed = sorted(k.removesuffix("_exit_code") for k, v in t.items()
                    if k.endswith("_exit_code") and v not in (0, None))
    if not failed:
        return "Every stage of this run exited 0."
    return ("**This run was red**: " + ", ".join(f"`{name}`" for name in failed)
            + " exited non-zero (the stage's figures below are still what it measured).")


def verification(t, build, nfr, native, mutants, baseline=None, docs_dir=None):
    baseline = baseline or {}
    meta = nfr.get("_meta", {})
    faults, load_ = nfr.get("faults", {}), nfr.get("load", {})
    lines = [
        "<!-- Written by harness/report.py from the run's own build/*.json; do not edit. -->",
        "# Verification: measured figures",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from the run of commit "
        f"`{t.get('git_revision', 'unknown')}` (`bash .ci/run` calls `make report` at its end). "
        "Machine: this project's CI kind (Debian 12, "
        f"{os.cpu_count()} cores); VMs under `{os.environ.get('VM_ACCEL', 'tcg')}` (software "
        "emulation: absolute numbers are far below real hardware; the VM lanes share the cores).",
        "",
        "## Headline figures",
        "",
        headline(t, build, native, nfr),
        "",
        "## CI and its stages",
        "",
        f"Whole `.ci/run`: **{minutes(t.get('ci_total_seconds'))}**. The VM suites run in two "
        "lanes at once: roles (the unit tests, the fleet lint, Molecule on Debian 12, "
        "`make up`'s VM on Debian 13, then the OpenSCAP scan) and image (bake, the NFR "
        "scenario's instance, the image scenario's two instances, then the local fleet).",
        "",
        failed_stages(t),
        "",
        *stage_rows(t),
        "",
        "## The image",
        "",
    ]
    if build:
        lines.append(f"Baked in {build['bake_seconds']} s: {build['file_bytes'] // 2**20} MiB "
                     f"on disk ({build['virtual_bytes'] // 2**30} GiB virtual, compression "
                     f"{'off' if build.get('compressed') is False else 'on'}).")
    lines += ["", "Boot to first HTTPS `/healthz` 200 (from starting qemu), every instance "
              "booted in the run:", "", "| Scenario | Instance | Boot to healthy | Boot to SSH | "
              "systemd-analyze (and the slowest units) |", "|---|---|---|---|---|"]
    booted = boots(t)
    for scenario, instance, healthy, ssh, analyze in booted:
        lines.append(f"| {scenario} | {instance} | {healthy} s | {fmt(ssh)} | "
                     f"{'<br>'.join(a.strip() for a in analyze[:6]) or 'not measured'} |")
    healthy = [b[2] for b in booted]
    if healthy:
        lines += ["", f"Median boot to healthy in this run: {median(healthy)} s (1 vCPU each, "
                  "in CI other VMs may share the two cores)."]
    if build.get("sbom_sha256"):
        lines += ["", f"Patched at the bake, {build.get('packages', 'n/a')} packages; the SBOM's "
                  f"SHA-256 (the manifest digest `make image` prints): `{build['sbom_sha256']}`."]
    lines += boot_alone_section(load("boot-alone.json"))
    lines += before_boots(baseline)
    lines += scap_section(load("scap.json"))
    lines += cis_forecast_section(os.path.join(ROOT, "docs", "cis-forecast.md"))
    lines += alerts_live_section(load("alerts-live.json"))
    lines += journal_section(load("journal-upload.json"))
    lines += fleet_section(load("fleet.json"), docs_dir or os.path.join(ROOT, "docs"))
    lines += ["", "## Mutation check (`make mutants`, testing/image/test_mutants.py)",
              "", "Each protection removed on a live instance of the image; its guarding test "
              "must fail in its body (a case failed, none errored in a fixture), then pass "
              "again once the protection is back (a case passed, none skipped).", "",
              *mutants_table(mutants), "",
              "A claim held by a test of another form (native, static, the fleet's), with how "
              "it was shown to fail: [testing.md](testing.md#the-mutation-check), the table "
              "after the list of mutations.", "",
              "## Performance, side by side", "",
              "wrk, same routes, interleaved rounds (a, b, c, a, b, c, ...).", "",
              "### Native (`make perf-native`: no VM, the roles' rendered nginx and gunicorn "
              "configuration on loopback)", "",
              *perf_table(native), "",
              "### In the VM (`molecule test -s nfr`, testing/nfr/test_performance.py; TLS "
              "emulated)", "", *perf_table(nfr.get("performance", {})), ""]
    perf = nfr.get("performance", {})
    if perf:
        lines.append(f"RSS of nginx + gunicorn: {perf.get('rss_nginx_gunicorn_at_rest_kib')} KiB "
                     f"at rest, {perf.get('rss_nginx_gunicorn_under_load_kib')} KiB under load.")
    lines += ["", "## Load (testing/nfr/test_load.py)", ""]
    if load_:
        lines.append(f"{load_['connections']} connections for {load_['seconds']} s through nginx "
                     f"(HTTPS, loopback: exempt from the rate limit by design): "
                     f"{load_['requests']} requests, {load_['rps']} req/s, p99 {load_['p99_ms']} "
                     f"ms, socket errors {load_['socket_errors']}, non-2xx/3xx "
                     f"{load_['non_2xx_3xx']}.")
    else:
        lines.append("not measured")
    lines += ["", "## Faults under load (testing/nfr/test_faults.py)", "",
              "| Fault | Healthy after | Requests | Socket errors | non-2xx/3xx |",
              "|---|---|---|---|---|"]
    for key, label in [("kill_9_master", "kill -9 gunicorn master"),
                       ("kill_9_worker", "kill -9 one worker"),
                       ("after_worker_respawn", "(the 10 s after the worker respawned)"),
                       ("hup_reload_twice", "reload (HUP) twice"),
                       ("service_restart", "restart gunicorn (new code)"),
                       ("nginx_restart", "restart nginx"),
                       ("logrotate_under_load", "forced logrotate")]:
        r = faults.get(key)
        if r:
            healed = (f"{r['healthy_after_s']} s" if "healthy_after_s" in r else
                      f"{r['first_probe_after_command_s']} s after the command"
                      if "first_probe_after_command_s" in r else
                      f"{r['serving_after_command_s']} s after the command"
                      if "serving_after_command_s" in r else "n/a")
            lines.append(f"| {label} | {healed} | {r['requests']} | {r['socket_errors']} | "
                         f"{r['non_2xx_3xx']} |")

    def ratio(record, value, reference, of="", note=""):
        """A fault's time over its reference, with the bound its run asserted
        (older results files held an absolute bound: said so)."""
        bound = (f"asserted: at most {record['ratio_bound']}{of}" if "ratio_bound" in record
                 else "this run's bound was not a ratio")
        return f"ratio {round(value / reference, 2) if reference else '?'} ({bound}{note})"

    master = faults.get("kill_9_master", {})
    if master:
        restart = master.get("restart_healthy_after_s")
        lines.append(f"\nkill -9 of the master: healthy after {master['healthy_after_s']} s; a "
                     f"deliberate restart under the same load, right after: {restart} s: "
                     + ratio(master, master["healthy_after_s"], restart,
                             note="; failed requests at most one per connection") + ".")
    worker = faults.get("kill_9_worker", {})
    if worker:
        lines.append(f"kill -9 of a worker: {worker.get('nginx_502', '?')} requests got 502 from "
                     "nginx (asserted 0).")
    nginx = faults.get("nginx_restart", {})
    if nginx and "restart_command_s" in nginx:
        after = nginx.get("after", {})
        if "first_probe_after_command_s" in nginx:
            served = (f"the first connection after it returned was answered in "
                      f"{nginx['first_probe_after_command_s']} s (curl exit "
                      f"{nginx['first_probe_curl_exit']}, HTTP {nginx['first_probe_status']}; "
                      "asserted: answered, 200, within 30 s)")
        else:
            served = (f"nginx served {nginx['serving_after_command_s']} s after it returned: "
                      + ratio(nginx, nginx["serving_after_command_s"],
                              nginx["restart_command_s"], of=" of the command's time"))
        lines.append(f"Restart of nginx: the command took {nginx['restart_command_s']} s, "
                     f"{served}; in the 10 s after: {after.get('requests', '?')} requests, "
                     f"{after.get('socket_errors', '?')} socket errors.")
    rot = faults.get("logrotate_under_load", {})
    if rot:
        lines.append(f"Forced logrotate: wrk counted {rot['wrk_requests']} responses, nginx's "
                     f"access log holds {rot['nginx_log_lines']} lines for them "
                     f"({rot.get('nginx_499', '?')} of them 499: in flight when wrk stopped).")
    if "reboot_to_healthy_s" in faults:
        lines.append(f"Reboot: healthy {faults['reboot_to_healthy_s']} s after "
                     "`systemctl reboot`, with no hand step.")
    bad, tls, net = nfr.get("bad_input", {}), nfr.get("tls", {}), nfr.get("network", {})
    lines += ["", "## Bad input, TLS, network (testing/nfr)", "",
              f"schemathesis against docs/openapi.yaml through nginx: exit code "
              f"{bad.get('schemathesis_exit_code', 'not run')}. Slow headers closed by nginx after "
              f"{fmt(bad.get('slow_headers_closed_after_s'))}.",
              f"sslyze --mozilla_config intermediate: exit code "
              f"{tls.get('sslyze_exit_code', 'not run')}. Accepted: "
              + "; ".join(f"{k}: {', '.join(v) or 'none'}"
                          for k, v in tls.get("accepted_cipher_suites", {}).items()),
              f"nmap from another network namespace: open TCP ports "
              f"{net.get('nmap_open_tcp_ports', 'not run')} (of "
              f"{net.get('nmap_ports_scanned', '?')}, the exporters' included, no monitoring "
              f"source); fail2ban banned the scanner after "
              f"{net.get('fail2ban_banned_after_attempts', '?')} failed logins.",
              f"The exporters' ports {net.get('metrics_ports', '?')} with the scanner's address "
              f"as the one monitoring source (given as at boot): open to it "
              f"{net.get('metrics_open_to_listed_source', 'not run')}, to the scanner's other "
              f"address {net.get('metrics_open_to_other_source', 'not run')}, to the scanner "
              f"after the source was removed {net.get('metrics_open_after_sources_emptied', '?')}.",
              "", f"NFR suite run: {meta.get('date', 'not run')}.", "",
              "## Reproduce", "", "```sh",
              "bash .ci/run                 # everything below, from a clean clone",
              "make lint unit perf-native fleet-lint",
              "make molecule-test           # roles: converge, idempotence, Testinfra",
              "make vagrant-check           # vagrant up, HTTPS from the host, destroy",
              "make image image-verify      # bake; two instances: suite, image checks, mutants",
              "make verify                  # the NFR suite on an instance",
              "make report                  # this file, from build/*.json",
              "```", ""]
    return "\n".join(lines)


def headline(t, build, native, nfr):
    """The figures a reader looks for first (the README links here)."""
    perf_vm = nfr.get("performance", {}).get("ratios", {})
    healthy = [b[2] for b in boots(t)]
    return "\n".join([
        "| Figure (latest CI run, TCG) | Value |",
        "|---|---|",
        f"| whole `bash .ci/run` | {minutes(t.get('ci_total_seconds'))} |",
        f"| converge of `site.yml` from scratch (Molecule) | "
        f"{fmt(t.get('molecule_default_converge_seconds'))} |",
        f"| second converge, 0 changed | {fmt(t.get('molecule_default_idempotence_seconds'))} |",
        f"| `packer build` (qcow2) | {fmt(build.get('bake_seconds'))} |",
        f"| instance of the image: boot to HTTPS `/healthz` | "
        f"{', '.join(f'{h} s' for h in healthy) or 'not measured'}"
        f"{f' (median {median(healthy)} s)' if healthy else ''}, 1 vCPU, beside other VMs |",
        f"| the same, alone (2 vCPUs, `make boot-alone`), against the base image's boot | "
        f"{alone_row(load('boot-alone.json'))} |",
        f"| throughput c/b, c/a natively | {native.get('ratios', {}).get('c_over_b', 'n/a')}, "
        f"{native.get('ratios', {}).get('c_over_a', 'n/a')} |",
        f"| throughput c/b in the VM | {perf_vm.get('c_over_b', 'n/a')} |",
        *fleet_rows(load("fleet.json")),
    ])


def alone_row(alone):
    boots = alone.get("boots", [])
    if not boots:
        return "not measured"
    return (f"{', '.join(str(b['healthy']) + ' s' for b in boots)} (median "
            f"{alone.get('median_healthy', 'n/a')} s; the base image's "
            f"{alone.get('median_reference', 'n/a')} s; ratio {alone.get('ratio', 'n/a')}, "
            f"bound {alone['ratio_bound']})")


def fleet_rows(f):
    roll, kill = f.get("roll"), f.get("kill")
    return [
        "| local fleet (HAProxy): rolling replacement of both instances | "
        + (f"{roll['roll_seconds']} s, {roll['failed']} of {roll['requests']} requests failed |"
           if roll else "not measured |"),
        "| local fleet: instance killed, marked down after | "
        + (f"{kill['detection_seconds']} s (checks every 1 s), {kill['failed']} of "
           f"{kill['requests']} requests failed |" if kill else "not measured |")]


def load_baseline():
    path = os.path.join(ROOT, "docs", "boot-baseline.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", default=os.path.join(ROOT, "docs", "verification.md"))
    args = p.parse_args()
    t, build = load("timings.json"), load("image-build.json")
    nfr, native, mutants = load("nfr-results.json"), load("perf-native.json"), load("mutants.json")
    if mutants:   # each row timed itself (build/mutants.json)
        t["mutants_seconds"] = round(sum(row.get("seconds", 0) for row in mutants), 1)
    with open(args.docs, "w") as f:
        f.write(verification(t, build, nfr, native, mutants, load_baseline(),
                             os.path.dirname(os.path.abspath(args.docs))))
    print(args.docs)


if __name__ == "__main__":
    main()
