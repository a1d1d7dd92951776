"""Faults under load: the service heals itself and loses what it must not.

Each test runs wrk in the background inside the instance (HTTPS through
nginx, loopback), injects one fault, and counts every request's outcome
(status, socket error, timeout). Each fault states what a client may see,
and the test holds exactly that (docs/testing.md, "Faults"):

  reload (HUP), twice         nothing fails
  kill -9 of one worker       at most its in-flight requests (its threads)
  kill -9 of the master       at most the requests in flight (one per
                              connection); healthy again within 1.5 times
                              a deliberate restart under the same load, run
                              right after it
  restart of gunicorn         nothing fails (systemd's socket queues them)
  restart of nginx            connections refused or reset while it restarts
                              (socket errors, counted), never an error status;
                              the first connection made after the restart
                              command returns is answered (within 30 s);
                              nothing fails after
  forced logrotate            every answered request logged
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


# The claim: a crashed master heals about as fast as a deliberate restart
# under the same load (systemd restarts it after 200 ms, the socket holds
# the requests), measured side by side in the same run: a ratio to a
# reference, not an absolute time that follows the machine's hour (the old
# 5 s goal held on KVM only; under TCG starting Python alone takes seconds
# and varies with the other lane's load). Both times are recorded. Both
# include gunicorn's start, which under emulation varies by seconds from one
# start to the next, so one sample of each is not "never slower": heal /
# restart measured 6.9/8.7, 6.9/9.8, 7.0/16.0 s in three CI runs (0.79,
# 0.70, 0.44) and 9.8/8.9 s (1.10) alone on CI's image of d8478cd, where a
# bound of 1.0 failed. 1.5 holds and still catches a crash left to a
# restart delay of a restart's length.
HEAL_OVER_RESTART = 1.5


def heal_probe(killed_pid_expr, start):
    """Shell run in the guest: `start`, then probe every 0.1 s until a new
    master answers over HTTPS; prints the milliseconds it took."""
    return (f"t0=$(date +%s%N); old={killed_pid_expr}; {start}; "
            f"while :; do pid=$(systemctl show -p MainPID --value {API}.service); "
            "if [ \"$pid\" != 0 ] && [ \"$pid\" != \"$old\" ] && "
            "curl -fsk -o /dev/null --max-time 2 https://127.0.0.1/healthz; then break; fi; "
            "[ $(( $(date +%s%N) - t0 )) -gt 30000000000 ] && break; sleep 0.1; done; "
            "echo $(( ($(date +%s%N) - t0) / 1000000 ))")


def test_kill_9_master_heals_within_1_5_times_a_restart(host, wrk, record):
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
    ratio = round(healed / restart, 2)
    record("faults", {"kill_9_master": {"healthy_after_s": healed,
                                        "restart_healthy_after_s": restart,
                                        "ratio": ratio, "ratio_bound": HEAL_OVER_RESTART,
                                        **result, "restart_load": restarted}})
    assert healed < 30, "not healthy 30 s after kill -9"
    assert healed <= restart * HEAL_OVER_RESTART, {**timing, "ratio": ratio}
    assert result["requests"] > 0
    # what a client may see: the requests in flight when the master died (at
    # most one per connection) fail; the rest wait on the socket
    assert result["non_2xx_3xx"] + result["socket_errors"] <= CONNECTIONS, result
    assert restarted["non_2xx_3xx"] == 0 and restarted["socket_errors"] == 0, restarted


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
    assert result["non_2xx_3xx"] == 0 and result["socket_errors"] == 0, result


# nginx's unit is Type=forking: `systemctl restart nginx` returns once the
# new master has bound its sockets and exited its parent. So the claim is
# about order, not speed: the first connection made after the command
# returns is answered (200). One probe, made at once, with 30 s to answer:
# exit 7 (refused) or 35/56 (reset) names a unit that says "started" before
# nginx listens; a timeout names one that cannot answer in 30 s. The probe's
# time is recorded, not bounded by a ratio: under load it is the TLS
# handshake queued behind wrk's 16 reconnecting clients, and a ratio to the
# command's time (0.75, with 0.1-s probes of 2 s each) failed CI at 0.88
# (7.08 s after an 8.08-s command: three probes had timed out) although no
# connection was refused. Shell run in the guest; prints the command's and
# the probe's milliseconds, curl's exit status and the HTTP status.
NGINX_RESTART_PROBE = (
    "t0=$(date +%s%N); systemctl restart nginx; t1=$(date +%s%N); "
    "code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 30 "
    "https://127.0.0.1/healthz); rc=$?; "
    "echo $(( (t1 - t0) / 1000000 )) $(( ($(date +%s%N) - t1) / 1000000 )) $rc $code")
CURL_EXIT = {7: "refused", 28: "no answer in 30 s", 35: "reset in the TLS handshake",
             56: "reset"}


def test_restart_nginx_refuses_connections_only_until_its_command_returns(host, wrk, record):
    """A restart (not a reload) closes open client connections and refuses
    new ones until the new master listens: those are counted (socket errors),
    never answered with an error status. The first connection made after the
    restart command returns is answered; a load right after fails nothing."""
    timing = {}

    def restart_nginx():
        command_ms, probe_ms, rc, code = host.check_output(NGINX_RESTART_PROBE).split()
        timing.update(restart_command_s=int(command_ms) / 1000,
                      first_probe_after_command_s=int(probe_ms) / 1000,
                      first_probe_curl_exit=int(rc), first_probe_status=code)

    result = under_load(host, wrk, "nginx-restart", restart_nginx)
    after = wrk(host, "https://127.0.0.1", CONNECTIONS, 10, tag="after-nginx-restart")
    record("faults", {"nginx_restart": {**timing, **result, "after": after}})
    assert result["non_2xx_3xx"] == 0, result
    rc = timing["first_probe_curl_exit"]
    assert rc == 0 and timing["first_probe_status"] == "200", (
        f"the first connection after `systemctl restart nginx` returned was not answered: "
        f"curl exit {rc} ({CURL_EXIT.get(rc, 'see curl(1)')}), {timing}")
    assert after["non_2xx_3xx"] == 0 and after["socket_errors"] == 0, after


def test_forced_logrotate_under_load_loses_no_log_line(host, wrk, record):
    tag = f"rotate{int(time.time())}"
    # (routes nginx logs only: /healthz is left out of its access log by design)
    pid = wrk(host, "https://127.0.0.1", CONNECTIONS, SECONDS, tag=tag, background=True,
              logged_only=True)
    time.sleep(10)
    host.run_expect([0], "logrotate -f /etc/logrotate.conf")
    result = wait_background_wrk(host, pid, tag)
    # Every request nginx received, whatever its status (499: wrk hung up on
    # it when its time ran out), before and after the rotation; nginx flushes
    # its buffer every second: counted until two readings a second apart agree
    # (bounded)
    count = ("cat /var/log/nginx/access.log /var/log/nginx/access.log.1 2>/dev/null "
             f"| grep -c '\"request_id\":\"{tag}-' || true")
    hung_up = ("cat /var/log/nginx/access.log /var/log/nginx/access.log.1 2>/dev/null "
               f"| grep '\"request_id\":\"{tag}-' | grep -c '\"status\":499' || true")
    nginx_lines, deadline = -1, time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = int(host.check_output(count) or 0)
        if lines == nginx_lines and lines >= result["requests"]:
            break
        nginx_lines = lines
        time.sleep(1)
    abandoned = int(host.check_output(hung_up) or 0)
    record("faults", {"logrotate_under_load": {"wrk_requests": result["requests"],
                                               "nginx_log_lines": nginx_lines,
                                               "nginx_499": abandoned, **result}})
    # every request wrk saw answered is logged; beyond those only the requests
    # still in flight when wrk stopped (at most one per connection: logged 499,
    # or answered after wrk stopped reading)
    assert result["requests"] <= nginx_lines, (nginx_lines, result)
    assert nginx_lines - result["requests"] <= CONNECTIONS, (nginx_lines, result)


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
