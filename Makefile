# The two commands of the README, each doing all its own set-up on a fresh
# Debian machine (python3 >= 3.11 present; PyPI, the npm registry and Debian's
# packages reachable):
#
#   make test    venv with the test tools + Debian tools the tests need + the npm
#                packages of the ocpp-rpc station the OCPP tests drive the CSMS with
#                (npm ci; Debian's nodejs and npm first if node or npm is missing),
#                then ruff, mypy and pytest
#   make demo    venv (the controller and the simulator only), then the simulated
#                site in the background and the controller in the foreground;
#                stopping the controller stops both
#   make install-test  install.sh on a booted Debian root (root only; CI runs it)
#
# Variables: PYTEST_ARGS (passed to pytest), PYTEST_WORKERS (2; 0 runs in one process),
# CONFIG (site file for the demo),
# PYTHON (the interpreter that creates .venv).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
CONFIG ?= config/site.toml
# The simulated OCPP stations' passwords (the site file holds only their hashes).
DEMO_SIM_ARGS ?= --ocpp-passwords config/ocpp-demo-passwords.toml
PYTEST_ARGS ?=
# pytest-xdist workers: the suite waits on real clocks much of the time, so two workers
# on two cores halve it; each test file stays on one worker (--dist loadfile).
PYTEST_WORKERS ?= 2
DEMO_LOG := var/demo-sim.log

# Debian packages the tests use (Modbus command-line client, pty/socket relay, the
# headless browser the tablet-UI tests drive through Playwright, the tracer that checks
# the systemd unit's seccomp filter against the syscalls the controller makes, the MQTT
# broker the city-layer tests start with a config of their own: mosquitto, which brings
# mosquitto_passwd).
APT_PACKAGES := mbpoll socat chromium strace mosquitto

# The OCPP 2.1 station of tools/ocpp-rpc-station (node, ocpp-rpc pinned by its
# package-lock.json). npm ci writes node_modules/.package-lock.json last: it is the
# stamp, re-installed when package-lock.json (or package.json) is newer.
STATION_DIR := tools/ocpp-rpc-station
STATION_STAMP := $(STATION_DIR)/node_modules/.package-lock.json

# Root runs apt-get itself; anyone else goes through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# $(call apt_install,PACKAGES): install those of PACKAGES not installed yet;
# the package lists are updated only when something is missing.
define apt_install
missing=""; \
for package in $(1); do \
  dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing="$$missing $$package"; \
done; \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages:$$missing"; \
  $(SUDO) apt-get update -q; \
  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
fi
endef

.PHONY: test install-test demo demo-city venv venv-test system-packages node-packages lint typecheck pytest clean-venv

test: venv-test system-packages node-packages
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The city layer (issue 15): mosquitto, three simulated shelters reporting over MQTT and
# `resilience eoc`'s web view (tools/demo_city.py prints its address and a token).
demo-city: venv system-packages
	$(BIN)/python tools/demo_city.py

# deploy/install.sh on a booted Debian 12 (debootstrap, cached in
# $$RESILIENCE_DEBIAN_CACHE, default /var/cache/resilience-test), against the
# simulated site: tests/deploy/test_install_booted.py. Needs root; .ci/run runs it
# after `make test`. About two minutes, one more the first time (debootstrap).
install-test: venv-test system-packages
	@$(call apt_install,debootstrap)
	$(SUDO) env RESILIENCE_INSTALL_TEST=1 $(BIN)/pytest -q -s -p no:cacheprovider \
	  tests/deploy/test_install_booted.py

# The controller and simulator only (what `make demo` needs); the test tools on top
# of it for `make test`. Each is re-installed only when pyproject.toml changes (or
# .venv is gone).
venv: $(STAMP)
venv-test: $(TEST_STAMP)

$(STAMP): pyproject.toml
	@if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then $(call apt_install,python3-venv); fi
	@[ -x $(BIN)/python ] || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,plan]'
	@touch $@

system-packages:
	@$(call apt_install,$(APT_PACKAGES))

# Debian's nodejs and npm only where no node or npm is on PATH (a node installed
# otherwise is used as it is).
node-packages: $(STATION_STAMP)

$(STATION_STAMP): $(STATION_DIR)/package-lock.json $(STATION_DIR)/package.json
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then $(call apt_install,nodejs npm); fi
	cd $(STATION_DIR) && npm ci --no-audit --no-fund
	@touch $@

clean-venv:
	rm -rf $(VENV)

# The simulator runs in the background with its output in $(DEMO_LOG); the
# controller runs in the foreground. When the controller exits (or Ctrl-C, or
# make is stopped) the trap stops the simulator.
demo: venv
	@mkdir -p $(dir $(DEMO_LOG))
	@$(BIN)/resilience check-config $(CONFIG)
	@$(BIN)/resilience sim --config $(CONFIG) $(DEMO_SIM_ARGS) >$(DEMO_LOG) 2>&1 & sim=$$!; \
	trap 'kill $$sim 2>/dev/null || true; wait $$sim 2>/dev/null || true; echo "demo: simulator stopped"' EXIT; \
	trap 'exit 130' INT; trap 'exit 143' TERM HUP; \
	echo "demo: simulated devices  resilience sim --config $(CONFIG)  (pid $$sim, log $(DEMO_LOG))"; \
	endpoints=$$($(BIN)/python -c 'import sys; from resilience.config import load_site; \
	  site = load_site(sys.argv[1]); \
	  print(" ".join(sorted({f"{d.host}:{d.port}" for d in site.devices.values() if d.transport == "tcp"})))' $(CONFIG)); \
	$(BIN)/python -c 'import sys; from resilience.config import load_site; site = load_site(sys.argv[1]); \
	  [print(f"  {n:<12} {d.driver:<22} modbus tcp {d.host}:{d.port} unit {d.unit_id}" if d.transport == "tcp" else \
	         f"  {n:<12} {d.driver:<22} ocpp {d.ocpp.version} {d.ocpp.identity} -> {site.ocpp.scheme}://{site.ocpp.host}:{site.ocpp.port}/ocpp" if d.ocpp else \
	         f"  {n:<12} {d.driver:<22} {d.transport} {d.serial_port}") \
	   for n, d in site.devices.items()]' $(CONFIG); \
	for endpoint in $$endpoints; do \
	  for try in $$(seq 300); do \
	    kill -0 $$sim 2>/dev/null || { echo "demo: the simulator exited; its log:"; cat $(DEMO_LOG); exit 1; }; \
	    (exec 3<>/dev/tcp/$${endpoint%:*}/$${endpoint##*:}) 2>/dev/null && break; \
	    [ $$try -lt 300 ] || { echo "demo: nothing answers on $$endpoint after 30 s"; exit 1; }; \
	    sleep 0.1; \
	  done; \
	done; \
	token=$$($(BIN)/resilience token create --role operator --name demo-$$(date +%Y%m%d-%H%M%S) \
	  --config $(CONFIG) | tail -n 1); \
	ui=$$($(BIN)/python -c 'import sys; from resilience.config import load_site; \
	  api = load_site(sys.argv[1]).api; host = "127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host; \
	  scheme = "https" if api.tls_cert else "http"; print(f"{scheme}://{host}:{api.port}/")' $(CONFIG)); \
	echo "demo: tablet UI          $$ui"; \
	echo "demo: operator token     $$token"; \
	echo "demo: signed-in link     $$ui#token=$$token"; \
	echo "demo: controller  resilience run --config $(CONFIG)  (foreground; Ctrl-C stops it and the simulator)"; \
	$(BIN)/resilience run --config $(CONFIG)
