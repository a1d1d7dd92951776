"""Load: 60 s at 128 connections through nginx (HTTPS) on valid routes.

From loopback inside the instance, which nginx_rate_limit_exempt leaves
unlimited by design: the test measures the stack, not the rate limiter
(whose 429s are tested in testing/host/test_nginx.py).
"""


def test_sustained_load_without_errors(host, wrk, record):
    result = wrk(host, "https://127.0.0.1", connections=128, seconds=60, threads=2, tag="load")
    record("load", {"connections": 128, "seconds": 60, **result})
    assert result["socket_errors"] == 0, result
    assert result["non_2xx_3xx"] == 0, result  # no 5xx, and no 429 either
    assert result["requests"] > 0
    five = host.run("grep -c '\"status\":5' /var/log/nginx/access.log")
    assert five.stdout.strip() in ("", "0"), "5xx in nginx's access log"
