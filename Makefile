# Larder: `make run` starts the server, `make test` runs every check, `make e2e` the browser
# tests. All set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run demo test lint typecheck schema bench e2e clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,e2e]'
	@rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(BIN)/python -m app serve

demo: $(STAMP)
	$(BIN)/python -m app demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy app tests bench e2e

schema: $(STAMP)
	$(BIN)/python -m app export-schema --out schema.graphql

test: lint typecheck
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Browser tests: the web example (examples/web) built and served on its own origin, a real
# server, Debian's Chromium (Playwright's browser download is not used).
CHROMIUM ?= /usr/bin/chromium
WEB      := examples/web
SUDO     := $(if $(filter 0,$(shell id -u)),,sudo)

$(WEB)/node_modules: $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund

e2e: $(STAMP) $(WEB)/node_modules
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	cd $(WEB) && npm run build
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest e2e

clean:
	rm -rf $(VENV) data .mypy_cache .pytest_cache .ruff_cache $(WEB)/node_modules $(WEB)/dist
