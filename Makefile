# SuperMega Bank Customer Account API: the project's command surface.
# `make help` lists every target; each one says what it needs.

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Every program in the repository is linted: the Python ones by ruff (the
# programs the roles install have no .py suffix: ruff.toml names them), the
# shell ones by shellcheck.
PY_SOURCES := app harness testing tools aws packer/scripts ansible/roles/api/files \
              ansible/roles/nginx/files/supermega-edge-config \
              ansible/roles/metrics/files/supermega-metrics-config
SH_SOURCES := .ci/run tools/*.sh packer/*.sh packer/scripts/*.sh packer/base-image/build.sh \
              ansible/roles/firewall/files/supermega-firewall-boot testing/image/*.sh

# Virtual machines: kvm where it works (a laptop), tcg (software emulation)
# where it does not (this project's CI machines). One setting for Molecule,
# Packer, the image checks and Vagrant.
VM_ACCEL ?= tcg
VM_CPU   ?= $(if $(filter kvm,$(VM_ACCEL)),host,qemu64)
export VM_ACCEL VM_CPU
SCENARIO ?= default

# Ansible's strategy for every converge (Molecule, Packer, Vagrant): mitogen's
# mitogen_linear keeps one Python per host instead of starting one per task,
# which halves a converge under emulation (docs/adr/0009-molecule-one-vm-harness.md). Optional, never
# required: ANSIBLE_MITOGEN=0 runs Ansible's own linear strategy.
ANSIBLE_MITOGEN ?= 1
MITOGEN_STRATEGIES = $(wildcard $(CURDIR)/$(VENV)/lib/python3*/site-packages/ansible_mitogen/plugins/strategy)
ifeq ($(ANSIBLE_MITOGEN),1)
export ANSIBLE_STRATEGY_PLUGINS = $(MITOGEN_STRATEGIES)
export ANSIBLE_STRATEGY = $(if $(MITOGEN_STRATEGIES),mitogen_linear,linear)
endif
# Every stage records its duration here (harness/timings.py).
export STAGE_TIMINGS ?= $(CURDIR)/build/timings.json

.PHONY: help
help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the controller's system packages (apt, needs root)
	bash tools/install-host-deps.sh

$(BIN)/activate: requirements-dev.lock requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

.PHONY: venv
venv: $(BIN)/activate ## Create the project venv (.venv): requirements-dev.lock, and the app and harness importable

.PHONY: lock
lock: venv ## Re-resolve requirements*.txt into the lock files (hash-locked runtime set)
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-header \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock requirements.txt
	$(BIN)/pip-compile --quiet --strip-extras --allow-unsafe --no-header \
	  --no-emit-index-url --no-emit-find-links --output-file requirements-dev.lock requirements-dev.txt

.PHONY: run
run: venv ## Run the app as supplied: Flask's server on 0.0.0.0:5000 (debug off)
	$(BIN)/python app/app.py

