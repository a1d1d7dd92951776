"""harness/load.py: wrk's summary is read whole, and the a/b/c rounds are
interleaved and summarised per round."""

from harness import load

WRK_OUT = """Running 10s test @ https://127.0.0.1/customers
  Non-2xx or 3xx responses: 7
NFRJSON {"requests": 100, "connect": 1, "read": 2, "write": 0, "status": 7, "timeout": 3,
 "p50_ms": 1.0, "p99_ms": 9.5, "rps": 10.0, "duration_s": 10.0}
""".replace("\n ", " ")


def test_every_socket_error_kind_is_counted():
    result = load.parse_wrk(WRK_OUT)
    assert result["socket_errors"] == 6 and result["non_2xx_3xx"] == 7
    assert result["rps"] == 10.0


def test_rounds_are_interleaved():
    calls = []
    load.interleaved(lambda target, n: calls.append((target, n)) or {}, 2)
    assert calls == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1)]


def test_the_summary_gives_medians_and_per_round_ratios():
    def run(rps):
        return {"rps": rps, "p99_ms": 1.0, "socket_errors": 0, "non_2xx_3xx": 0}
    runs = {"a": [run(100), run(110)], "b": [run(200), run(400)], "c": [run(300), run(300)]}
    out = load.summarise(runs)
    assert out["b"]["median_rps"] == 300.0
    assert out["ratios"]["c_over_b"] == 1.0
    assert out["ratios"]["per_round"]["c_over_b"] == [1.5, 0.75]
