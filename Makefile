# Energy Atlas -- the README's two commands: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
EXTRAS ?= dev,video,platform

.PHONY: demo test bench system-deps venv clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || PY=python3; $${PY:-python3} -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

venv: $(STAMP)

## system packages the tests need (Debian): prusa-slicer, ffmpeg
system-deps:
	@missing=""; command -v prusa-slicer >/dev/null || missing="$$missing prusa-slicer"; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing system packages:$$missing (tests that need them will skip)"; fi; fi

## materialize the planned-energy asset on the bundled samples and print a summary table
demo: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -m atlas_assets.demo

## set up what the tests need and run them
test: system-deps $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

## benchmarks against the named peers (each prints its figures, ratios and PASS/FAIL against the bars)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.gcode_speed
	$(BIN)/python -m benchmarks.gcode_accuracy
	$(BIN)/python -m benchmarks.video_speed
	$(BIN)/python -m benchmarks.dagster_overhead
	$(BIN)/python -m benchmarks.bridge_eval

clean:
	rm -rf $(VENV) .cache
