# Two commands set everything up: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501

.PHONY: run test suite test-fast lint typecheck install install-dev install-gp bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Optional: PyTorch for the gp_torch strategy, Optuna's GPSampler (CI installs it).
install-gp: $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-gp.txt

run: install
	$(BIN)/python -m hpdash init
	$(BIN)/streamlit run app.py --server.port $(PORT)

# Three test processes, each taking whole files (module fixtures such as servers stay
# shared): most tests wait on worker processes, servers and a browser, so three keep two
# cores busy (four made every test slower: 20 min of tests against 18.5).
TEST_PROCESSES ?= 3

# The gates and the suite run side by side (the gates take a core for about a minute, the
# suite mostly waits on processes); make test fails if any of them fails.
test: install-dev
	@$(MAKE) --no-print-directory -j3 lint typecheck suite

suite: install-dev
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

# The tests that start no worker process, server or browser.
test-fast: install-dev
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) -m "not slow and not e2e" $(PYTEST_ARGS)

# The gates (configured in pyproject.toml): ruff lint and format, the import layers, mypy.
SOURCES := app.py hpdash pages tests bench
lint: install-dev
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

bench: install-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache
