"""Faults under load: the service heals itself and loses what it must not.

Each test runs wrk in the background inside the instance (HTTPS through
nginx, loopback), injects one fault, and counts what the clients saw.
"""

import time

from harness.nfr import API, healthy, wait_background_wrk, wait_for_ssh_after_reboot

CONNECTIONS = 16
SECONDS = 30


def main_pid(host):
    return int(host.check_output(f"systemctl show -p MainPID --value {API}.service"))


def under_load(host, wrk, tag, inject, settle=8):
    """wrk through nginx in the background; inject the fault; return what clients saw."""
    pid = wrk(host, "https://127.0.0.1", CONNECTIONS, SECONDS, tag=tag, background=True)
    time.sleep(settle)
    inject()
    return wait_background_wrk(host, pid, tag)


def https_ok_inside(host):
    return host.run("curl -fsk -o /dev/null --max-time 2 https://127.0.0.1/healthz").rc == 0


# The goal: healthy again within 5 s of kill -9 of the master, which holds on
# KVM and is asserted there. Under TCG (software emulation, another VM on the
# two cores) starting Python alone takes seconds and varies with the other
# lane's load, so there the test asserts what starvation cannot decide: a
# crash heals as fast as a deliberate restart under the same load
# (systemd restarts the master at once, the socket holds the requests), and
# the report sets the measured time against the 5 s goal.
HEAL_GOAL_S = 5
HEAL_OVER_RESTART_S = 1.0


def heal_probe(killed_pid_expr, start):
    """Shell run in the guest: `start`, then probe every 0.1 s until a new
    master answers over HTTPS; prints the milliseconds it took."""
    return (f"t0=$(date +%s%N); old={killed_pid_expr}; {start}; "
            f"while :; do pid=$(systemctl show -p MainPID --value {API}.service); "
            "if [ \"$pid\" != 0 ] && [ \"$pid\" != \"$old\" ] && "
            "curl -fsk -o /dev/null --max-time 2 https://127.0.0.1/healthz; then break; fi; "
            "[ $(( $(date +%s%N) - t0 )) -gt 30000000000 ] && break; sleep 0.1; done; "
            "echo $(( ($(date +%s%N) - t0) / 1000000 ))")


def test_kill_9_master_heals_as_fast_as_a_restart(host, vm, wrk, record):
    timing = {}
    main = f"$(systemctl show -p MainPID --value {API}.service)"

    # timed inside the instance (an SSH round trip per probe would blur it),
    # each under the same load, injected at the same moment of its own wrk run
    # (side by side: a restart timed after the crash's load had ended measured
    # 8.9 s against the crash's 18.9 s under load)
    def kill():
        timing["healed"] = int(host.check_output(heal_probe(main, "kill -9 $old"))) / 1000

    def restart():
        timing["restart"] = int(host.check_output(
            heal_probe(main, f"systemctl restart {API}.service"))) / 1000

    result = under_load(host, wrk, "kill-master", kill)
    restarted = under_load(host, wrk, "restart-master", restart)
    healed, restart = timing["healed"], timing["restart"]
    record("faults", {"kill_9_master": {"healthy_after_s": healed, "goal_s": HEAL_GOAL_S,
                                        "restart_healthy_after_s": restart, **result,
                                        "restart_load": restarted}})
    assert healed < 30, "not healthy 30 s after kill -9"
    assert healed <= restart + HEAL_OVER_RESTART_S, timing
    if vm.get("accel") == "kvm":
        assert healed <= HEAL_GOAL_S, healed
    assert result["requests"] > 0


# A worker's threads (api_gunicorn_threads) bound what one kill can cut: the
# requests it was answering when it died, whose response had begun. A request
# not yet answered is retried by nginx on another connection (the socket is
# listed nginx_upstream_attempts times), however many kept-alive connections
# to the dead worker nginx still held. After the respawn nothing fails.
THREADS_PER_WORKER = 4


def test_kill_a_worker_cuts_at_most_its_in_flight_requests(host, wrk, record):
    def kill_worker():
        worker = host.check_output(f"pgrep -P {main_pid(host)} | head -1")
        host.run_expect([0], f"kill -9 {worker}")

    result = under_load(host, wrk, "kill-worker", kill_worker)
    after = wrk(host, "https://127.0.0.1", CONNECTIONS, 10, tag="after-kill-worker")
    five = int(host.run("grep -c '\"request_id\":\"kill-worker-.*\"status\":502' "
                        "/var/log/nginx/access.log").stdout.strip() or 0)
    record("faults", {"kill_9_worker": {**result, "nginx_502": five},
                      "after_worker_respawn": after})
    assert five == 0, f"{five} requests got 502: nginx's retry did not reach a live worker"
    assert result["non_2xx_3xx"] + result["socket_errors"] <= THREADS_PER_WORKER, result
    assert after["non_2xx_3xx"] == 0 and after["socket_errors"] == 0, after


