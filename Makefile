# realtime: two commands for a fresh Debian/Ubuntu machine with Python 3.11+.
#   make run    set up .venv and start the service with embedded defaults
#   make test   set up .venv, install the interop tools, type-check realtime/, run the whole suite
#   make bench  run every benchmark (bench/README.md, ~25 min, quiet machine) and regenerate
#               bench/README.md from bench/results/*.json; make bench-report: only regenerate
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: run test typecheck venv tools clean bench bench-report

run: $(VENV)/.installed
	$(BIN)/twistd -n realtime $(ARGS)

test: $(VENV)/.installed tools typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# mypy with the configuration of pyproject.toml ([tool.mypy]: realtime/, strict where cheap)
typecheck: $(VENV)/.installed
	$(BIN)/python -m mypy

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml realtime/srtp/_fanout.c realtime/srtp/_fanout_send.h \
		realtime/net/_mmsg.c
	scripts/bootstrap-python $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

tools:
	scripts/install-interop-tools

bench: $(VENV)/.installed tools
	$(BIN)/python bench/forward.py --subscribers 1,10,50,100,200
	$(BIN)/python bench/turn_relay.py
	$(BIN)/python bench/datachannel.py
	$(BIN)/python bench/forward_core.py
	$(BIN)/python bench/rtp_codec.py
	$(BIN)/python bench/directory.py
	$(BIN)/python bench/cluster_connect.py
	$(BIN)/python bench/setup.py
	$(BIN)/python bench/idle_sessions.py
	$(BIN)/python bench/api_forward.py
	$(BIN)/python bench/datachannel_relay.py
	$(BIN)/python bench/cascade_sim.py
	$(BIN)/python bench/whip.py
	$(BIN)/python bench/shaped_subscriber.py
	$(BIN)/python bench/forward.py --servers ours,ours-workers2 --subscribers 50,100,150,200 \
		--seconds 8 --json bench/results/forward_workers.json
	$(BIN)/python bench/report.py

bench-report:
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) build *.egg-info tests/interop/node_modules
