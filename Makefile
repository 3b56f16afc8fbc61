# Energy Atlas -- the README's two commands: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
EXTRAS ?= dev,video,platform

.PHONY: demo test lint lock bench system-deps venv clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || PY=python3; $${PY:-python3} -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

## install exactly the locked versions (requirements.lock, made by `make lock`), then the project itself
$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q --no-deps -r requirements.lock
	@# one OpenCV build: a venv made before the lock may still hold ultralytics' GUI build beside the headless
	@# one (both own cv2/); drop it and restore the headless files
	@if $(BIN)/pip show -q opencv-python >/dev/null 2>&1; then \
	  $(BIN)/pip uninstall -q -y opencv-python && \
	  $(BIN)/pip install -q --no-deps --force-reinstall "$$(grep -i '^opencv-python-headless==' requirements.lock)"; fi
	$(BIN)/pip install -q --no-deps -e .
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

## set up what the tests need, lint, and run them
test: system-deps $(STAMP) lint
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .

## refresh requirements.lock to the newest versions pyproject.toml allows, reinstall .venv from it, run the tests
lock:
	PY=$(PY) EXTRAS=$(EXTRAS) scripts/lock.sh
	rm -f $(STAMP)
	$(MAKE) test

## benchmarks against the named peers (each prints its figures, ratios and PASS/FAIL against the bars)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.gcode_speed
	$(BIN)/python -m benchmarks.gcode_accuracy
	$(BIN)/python -m benchmarks.video_speed
	$(BIN)/python -m benchmarks.dagster_overhead
	$(BIN)/python -m benchmarks.bridge_eval

clean:
	rm -rf $(VENV) .cache
