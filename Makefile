# software_dna — every target creates and reuses the local virtual environment (.venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test pythons lint typecheck browser proxy bench stress clean messages catalogues

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[server,dev]'
	@$(BIN)/python tools/catalogues.py compile
	@touch $(STAMP)

# The message catalogues (docs/localisation.md). `messages` extracts the texts into
# src/software_dna/locale/<domain>.pot, merges them into every <language>/LC_MESSAGES/
# <domain>.po and compiles; `catalogues` compiles each .po newer than its .mo (the .mo
# files are build artefacts: every target that runs the code compiles them first).
messages: $(STAMP)
	$(BIN)/python tools/catalogues.py messages

catalogues: $(STAMP)
	@$(BIN)/python tools/catalogues.py compile

# `make demo PANEL=1` keeps the server up at the end (until Ctrl-C) to try the control panel.
demo: $(STAMP) catalogues
	@$(BIN)/python examples/demo.py $(if $(filter-out 0 no false,$(PANEL)),--panel)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples tools setup.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

typecheck: lint

# Three workers on two cores (measured against 2 and 4: the quickest): part of the
# time is spent waiting on server processes, the network and the database.
# loadscope runs each module on one worker, so a module's server starts once.
# The panel's browser tests (tests/panel/browser) drive headless Chromium. As root on
# Debian (CI) `browser` installs Debian's chromium and chromium-driver; elsewhere it says
# how, and those tests are skipped with that message (with CI=true they fail instead).
# Then `pythons`: the SDK and the server suites on every other Python pyproject.toml
# claims, the SDK's dependencies at exactly their floors
# on the oldest (tools/pythons.py; one .venv-py3x each, reused like .venv). A claimed
# Python that is missing is reported and skipped (with CI=true it fails).
test: $(STAMP) catalogues lint browser proxy
	$(BIN)/python -m pytest -n 3 --dist loadscope
	@$(MAKE) --no-print-directory pythons

PYTHONS_SKIP = $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pythons: $(STAMP) catalogues
	$(BIN)/python tools/pythons.py test $(if $(PYTHONS_SKIP),--skip $(PYTHONS_SKIP))

BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing $(BROWSER_PACKAGES) for the panel's browser tests (apt-get)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES) >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q \
			--no-install-recommends $(BROWSER_PACKAGES) >/dev/null; } \
		|| echo "Could not install $(BROWSER_PACKAGES): the browser tests will be skipped \
(they fail when CI=true)."; \
	else \
		echo "Chromium and chromedriver are not installed: the panel's browser tests will be \
skipped (they fail when CI=true)."; \
		echo "  Debian/Ubuntu: sudo apt-get install $(BROWSER_PACKAGES)  (or: sudo make browser)"; \
		echo "  Elsewhere: set SDNA_CHROMIUM and SDNA_CHROMEDRIVER to a Chromium and its \
matching chromedriver."; \
	fi

# The deployment tests (tests/deploy) start nginx from deploy/nginx in front of the server.
# As root on Debian (CI) `proxy` installs Debian's nginx; elsewhere it says how, and those
# tests are skipped with that message (with CI=true they fail instead).
PROXY_PACKAGES := nginx
proxy:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing $(PROXY_PACKAGES) for the deployment tests (apt-get)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends $(PROXY_PACKAGES) >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q \
			--no-install-recommends $(PROXY_PACKAGES) >/dev/null; } \
		|| echo "Could not install $(PROXY_PACKAGES): the proxy and HA tests will be \
skipped (they fail when CI=true)."; \
	else \
		echo "nginx is not installed: the reverse-proxy and high-availability tests \
(tests/deploy) will be skipped (they fail when CI=true)."; \
		echo "  Debian/Ubuntu: sudo apt-get install $(PROXY_PACKAGES)  (or: sudo make proxy)"; \
		echo "  Elsewhere: install nginx and set SDNA_NGINX to its executable if it is not \
on the PATH."; \
	fi

# The reliability and security suite at full scale (one line per family; see docs/security.md).
stress: $(STAMP) catalogues proxy
	$(BIN)/python -m tests.stress

# The benchmarks run in their own environment (.venv-bench): software_dna with its
# server extra, the SDKs compared against (Cryptolens' licensing, LicenseSpring's
# licensespring) and py-spy for the server profile. Timing never fails the target.
BENCH_VENV  := .venv-bench
BENCH_BIN   := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
BENCH_RUN   := env -u PYTHONDONTWRITEBYTECODE $(BENCH_BIN)/python

$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_BIN)/python || $(PYTHON) -m venv $(BENCH_VENV)
	@$(BENCH_BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BENCH_BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[server]' \
		licensing licensespring py-spy
	@touch $(BENCH_STAMP)

# wrk (a C load generator) drives the server's validations when it is installed, so that
# the load costs the 2 shared cores less; as root on Debian it is installed here.
bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get install -y -q wrk >/dev/null 2>&1; } || echo "wrk is not installed \
		(Debian: apt-get install wrk); bench/server.py uses its own Python load generator"
	$(BENCH_RUN) bench/import_check.py
	$(BENCH_RUN) bench/fingerprint_cost.py
	$(BENCH_RUN) bench/machine_key.py
	$(BENCH_RUN) bench/clients.py
	$(BENCH_RUN) bench/region_loss.py
	$(BENCH_RUN) bench/server.py --profile

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-py3* build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find src/software_dna/locale -name '*.mo' -delete
