"""The local fleet: instances of the baked image behind HAProxy on loopback,
and a bounded load that records every request.

HAProxy stands in for the ALB of aws/fleet.yml and is set up the way the
ALB works there: it terminates TLS for the clients and verifies their
client certificates against this run's test CA (the trust store; verify
mode: no certificate, or one of another CA, and the handshake fails), passes
the verified certificate's subject, issuer and serial in the ALB's header
names (X-Amzn-Mtls-Clientcert-*, after removing any the client sent),
re-encrypts to each instance's 443 (the instance's own self-signed
certificate, not verified, as an ALB does not verify its targets),
health-checks `/healthz` over HTTPS with the target's address as Host,
balances round robin, and appends the client address to X-Forwarded-For.
The instances boot with the template's own user-data: qemu's gateway
(10.0.2.2, where every forwarded connection comes from) as the load
balancer's subnet, the client certificate checked by the load balancer.

Clients are told apart by their source address: loopback is all of
127.0.0.0/8, so each client binds its own (127.0.0.2, 127.0.0.3, ...), and
HAProxy passes that address on as the client's.
"""

import csv
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from harness.fleet_template import load, user_data
from harness.processes import terminate
from harness.vm import free_port, unverified_context  # noqa: F401 (free_port: also the tests')

# The address the instances see every forwarded connection come from
# (qemu's user network), given to them as the load balancer's subnet range
# (a /32: the template's pattern asks an operator for real subnets, /16-/28).
LB_PEER = "10.0.2.2/32"
# The instance's own address on qemu's user network: a request from it (sent
# inside the instance) comes from a host that is not the load balancer.
INSTANCE_ADDRESS = "10.0.2.15"
# The callers' certificate subject the fleet allows (the template's
# ClientSubjects), as harness.pki's web-tier certificate carries it.
ALLOWED_SUBJECT = "CN=web-tier,O=SuperMega Bank"
# The Host the ALB's health checks carry: the target's own address (the
# guest's address on qemu's user network).
HEALTH_CHECK_HOST = "10.0.2.15"
SERVER_NAME = "fleet.bank.test"
# Health checks: every second, 2 to fail, 2 to pass. The ALB checks every
# 10 s (aws/fleet.yml); the same counts at a tenth of the interval keep the
# run short, and the detection time scales with the interval.
CHECK_INTER_MS = 1000
CHECK_FALL = 2
CHECK_RISE = 2


def fleet_user_data():
    """The cloud-config the fleet's launch template gives an instance, with
    this run's values for its parameters."""
    return user_data(load(), {"ServerName": SERVER_NAME, "LoadBalancerSubnetCidrs": LB_PEER,
                              "MonitoringCidr": "", "AllowUnauthenticatedCallers": "false",
                              "ClientSubjects": ALLOWED_SUBJECT})


def make_ssh_key(work, comment):
    """A throwaway ed25519 key pair for this run's instances; returns its path."""
    key = os.path.join(work, "ssh_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key],
                   check=True)
    return key


class Instance:
    """One instance of the baked image, booted by harness/vm.py with the
    fleet's user-data, its 443 forwarded to a port picked up front (HAProxy's
    configuration names it before the instance exists)."""

    def __init__(self, name, workdir, image, ssh_key, port, cpus=1, memory=1024, fleet=True):
        """fleet: boot with the fleet's user-data and time it to its first
        HTTPS /healthz 200; False, a plain boot (the seed's user only), timed
        to its SSH banner (the base image, as a reference)."""
        self.name, self.image, self.ssh_key, self.port = name, image, ssh_key, port
        self.cpus, self.memory, self.fleet = cpus, memory, fleet
        self.dir = os.path.join(workdir, name)
        self.state = None
        self.proc = None

    def boot(self):
        """Start booting; wait() returns the VM's facts once /healthz answers."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.vm", "start", "--name", self.name, "--dir", self.dir,
             "--base", self.image, "--ssh-pubkey", self.ssh_key + ".pub",
             "--memory", str(self.memory), "--cpus", str(self.cpus), "--timeout", "600",
             "--forward", f"https={self.port}:443",
             *(["--healthz", "https", "--user-data-json", json.dumps(fleet_user_data())]
               if self.fleet else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self

    def wait(self):
        out, err = self.proc.communicate(timeout=700)
        assert self.proc.returncode == 0, f"{self.name} did not boot: {err[-3000:]}"
        self.state = json.loads(out)
        return self.state

    def ssh(self, command):
        s = self.state
        return subprocess.run(
            ["ssh", "-i", self.ssh_key, "-p", str(s["port"]), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
             f"{s['user']}@127.0.0.1", command],
            capture_output=True, text=True, timeout=120)

    def settle(self, seconds=100):
        """Wait (bounded, on the instance) until its boot is done; systemd's
        state then ("running", "degraded", ...), or what ssh said."""
        out = self.ssh(f"timeout {seconds} systemctl is-system-running --wait")
        return out.stdout.strip() or out.stderr.strip()

    def kill(self):
        """SIGKILL qemu: the instance is gone at once, as a lost host is."""
        os.kill(self.state["pid"], signal.SIGKILL)

    def stop(self):
        subprocess.run([sys.executable, "-m", "harness.vm", "stop", "--dir", self.dir],
                       capture_output=True, check=False, timeout=60)


HAPROXY_CFG = """\
global
    maxconn 4096
    log stderr format raw local0 info
    stats socket {sock} mode 600 level admin
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-server-options ssl-min-ver TLSv1.2

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 60s
    # A connection an instance refuses (it is gone, and not yet marked down)
    # is tried again on another instance; a request already sent is never
    # sent twice.
    retries 2
    option redispatch 1

