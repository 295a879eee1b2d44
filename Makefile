# The README's two commands: `make demo` and `make test` (CI runs `make test` via .ci/run).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo test down

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

install: $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' -e ./sfmc_emulator

demo: install
	$(PY) -m stack.demo

test: install
	bash tests/web/install_browser.sh
	$(PY) -m stack up
	$(PY) -m pytest -q --durations=25

down:
	$(PY) -m stack down
