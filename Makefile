# realtime: two commands for a fresh Debian/Ubuntu machine with Python 3.11+.
#   make run    set up .venv and start the service with embedded defaults
#   make test   set up .venv, install the interop tools, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: run test venv tools clean

run: $(VENV)/.installed
	$(BIN)/twistd -n realtime $(ARGS)

test: $(VENV)/.installed tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	scripts/bootstrap-python $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

tools:
	scripts/install-interop-tools

clean:
	rm -rf $(VENV) build *.egg-info tests/interop/node_modules
