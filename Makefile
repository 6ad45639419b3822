# Creative Studio: `make run` and `make test` do all the set-up on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export OMP_NUM_THREADS ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run test test-fast lint format bench install install-dev apt chromium clean

run: install  ## install the pinned runtime and launch on http://127.0.0.1:7860
	$(BIN)/python app.py $(ARGS)

test: install-dev chromium  ## the whole suite: unit, gradio_client and real-browser tests
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

test-fast: install-dev  ## everything but the browser and slow tests
	$(BIN)/python -m pytest -ra -m "not browser and not slow" $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install  ## e.g. make bench NAME=art_preview
	$(BIN)/python -m benchmarks $(NAME)

install: $(VENV)/.installed
install-dev: $(VENV)/.dev-installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch==2.13.0 is the CPU wheel here; llama-cpp-python and PyAudio build from source (packages.txt)
$(VENV)/.installed: requirements.txt packages.txt | $(BIN)/python apt
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# the Debian packages the Python packages build against: the same packages.txt a Space installs
apt:
	@missing=$$(for p in $$(cat packages.txt); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Debian's Chromium for Playwright (`playwright install` downloads a browser, which fails offline)
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
