# realtime: two commands for a fresh Debian/Ubuntu machine with Python 3.11+.
#   make run    set up .venv and start the service with embedded defaults
#   make test   set up .venv, install the interop tools, type-check realtime/, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: run test typecheck venv tools clean

run: $(VENV)/.installed
	$(BIN)/twistd -n realtime $(ARGS)

test: $(VENV)/.installed tools typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# mypy with the configuration of pyproject.toml ([tool.mypy]: realtime/, strict where cheap)
typecheck: $(VENV)/.installed
	$(BIN)/python -m mypy

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