frontend fleet
    # mutual TLS in verify mode, as the ALB's trust store: no certificate of
    # the callers' CA, no connection
    bind 127.0.0.1:{port} ssl crt {pem} ca-file {ca} verify required alpn http/1.1
    # the verified certificate, in the ALB's header names; a client's own
    # headers of those names never pass
    http-request del-header X-Amzn-Mtls- -m beg
    http-request set-header X-Amzn-Mtls-Clientcert-Subject %[ssl_c_s_dn(,0,rfc2253)]
    http-request set-header X-Amzn-Mtls-Clientcert-Issuer %[ssl_c_i_dn(,0,rfc2253)]
    http-request set-header X-Amzn-Mtls-Clientcert-Serial-Number %[ssl_c_serial,hex]
    option forwardfor
    default_backend instances

backend instances
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host {check_host}
    http-check expect status 200
    # the template's health check timeout (aws/fleet.yml), and every check
    # that fails logged with its reason
    timeout check 5s
    option log-health-checks
    default-server ssl verify none check inter {inter}ms fall {fall} rise {rise}
{servers}
"""


class Haproxy:
    """HAProxy in the foreground on 127.0.0.1, driven by its runtime API."""

    def __init__(self, workdir, slots, ca_file, check_host=HEALTH_CHECK_HOST):
        """slots: {server name: instance port}, in order; all but the first
        two start in maintenance (add them with ready()). ca_file: the
        callers' CA (the trust store). check_host: the Host of the health
        checks (the target's address, as the ALB sends it)."""
        self.ca_file, self.check_host = ca_file, check_host
        self.dir = os.path.join(workdir, "haproxy")
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "admin.sock")
        self.port = free_port()
        self.slots = slots
        self.proc = None

    def start(self):
        key, crt, pem = (os.path.join(self.dir, n) for n in ("lb.key", "lb.crt", "lb.pem"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-keyout", key, "-out", crt, "-subj", f"/CN={SERVER_NAME}",
                        "-addext", f"subjectAltName=DNS:{SERVER_NAME}"],
                       check=True, capture_output=True)
        with open(pem, "w") as out:
            for part in (crt, key):
                with open(part) as f:
                    out.write(f.read())
        os.chmod(pem, 0o600)
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port}" + ("" if i < 2 else " disabled")
            for i, (name, port) in enumerate(self.slots.items()))
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(sock=self.sock, port=self.port, pem=pem, ca=self.ca_file,
                                       check_host=self.check_host, inter=CHECK_INTER_MS,
                                       fall=CHECK_FALL, rise=CHECK_RISE, servers=servers))
        check = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(os.path.join(self.dir, "haproxy.log"), "w")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None and time.monotonic() < deadline, "haproxy did not start"
            time.sleep(0.1)
        return self

    def stop(self):
        if self.proc:
            terminate(self.proc, timeout=10)
            self.log.close()

    def command(self, text):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.sock)
            s.sendall(text.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def servers(self):
        """server name -> its row of `show stat` (status, scur, chkdown, ...)."""
        text = self.command("show stat").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "instances" and row["svname"] in self.slots}

    def wait_for(self, server, status, timeout, poll=0.05):
        """Seconds until `server` reports `status` (UP, DOWN, ...)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.servers()[server]["status"].startswith(status):
                return time.monotonic() - start
            time.sleep(poll)
        raise AssertionError(f"{server} not {status} after {timeout} s: {self.servers()[server]}")

    def ready(self, server):
        """Take a server out of maintenance; as a new ALB target, it gets
        traffic only once its health checks have passed (rise). (Out of
        maintenance a server is UP at once; forced down in the same command
        line, it must pass its checks first. Forced down while still in
        maintenance, HAProxy ignores it.)"""
        out = self.command(f"set server instances/{server} state ready; "
                           f"set server instances/{server} health down")
        assert out.strip() == "", out
        assert self.servers()[server]["status"].startswith("DOWN"), self.servers()[server]

    def failed_checks(self):
        """Every failed health check HAProxy logged so far: (server, reason)."""
        self.log.flush()
        with open(self.log.name) as f:
            return re.findall(r"^Health check for server instances/(\w+) failed, "
                              r"reason: ([^,]+(?:, code: \d+)?)", f.read(), re.M)

    def drain(self, server, timeout=60):
        """No new requests to `server`; returns once none is in progress on it."""
        assert self.command(f"set server instances/{server} state drain").strip() == ""
        deadline = time.monotonic() + timeout
        while int(self.servers()[server]["scur"] or 0) > 0:
            assert time.monotonic() < deadline, f"{server} still busy after {timeout} s"
            time.sleep(0.1)
        assert self.command(f"set server instances/{server} state maint").strip() == ""


def client_context(cert=None):
    """A TLS client context that presents `cert` ((certificate, key) paths,
    or None: no certificate) and, as the ALB's clients do, does not check
    the load balancer's test certificate (made per run, for loopback)."""
    ctx = unverified_context()
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def request(port, cert, path="/customers/111", headers=None, source="127.0.0.1", timeout=10):
    """One GET through the load balancer: (status, body), or (the error's
    name, "") when the connection or the TLS handshake is refused."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(cert),
                                       timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Host": SERVER_NAME, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read().decode()
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__, ""
    finally:
        conn.close()


class Load:
    """Clients sending GETs through the load balancer at a fixed pace, each
    from its own loopback address over a kept-alive connection, until
    stop() or their time or count runs out (every loop is bounded in both).
    Every request is recorded: (sent, done, client, outcome), times in
    seconds from `origin`, outcome the HTTP status or the error's name."""

    PATHS = ("/customers", "/customers/111", "/customers/111/accounts",
             "/customers/222/accounts/4")

    def __init__(self, port, origin, max_seconds, cert, timeout=10):
        """cert: (certificate, key) the clients present to the load balancer."""
        self.port, self.origin, self.max_seconds, self.timeout = port, origin, max_seconds, timeout
        self.context = client_context(cert)
        self.records = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.in_flight = 0

    def client(self, address, rate, max_requests, connections=1, forge=False):
        """`connections` kept-alive connections from `address`, together
        `rate` requests per second (0: each as fast as it is answered).
        forge: True, each request carries an X-Forwarded-For of its own,
        naming a new address every time (a client trying to dodge a
        per-client limit); an address, every request names that one (a
        client trying to spend another's limit)."""
        for n in range(connections):
            interval = connections / rate if rate else 0
            t = threading.Thread(target=self._run, args=(address, interval,
                                                         max_requests // connections, n, forge),
                                 daemon=True)
            self.threads.append(t)
            t.start()
        return self

    def _connect(self, address):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context,
                                           timeout=self.timeout, source_address=(address, 0))

    def _run(self, address, interval, max_requests, n, forge):
        conn = self._connect(address)
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic() + (interval * n / 2 if interval else 0)
        for i in range(max_requests):
            if self.stopping.is_set() or time.monotonic() >= deadline:
                break
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0 and self.stopping.wait(delay):
                    break
                next_at = max(next_at + interval, time.monotonic())
            path = self.PATHS[i % len(self.PATHS)]
            with self.lock:
                self.in_flight += 1
            sent = time.monotonic()
            try:
                headers = {"Host": SERVER_NAME}
                if forge is True:
                    headers["X-Forwarded-For"] = f"198.51.100.{i % 250 + 1}, 203.0.113.{n + 1}"
                elif forge:
                    headers["X-Forwarded-For"] = forge
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                outcome = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = self._connect(address)
            except (OSError, http.client.HTTPException) as e:
                outcome = type(e).__name__
                conn.close()
                conn = self._connect(address)
            done = time.monotonic()
            with self.lock:
                self.in_flight -= 1
                self.records.append((round(sent - self.origin, 3), round(done - self.origin, 3),
                                     address, outcome))
        conn.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=self.timeout + 5)
        assert not any(t.is_alive() for t in self.threads), "a client thread did not stop"
        return sorted(self.records)


def failures(records):
    return [r for r in records if r[3] != 200]


def per_second(records, label_of=None):
    """{label: [requests answered in each second]}, for the report's picture;
    label_of(record) names a record's series (default: "200" or "failed")."""
    label_of = label_of or (lambda r: "200" if r[3] == 200 else "failed")
    end = int(max((r[1] for r in records), default=0)) + 1
    series = {}
    for record in records:
        series.setdefault(label_of(record), [0] * end)[int(record[1])] += 1
    return dict(sorted(series.items()))
