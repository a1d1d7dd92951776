"""The project's test harness: everything the suites share, imported by name.

Installed into the project venv by `make venv` (`pip install --editable .`),
so no suite edits sys.path. Its modules:

  vm              throwaway qemu VMs: overlays, NoCloud seeds, loopback-only
                  ports, boot-to-healthy timing (`python -m harness.vm`)
  deployment      the deployment's names, read from the roles' defaults
  pki             this run's test CAs and certificates (never committed)
  processes       ending the processes a test started, by their PID
  load            wrk runs and interleaved a/b/c throughput rounds
  nfr             helpers of the NFR suite (wrk in the guest, health, reboot)
  image           fixtures of the image checks (the instances, the build identity)
  fleet           HAProxy on loopback before instances of the baked image
  fleet_template  reading aws/fleet.yml (short tags, user-data)
  ordering        the VM suites' declared module order (a pytest plugin)
  timings         build/timings.json, every stage's duration
  timed           run a command and record its duration (`python -m harness.timed`)
  pytest_timings  each verify's duration and counts (a pytest plugin)
  ansible_plugins the `stage_times` Ansible callback (each playbook's duration)
  native          the roles' nginx and gunicorn configuration run natively on loopback
  report          docs/verification.md (headline figures first) from build/*.json
  up              `make up`'s driver: box, boot, converge, HTTPS check, stage times
  vagrant_check   `make up` refused then from scratch, HTTPS, the suite, destroy
  scap            the OpenSCAP scan of an instance: content, tailoring, results
  cis_forecast    the AMI's CIS rules scanned on Debian 12 (`make cis-forecast`)
"""

from pathlib import Path

# the repository this package lives in
ROOT = Path(__file__).resolve().parent.parent
# where every run writes its records, images and reports
BUILD = ROOT / "build"