.PHONY: lint
lint: venv ## Static checks: ruff, shellcheck, yamllint, ansible-lint, role docs (aar-doc), alert rules (promtool), mtail, the tailoring files, packer, vagrant
	$(BIN)/ruff check $(PY_SOURCES)
	shellcheck --severity=style $(SH_SOURCES)
	$(BIN)/yamllint --strict .
	promtool check rules monitoring/prometheus/alerts.yml
	cd monitoring/prometheus && promtool test rules tests/alerts_test.yml
	mtail --compile_only --port 0 --progs ansible/roles/metrics/files/api.mtail --stderrthreshold=ERROR
	$(BIN)/ansible-lint --profile production --strict ansible/ molecule/
	bash tools/role-docs.sh --check
	$(BIN)/python tools/tailoring.py --check compliance/*.yml
	bash packer/validate.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" vagrant validate

.PHONY: role-docs
role-docs: venv ## Regenerate the roles' README variable tables from meta/argument_specs.yml (aar-doc)
	bash tools/role-docs.sh

.PHONY: fleet-lint
fleet-lint: ## The fleet's CloudFormation template (aws/fleet.yml): cfn-lint (+ the project's rules) and checkov (own venv, PyPI), zero findings; its mutants caught
	bash tools/fleet-lint.sh

.PHONY: unit
unit: venv ## The supplied unittest file, then the unit tests (app, role programs, harness) and the static checks (roles, templates, Packer, the fleet template)
	$(BIN)/python testing/testing.py
	$(BIN)/python -m pytest -q testing/unit testing/static

.PHONY: perf-native
perf-native: venv ## a, b, c throughput natively: the roles' nginx + gunicorn config on loopback, no VM
	$(BIN)/python -m pytest -q testing/perf

.PHONY: base-image
base-image: ## Build (or reuse) the local Debian base qcow2 (root, loop devices): BASE_RELEASE=bookworm (12, default) or trixie (13)
	bash packer/base-image/build.sh

.PHONY: molecule-test
molecule-test: venv ## molecule test -s SCENARIO: default (the roles), image (baked instances), nfr
	$(BIN)/python -m harness.timed molecule_$(SCENARIO) -- $(BIN)/molecule test -s $(SCENARIO)

.PHONY: molecule-converge
molecule-converge: venv ## Boot the scenario's VM (if needed) and converge it (default)
	$(BIN)/molecule converge -s $(SCENARIO)

.PHONY: molecule-verify
molecule-verify: venv ## Run the scenario's Testinfra suite against its running VMs
	$(BIN)/molecule verify -s $(SCENARIO)

.PHONY: molecule-login
molecule-login: venv ## SSH into the scenario's VM
	$(BIN)/molecule login -s $(SCENARIO)

.PHONY: molecule-destroy
molecule-destroy: venv ## Stop the scenario's VMs and delete their disks
	$(BIN)/molecule destroy -s $(SCENARIO)

.PHONY: image
image: venv ## Bake the local qemu image with Packer (build/image/supermega-api.qcow2)
	$(BIN)/python -m harness.timed image -- bash packer/build-local.sh

.PHONY: image-verify
image-verify: venv ## = molecule test -s image: two baked instances: Testinfra, image checks, mutants
	$(MAKE) --no-print-directory molecule-test SCENARIO=image

.PHONY: mutants
mutants: venv ## The mutation check alone: remove each protection on an instance, its test must fail
	PYTEST_ADDOPTS="-k mutants" $(BIN)/python -m harness.timed mutants -- $(BIN)/molecule test -s image

.PHONY: verify
verify: venv ## = molecule test -s nfr: the NFR suite on an instance of the image (perf, load, faults, bad input, TLS, network)
	$(MAKE) --no-print-directory molecule-test SCENARIO=nfr

.PHONY: up
up: ## Bring the service up: the whole stack in a local VM (https://127.0.0.1:8443); "up" only once HTTPS answers; the time of each stage
	@start=$$(date +%s); bash tools/install-host-deps.sh; deps=$$(( $$(date +%s) - start )); \
	  start=$$(date +%s); $(MAKE) --no-print-directory venv; venv=$$(( $$(date +%s) - start )); \
	  $(BIN)/python -m harness.up --deps-seconds $$deps --venv-seconds $$venv

.PHONY: vagrant-box
vagrant-box: ## Make the local libvirt box (from the base image) and its NoCloud seed
	bash tools/vagrant-local.sh box

.PHONY: vagrant-up
vagrant-up: venv ## make up without the host packages: box, boot, converge unless the last one completed, HTTPS check
	$(BIN)/python -m harness.up

.PHONY: vagrant-destroy
vagrant-destroy: ## `vagrant destroy -f` and stop the libvirt daemons this project started
	eval "$$(bash tools/vagrant-local.sh env)" && vagrant destroy -f
	bash tools/vagrant-local.sh stop-daemons

.PHONY: fleet-check
fleet-check: venv ## HAProxy on loopback before instances of the baked image: callers (mTLS at the edge), abusive client, rolling replacement, instance lost
	$(BIN)/python -m harness.timed fleet_check -- $(BIN)/python -m pytest -q -p no:cacheprovider testing/fleet

.PHONY: boot-alone
boot-alone: venv base-image ## Boot to healthy with no other VM, against the base image's boot in the same run (2 vCPUs): ratio at most 0.75
	$(BIN)/python -m harness.timed boot_alone -- $(BIN)/python -m pytest -q -p no:cacheprovider testing/boot

.PHONY: scap
scap: venv ## OpenSCAP on an instance of the baked image: ANSSI BP-028 intermediary, waivers in compliance/; results in build/scap/
	$(BIN)/python -m harness.timed scap -- $(BIN)/python -m pytest -q -p no:cacheprovider testing/benchmark

.PHONY: cis-forecast
cis-forecast: venv ## By hand, after make image: the AMI's CIS L1 rules that Debian's content shares, scanned on an instance; writes docs/cis-forecast.md
	$(BIN)/python -m harness.cis_forecast

.PHONY: vagrant-check
vagrant-check: venv vagrant-box ## make up's driver with a refused converge (must not say up), again (converge from scratch), HTTPS from the host, the roles' suite on the VM, destroy
	$(BIN)/python -m harness.vagrant_check

# The VM suites, two lanes of one VM at a time but for the image scenario's
# two instances (an emulated guest keeps a core busy, and guests whose vCPUs
# outnumber the cores stall each other: measured, with three or four VMs at
# once an idempotence run took 6.7 times and a baked boot 3.1 times as long
# as with two; three run at once only while those instances boot near the
# end of the roles lane):
#   roles: the fleet template's lint (no VM; beside the bake, which has
#          no timing to disturb), molecule test on Debian 12 (from scratch,
#          idempotence, suite), then make up's driver on Debian 13 (a refused
#          converge, then from scratch, HTTPS from the host, the suite,
#          destroy), then the OpenSCAP scan of an instance of the baked image
#          (make scap); each runs whether the one before failed or not
#   image: packer build, then molecule test -s nfr (the NFR suite on one
#          instance of the image), then molecule test -s image (two
#          instances: the roles' suite, the image checks, the mutation
#          check), whose boots overlap the end of the roles lane, then
#          the local fleet (make fleet-check: HAProxy before two to three
#          instances; by then the roles lane has usually ended)
# Figures: docs/verification.md; why this order: docs/adr/0009-molecule-one-vm-harness.md.
.PHONY: lane-roles lane-image
lane-roles:
	$(BIN)/python -m harness.timed lane_roles -- bash -c '$(BIN)/python -m harness.timed \
	  unit -- $(MAKE) --no-print-directory unit; unit=$$?; \
	  $(BIN)/python -m harness.timed fleet_lint -- $(MAKE) --no-print-directory fleet-lint; fleet=$$?; \
	  $(MAKE) --no-print-directory molecule-test SCENARIO=default; molecule=$$?; \
	  $(MAKE) --no-print-directory vagrant-check; vagrant=$$?; \
	  $(MAKE) --no-print-directory scap; scap=$$?; \
	  exit $$(( unit || fleet || molecule || vagrant || scap ))' \
	  2>&1 | sed -u 's/^/[roles] /'
lane-image:
	$(BIN)/python -m harness.timed lane_image -- bash -c '$(MAKE) --no-print-directory image \
	  && { $(MAKE) --no-print-directory verify; nfr=$$?; \
	       $(MAKE) --no-print-directory image-verify; image=$$?; \
	       $(MAKE) --no-print-directory fleet-check && exit $$(( nfr || image )); }' \
	  2>&1 | sed -u 's/^/[image] /'

.PHONY: vm-suites
vm-suites: venv base-image ## Two lanes side by side: roles (unit tests, fleet lint, Molecule on Debian 12, Vagrant on Debian 13, OpenSCAP) | image (bake, NFR, the image's two instances: checks, mutants; the local fleet); then boot-alone
	lanes=0; $(MAKE) --no-print-directory -k -j2 lane-roles lane-image || lanes=$$?; \
	  alone=0; $(MAKE) --no-print-directory boot-alone || alone=$$?; exit $$(( lanes || alone ))

.PHONY: report
report: venv ## Write docs/verification.md (headline figures, every stage) and docs/img/ from build/*.json
	$(BIN)/python -m harness.report

.PHONY: test
test: venv ## Everything CI runs: lint, native performance, then the VM suites (the unit tests first in their roles lane)
	$(BIN)/python -m harness.timed lint -- $(MAKE) --no-print-directory lint
	$(BIN)/python -m harness.timed perf_native -- $(MAKE) --no-print-directory perf-native
	$(MAKE) --no-print-directory vm-suites
