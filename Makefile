# spikeviz — `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(PY) -m pip --disable-pip-version-check -q
PORT  ?= 5006

.PHONY: demo test bench lint venv clean chromium

# A venv on Python >= 3.12 (recreated if an older one is in the way).
$(VENV)/.python-ok:
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	  echo "removing $(VENV): it runs Python < 3.12"; rm -rf $(VENV); fi
	@if [ ! -x $(PY) ]; then \
	  py=$$(scripts/find-python.sh) || exit 1; \
	  echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 1; \
	  $(PIP) install --upgrade pip || exit 1; fi
	@touch $@

$(VENV)/.installed-app: $(VENV)/.python-ok pyproject.toml
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.python-ok pyproject.toml
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.installed-app

venv: $(VENV)/.installed-app

# Debian's Chromium drives the browser tests (Playwright's own browser download does not work
# offline). Installed when running as root; otherwise the browser tests say why they skip.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: /usr/bin/chromium is missing and this is not root: browser tests will skip"; fi

demo: $(VENV)/.installed-app
	$(VENV)/bin/spikeviz demo --port $(PORT)

test: $(VENV)/.installed-test chromium
	$(PY) -m pytest -ra

bench: $(VENV)/.installed-test
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check spikeviz tests apps benchmarks

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
