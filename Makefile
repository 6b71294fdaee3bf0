# Two commands on a fresh machine: `make demo` and `make test`. Everything else is here.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# The demo keeps its embedded server inside the checkout, not in your user data dir.
DEMO_HOME ?= $(CURDIR)/.learnloop

CONSOLE_OUT := src/learnloop/console/static/index.html
CONSOLE_SRC := $(shell find console/src console/index.html console/vite.config.ts console/tsconfig.json -type f 2>/dev/null)

.PHONY: install demo test test-fast lint bench docs serve clean console chromium console-shots node ts-generate

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the local CPU wheel. A looser pin pulls GBs of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[knowledge,service,training,dev,otel,otel-dev]'
	touch $(STAMP)

install: $(STAMP) console

# The web console: npm packages from the lock file, types from the API's OpenAPI schema,
# then a Vite build into the Python package (gitignored; served at / by `learnloop serve`).
console/node_modules/.package-lock.json: console/package-lock.json
	cd console && npm ci --no-audit --no-fund

$(CONSOLE_OUT): $(STAMP) console/node_modules/.package-lock.json $(CONSOLE_SRC) $(wildcard src/learnloop/api/*.py src/learnloop/api/routes/*.py)
	$(BIN)/python -m learnloop.console.openapi console/openapi.json
	cd console && npm run build

console: $(CONSOLE_OUT)

# The browser tests drive Debian's chromium (Playwright cannot download browsers here).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

demo: $(STAMP)
	LEARNLOOP_HOME=$(DEMO_HOME) $(BIN)/python -m learnloop.demo

# Node packages of the TypeScript client and the TypeScript example, from their lock files
# (npm registry); the tests build and run them against a live `learnloop serve`.
NODE_DIRS := clients/typescript examples/phone_agent
NODE_STAMPS := $(addsuffix /node_modules/.installed,$(NODE_DIRS))

%/node_modules/.installed: %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: $(NODE_STAMPS)

# After an API change: write the schema, regenerate the client's types (a test fails until you do).
ts-generate: $(STAMP) clients/typescript/node_modules/.installed
	$(BIN)/python -m learnloop.api.schema clients/typescript/openapi.json
	cd clients/typescript && npm run generate --silent

test: $(STAMP) console chromium node
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow"

# Re-take the screenshots in docs/console/ from a browser test run.
console-shots: $(STAMP) console chromium
	LEARNLOOP_CONSOLE_SHOTS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile tests/console

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
	rm -rf $(VENV) .learnloop .pytest_cache console/node_modules src/learnloop/console/static \
		$(addsuffix /node_modules,$(NODE_DIRS)) $(addsuffix /dist,$(NODE_DIRS))

# The API and the console on the demo's data: the demo runs only when its data is not there
# yet; prints one URL that signs the browser in.
serve: $(STAMP) console
	LEARNLOOP_HOME=$(DEMO_HOME) $(BIN)/python -m learnloop.console.demo_data
	LEARNLOOP_HOME=$(DEMO_HOME) $(BIN)/learnloop --project demo serve
