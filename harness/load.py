"""Side-by-side throughput rounds, shared by the native run (testing/perf)
and the in-VM run (testing/nfr/test_performance.py).

The three targets, measured the same way with wrk and the same routes:
  a  `python app/app.py`, the app as supplied (Flask's own server, :5000)
  b  gunicorn as deployed (the roles' rendered gunicorn.conf.py), direct
  c  the whole edge: nginx (the roles' rendered config, TLS) -> unix socket -> gunicorn
Rounds are interleaved (a, b, c, a, b, c, ...) so a change in the machine's
load during the run falls on all three alike; the report gives medians and
the spread. c/a says what the deployment gains over the supplied server; c/b
is reported but is not the edge's cost: b, gunicorn straight from wrk's
kept-alive connections, is not a ceiling for c (testing/perf/test_native.py
says why).
"""

import json
import os
import re
import statistics

TARGETS = ("a", "b", "c")
ROUTES_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "routes.lua")


def wrk_command(url, connections, seconds, threads=2, tag="perf", logged_only=False,
                script=ROUTES_LUA):
    return (f"NFR_TAG={tag} NFR_LOGGED_ONLY={int(logged_only)} "
            f"wrk --latency --timeout 10s -t{threads} -c{connections} -d{seconds}s "
            f"-s {script} {url}")


def parse_wrk(text):
    match = re.search(r"NFRJSON (\{.*\})", text)
    assert match, text
    result = json.loads(match.group(1))
    result["socket_errors"] = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    result["non_2xx_3xx"] = int(non2xx.group(1)) if non2xx else 0
    return result


def interleaved(measure, rounds, warm_up=None):
    """measure(target, round) -> wrk result; returns {target: [result per round]}.
    warm_up(target), if given, runs once per target first and is not counted
    (first requests pay for cold caches, TLS handshakes and lazy imports)."""
    if warm_up:
        for target in TARGETS:
            warm_up(target)
    runs = {t: [] for t in TARGETS}
    for n in range(rounds):
        for target in TARGETS:
            runs[target].append(measure(target, n))
    return runs


def summarise(runs):
    """Medians and spread of req/s, and the ratios, from interleaved runs."""
    out = {}
    for target, results in runs.items():
        rps = [r["rps"] for r in results]
        out[target] = {"rps": rps, "median_rps": round(statistics.median(rps), 1),
                       "min_rps": min(rps), "max_rps": max(rps),
                       "median_p99_ms": round(statistics.median(r["p99_ms"] for r in results), 1),
                       "socket_errors": sum(r["socket_errors"] for r in results),
                       "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in results)}
    def per_round(top, bottom):
        return [round(t["rps"] / b["rps"], 2) for t, b in zip(runs[top], runs[bottom], strict=True)]

    out["ratios"] = {
        "c_over_b": round(out["c"]["median_rps"] / out["b"]["median_rps"], 2),
        "c_over_a": round(out["c"]["median_rps"] / out["a"]["median_rps"], 2),
        "per_round": {"c_over_b": per_round("c", "b"), "c_over_a": per_round("c", "a")},
    }
    return out