def test_reload_under_load_loses_no_request(host, wrk, record):
    """A deploy's reload (HUP: new config, new workers, old ones drain)."""
    def reload_twice():
        host.run_expect([0], f"systemctl reload {API}.service")
        time.sleep(6)
        host.run_expect([0], f"systemctl reload {API}.service")

    result = under_load(host, wrk, "reload", reload_twice)
    record("faults", {"hup_reload_twice": result})
    assert result["non_2xx_3xx"] == 0 and result["socket_errors"] == 0, result


def test_restart_under_load_queues_on_the_socket(host, wrk, record):
    """A deploy of new code restarts gunicorn; systemd holds the socket meanwhile."""
    result = under_load(host, wrk, "restart",
                        lambda: host.run_expect([0], f"systemctl restart {API}.service"))
    record("faults", {"service_restart": result})
    assert result["non_2xx_3xx"] == 0, result


def test_restart_nginx_under_load(host, wrk, record):
    timing = {}

    def restart_nginx():
        t0 = time.monotonic()
        host.run_expect([0], "systemctl restart nginx")
        timing["restart_took"] = round(time.monotonic() - t0, 2)
        while not https_ok_inside(host):
            assert time.monotonic() - t0 < 30, "nginx not serving 30 s after its restart"
            time.sleep(0.2)
        timing["healed"] = round(time.monotonic() - t0, 2)

    result = under_load(host, wrk, "nginx-restart", restart_nginx)
    restart_took, healed = timing["restart_took"], timing["healed"]
    # A restart (not a reload) closes open client connections: those are
    # counted, not hidden; clients reconnect and carry on.
    # (Under TCG `systemctl restart nginx` itself takes seconds: the old
    # master drains, `nginx -t` runs, the new one starts; both are recorded.)
    record("faults", {"nginx_restart": {"restart_command_s": restart_took,
                                        "healthy_after_s": healed, **result}})
    assert result["non_2xx_3xx"] == 0, result


def test_forced_logrotate_under_load_loses_no_log_line(host, wrk, record):
    tag = f"rotate{int(time.time())}"
    # (routes nginx logs only: /healthz is left out of its access log by design)
    pid = wrk(host, "https://127.0.0.1", CONNECTIONS, SECONDS, tag=tag, background=True,
              logged_only=True)
    time.sleep(10)
    host.run_expect([0], "logrotate -f /etc/logrotate.conf")
    result = wait_background_wrk(host, pid, tag)
    time.sleep(3)    # nginx flushes its access log buffer every second
    # Every request nginx received, whatever its status (499: wrk hung up on it
    # when its time ran out), before and after the rotation.
    count = ("cat /var/log/nginx/access.log /var/log/nginx/access.log.1 2>/dev/null "
             f"| grep -c '\"request_id\":\"{tag}-' || true")
    nginx_lines = int(host.check_output(count) or 0)
    record("faults", {"logrotate_under_load": {"wrk_requests": result["requests"],
                                               "nginx_log_lines": nginx_lines, **result}})
    # One line per request: every answered one is logged, and beyond those only
    # the requests still in flight when wrk stopped (at most one per connection).
    assert result["requests"] <= nginx_lines <= result["requests"] + CONNECTIONS, (
        nginx_lines, result)


def test_reboot_comes_back_healthy_with_no_hand_step(host, vm, https_port, record):
    boot_id = host.file("/proc/sys/kernel/random/boot_id").content_string.strip()
    host.run("systemd-run --on-active=2 systemctl reboot")
    t0 = time.monotonic()
    # first down (the old boot stops its services, which takes a while under
    # emulation), then up again: healthy from the old boot does not count
    while healthy(https_port):
        assert time.monotonic() - t0 < 300, "still serving 5 min after `systemctl reboot`"
        time.sleep(1)
    down = round(time.monotonic() - t0, 1)
    while not healthy(https_port):
        assert time.monotonic() - t0 < 600, "not healthy 10 min after reboot"
        time.sleep(2)
    healed = round(time.monotonic() - t0, 1)
    record("faults", {"reboot_to_healthy_s": healed, "reboot_stopped_serving_after_s": down})
    wait_for_ssh_after_reboot(vm)
    assert host.file("/proc/sys/kernel/random/boot_id").content_string.strip() != boot_id
    assert host.service(f"{API}.service").is_running or host.service(f"{API}.socket").is_running
    assert host.service("nginx").is_running
