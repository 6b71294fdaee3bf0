# Two commands on a fresh machine: `make demo` and `make test`. Everything else is here.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# The demo keeps its embedded server inside the checkout, not in your user data dir.
DEMO_HOME ?= $(CURDIR)/.learnloop

.PHONY: install demo test test-fast lint bench docs serve clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the local CPU wheel. A looser pin pulls GBs of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[knowledge,service,training,dev,otel,otel-dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	LEARNLOOP_HOME=$(DEMO_HOME) $(BIN)/python -m learnloop.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

# The benchmarks compare against Chroma and LanceDB; the tests never need them.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

docs: $(STAMP)
	$(BIN)/python -m learnloop.docsgen

clean:
	rm -rf $(VENV) .learnloop .pytest_cache

# The HTTP API on the demo's data: runs the demo setup, then serves with a fresh admin key.
serve: $(STAMP)
	LEARNLOOP_HOME=$(DEMO_HOME) $(BIN)/python -m learnloop.demo
	LEARNLOOP_HOME=$(DEMO_HOME) $(BIN)/learnloop --project demo serve --create-key
