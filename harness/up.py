"""`make up`: the whole stack in a local VM, and "up" said only when it is.

    python -m harness.up [--deps-seconds N] [--venv-seconds N]

1. the base image, then the local box (tools/vagrant-local.sh: each built or
   reused, each timed);
2. `vagrant up --no-provision`: the VM boots (or is already running);
3. `vagrant provision` whenever this VM's last converge did not complete:
   a stamp (build/vagrant/converged) holds the VM's id, written only after a
   whole converge that failed nothing, so a VM whose converge failed or was
   interrupted is converged again by the next `make up`, never reported up
   (a partial one, --tags and the like, is refused before it runs);
4. HTTPS /healthz 200 from this machine through the forwarded port (polled,
   bounded): only then "is up";
5. the time of each stage (host packages and venv come from the Makefile),
   printed and recorded in build/timings.json (<stage>_*_seconds, stage
   $TIMING_STAGE or "up") as CI's are.

A failed stage ends with a non-zero exit and one line saying what to run next.
"""

import argparse
import os
import subprocess
import sys
import time

from harness import ROOT, timings
from harness.timings import load, record
from harness.vm import https_healthy

LOCAL = ["bash", os.path.join(ROOT, "tools", "vagrant-local.sh")]
STAMP = os.path.join(ROOT, "build", "vagrant", "converged")
MACHINE_ID = os.path.join(ROOT, ".vagrant", "machines", "default", "libvirt", "id")
HEALTHY_WITHIN = 120        # seconds after the converge, polled
PREFIX = os.environ.get("TIMING_STAGE") or "up"


def log(message):
    print(f"make up: {message}", file=sys.stderr, flush=True)


def vagrant_env():
    env = dict(os.environ)
    out = subprocess.run([*LOCAL, "env"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def https_port(env):
    return int(env.get("VAGRANT_HTTPS_PORT", "8443"))


def machine_id():
    try:
        with open(MACHINE_ID) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


# ansible-playbook arguments that converge only part of the playbook (or
# nothing, --check): such a run, even a clean one, is not this VM's converge.
# Long options may be abbreviated (argparse); short ones combined (-vC, -tssh).
PARTIAL_LONG = ("--tags", "--skip-tags", "--start-at-task", "--step", "--check", "--list-tasks",
                "--list-hosts", "--list-tags", "--syntax-check")
PARTIAL_SHORT = "tC"
SHORT_WITH_VALUE = "eilufMTcb"       # (the rest of such a word is the option's value)
PARTIAL_ENV = ("ANSIBLE_RUN_TAGS", "ANSIBLE_SKIP_TAGS")


def partial_converge(args, environ=None):
    """What makes the converge partial: an argument among VAGRANT_ANSIBLE_ARGS,
    or a variable of the environment; "" when nothing does."""
    environ = os.environ if environ is None else environ
    for arg in args.split():
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            if len(name) > 3 and any(option.startswith(name) for option in PARTIAL_LONG):
                return arg
        elif arg.startswith("-"):
            for letter in arg[1:]:
                if letter in PARTIAL_SHORT:
                    return arg
                if letter in SHORT_WITH_VALUE:
                    break
    return next((f"{name}={environ[name]}" for name in PARTIAL_ENV if environ.get(name)), "")


def converged():
    """This VM's last converge completed (the stamp names this very VM)."""
    try:
        with open(STAMP) as f:
            return f.read().strip() == machine_id() != ""
    except FileNotFoundError:
        return False


class Stages:
    def __init__(self, given):
        self.seconds = dict(given)

    def run(self, name, argv, env=None):
        started = time.monotonic()
        code = subprocess.run(argv, env=env, cwd=ROOT, check=False).returncode
        self.seconds[name] = round(time.monotonic() - started, 1)
        return code

    def report(self):
        record({f"{PREFIX}_{name.replace(' ', '_')}_seconds": s
                for name, s in self.seconds.items()})
        width = max(len(n) for n in self.seconds)
        lines = [f"  {name:<{width}}  {s:>7.1f} s" for name, s in self.seconds.items()]
        lines.append(f"  {'total':<{width}}  {sum(self.seconds.values()):>7.1f} s")
        print("make up: where the time went\n" + "\n".join(lines), file=sys.stderr, flush=True)


def fail(stages, message, next_step):
    stages.report()
    log(f"FAILED: {message}")
    log(f"next: {next_step}")
    return 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deps-seconds", type=float)
    p.add_argument("--venv-seconds", type=float)
    args = p.parse_args(argv)
    # the converge's callback records its outcome only where STAGE_TIMINGS
    # points (the Makefile sets it; `python -m harness.up` alone must too, or
    # every converge would read as unfinished)
    if not os.environ.get("STAGE_TIMINGS"):     # (unset or empty alike)
        os.environ["STAGE_TIMINGS"] = timings.DEFAULT
    stages = Stages({name: s for name, s in (("host packages", args.deps_seconds),
                                              ("venv", args.venv_seconds)) if s is not None})
    if stages.run("base image", [*LOCAL, "base"]) != 0:
        return fail(stages, "the base image could not be made",
                    "read the messages above (make base-image), then make up")
    if stages.run("box", [*LOCAL, "box"]) != 0:        # (the base image now reused)
        return fail(stages, "the box could not be made",
                    "read the messages above (make vagrant-box), then make up")
    subprocess.run([*LOCAL, "daemons"], check=True, cwd=ROOT)
    env = dict(vagrant_env(), TIMING_STAGE=PREFIX)
    if stages.run("boot", ["vagrant", "up", "--no-provision", "--provider=libvirt"], env) != 0:
        return fail(stages, "the VM did not boot", "make vagrant-destroy && make up")
    if converged():
        log("this VM's last converge completed: not converging again (vagrant provision does)")
    else:
        partial = partial_converge(env.get("VAGRANT_ANSIBLE_ARGS", ""), env)
        if partial:     # refused before it runs: it could not converge this VM
            return fail(stages, f"a partial converge ({partial}) cannot converge this VM, whose "
                        "last converge did not complete", "make up without it")
        if os.path.exists(STAMP):
            os.remove(STAMP)
        record({f"{PREFIX}_converge_failed": None})      # the converge must write it anew
        code = stages.run("converge", ["vagrant", "provision"], env)
        failed = load().get(f"{PREFIX}_converge_failed")
        if code != 0 or failed != 0:
            return fail(stages, f"the converge did not complete (exit {code}, failed={failed})",
                        "make up (it converges this VM again), or make vagrant-destroy && make up")
        os.makedirs(os.path.dirname(STAMP), exist_ok=True)
        with open(STAMP, "w") as f:
            f.write(machine_id() + "\n")
    port, started = https_port(env), time.monotonic()
    while not https_healthy(port):
        if time.monotonic() - started > HEALTHY_WITHIN:
            return fail(stages, f"https://127.0.0.1:{port}/healthz did not answer 200 within "
                        f"{HEALTHY_WITHIN} s", "vagrant ssh, then the runbook's '/healthz fails'")
        time.sleep(1)
    stages.seconds["healthy over HTTPS"] = round(time.monotonic() - started, 1)
    stages.report()
    log(f"SuperMega Bank Customer Account API is up: https://127.0.0.1:{port}/customers "
        "(self-signed certificate: curl -k); make vagrant-destroy removes it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
