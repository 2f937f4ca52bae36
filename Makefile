# sessiond: `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

VENV ?= .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
PROTOS := $(wildcard protos/sessiond/v1/*.proto)
# Generated from protos/: the Python stubs inside the client distribution, and the copy of the
# contract that travels inside the Node package.
GEN_DIR := client/python/sessiond_client/v1
NODE_PROTOS := client/node/protos/sessiond/v1
# Extra arguments of `make bench`, e.g. BENCH_ARGS=--full (more calls, the reference at 100k sessions).
BENCH_ARGS ?=
# `make profile`: the scenario by its name in the bench table or its slug (SCENARIO=appendmessages-x1).
SCENARIO ?=
CONCURRENCY ?= 8
DURABILITY ?= full
SECONDS ?= 10
BREAKING_AGAINST ?= HEAD~1

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/bin/sessiond: pyproject.toml client/python/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./client/python -e '.[dev]'
	touch $@

$(BUF): package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: install
install: $(VENV)/bin/sessiond $(BUF) ## Create .venv with sessiond and its dev tools, and buf from npm

.PHONY: run
run: $(VENV)/bin/sessiond ## Run the daemon (default configuration, or SESSIOND_CONFIG=file.toml)
	$(VENV)/bin/sessiond serve

.PHONY: test
test: $(VENV)/bin/sessiond ## Run the test suite (needs ../shared beside the checkout)
	$(PY) -m pytest -q

# The suites that take a storage backend, on a throwaway PostgreSQL server (tests/helpers/postgres.py); they skip where
# PostgreSQL is missing. The two-daemon tests (tests/test_postgres.py) always use PostgreSQL: `make test` runs them.
PG_SUITES := tests/test_store_logic.py tests/test_titles.py tests/test_lineage.py tests/test_search.py tests/test_rewind.py tests/test_compaction.py tests/test_metadata.py tests/test_retention.py tests/test_namespaces.py tests/test_scopes.py tests/test_identity_links.py tests/test_handoff.py tests/test_turns.py tests/test_store_behaviour.py tests/test_store_differential.py tests/test_store_races.py \
	tests/test_events.py tests/test_fuzz.py tests/test_hermes_dropin.py

.PHONY: test-postgres
test-postgres: $(VENV)/bin/sessiond ## The store suites against PostgreSQL (initdb/pg_ctl in a temp dir; ~4 min)
	$(PY) -m pytest -q --backend=postgres $(PG_SUITES)

.PHONY: reliability
reliability: $(VENV)/bin/sessiond ## Crashes, races, fuzzing, limits, full disk, corruption, shutdown; 100 kill -9 rounds, 10 PostgreSQL fault rounds each
	SESSIOND_CRASH_ROUNDS=100 SESSIOND_PG_FAULT_ROUNDS=10 $(PY) -m pytest -q -s tests/test_crash.py tests/test_shutdown.py \
		tests/test_store_races.py tests/test_fuzz.py tests/test_limits.py tests/test_disk_full.py tests/test_corruption.py \
		tests/test_postgres_faults.py

.PHONY: test-node
test-node: $(VENV)/bin/sessiond ## The Node client's tests against the real daemon, incl. installing the packed tarball (npm ci in client/node)
	cd client/node && npm ci --no-audit --no-fund && npm test

# protoc names the modules after the proto package (sessiond.v1); the client ships them as
# sessiond_client.v1, so the generated imports are pointed there (only the import lines: the
# serialized descriptors keep the contract's names).
.PHONY: proto
proto: $(VENV)/bin/sessiond ## Regenerate the client's Python stubs + typed .pyi, and the Node package's protos
	rm -rf build/proto && mkdir -p build/proto
	$(PY) -m grpc_tools.protoc -I protos --python_out=build/proto \
		--plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --mypy_out=build/proto $(PROTOS)
	$(PY) -m grpc_tools.protoc -I protos --grpc_python_out=build/proto \
		--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=build/proto \
		protos/sessiond/v1/session_store.proto protos/sessiond/v1/admin.proto
	sed -i -E 's/^from sessiond\.v1 import /from sessiond_client.v1 import /' build/proto/sessiond/v1/*
	rm -f $(GEN_DIR)/*_pb2*.py $(GEN_DIR)/*_pb2*.pyi
	cp build/proto/sessiond/v1/* $(GEN_DIR)/
	rm -f $(NODE_PROTOS)/*.proto && mkdir -p $(NODE_PROTOS) && cp $(PROTOS) $(NODE_PROTOS)/

.PHONY: proto-check
proto-check: proto ## Fail when the committed stubs or the Node package's protos differ from freshly generated ones
	@git diff --exit-code --stat -- $(GEN_DIR) $(NODE_PROTOS) \
		|| { echo "generated code is stale: run 'make proto' and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- $(GEN_DIR) $(NODE_PROTOS))" \
		|| { echo "generated code is not committed: run 'make proto' and commit" >&2; exit 1; }

.PHONY: breaking
breaking: $(BUF) ## buf breaking: the contract against the previous commit's (BREAKING_AGAINST=<git ref>)
	$(BUF) breaking protos --against '.git#ref=$(BREAKING_AGAINST),subdir=protos'

.PHONY: lint
lint: $(VENV)/bin/sessiond $(BUF) ## buf lint the contract, ruff the Python, the layers' import contracts
	$(BUF) lint protos
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check server client tests bench
	$(VENV)/bin/ruff format --check server client tests bench

.PHONY: typecheck
typecheck: $(VENV)/bin/sessiond ## mypy --strict on the Python client (with the generated .pyi stubs) and the daemon
	$(VENV)/bin/mypy --strict client/python/sessiond_client
	$(VENV)/bin/mypy --strict server/sessiond

.PHONY: bench
bench: $(VENV)/bin/sessiond ## Benchmark against two echo servers and the reference: table + bench/results/*.json (~7 min)
	$(PY) -m bench.run $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: $(VENV)/bin/sessiond ## Reduced benchmark run, under two minutes (CI smoke: no timing assertions)
	$(PY) -m bench.run --quick

.PHONY: profile
profile: $(VENV)/bin/sessiond ## py-spy the daemon under a bench scenario: SCENARIO=name [CONCURRENCY=8 DURABILITY=full SECONDS=10]
	$(PY) -m bench.profile --scenario '$(SCENARIO)' --concurrency '$(CONCURRENCY)' --durability '$(DURABILITY)' \
		--seconds '$(SECONDS)'
