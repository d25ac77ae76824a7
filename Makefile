# Kiln: `make demo` (set up and run every concept end to end), `make dev` (Dagster UI + daemon),
# `make test` (the suite, as CI runs it). Everything honours KILN_DATA_DIR, KILN_STORE_URI,
# KILN_EXPORT_URI (see README.md).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
export KILN_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: install demo dev gallery register test test-deps test-lod-sweep test-scale bench bench-backfill chaos concepts clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
	@$(BIN)/python -m pipeline.cli home >/dev/null

# three.js (npm) is copied next to the gallery for its 3D viewer; without npm the gallery has no viewer.
demo: install $(if $(shell command -v npm),node_modules/.installed)
	$(BIN)/python -m pipeline.cli demo

# every concept folder becomes a partition, nothing runs (then backfill from the UI)
register: install
	$(BIN)/python -m pipeline.cli register

dev: install
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

# The gallery and its 3D viewer over HTTP (browsers do not load the viewer's modules from file://).
GALLERY_PORT ?= 8000
gallery:
	@echo "gallery: http://127.0.0.1:$(GALLERY_PORT)/ (Ctrl-C stops)"
	python3 -m http.server $(GALLERY_PORT) --bind 127.0.0.1 --directory "$(KILN_DATA_DIR)/exports"

# Outside judges the tests need: the Khronos glTF-Validator, gltfpack and three.js (npm),
# Chromium for what a person would look at (Debian).
node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

test-deps: install node_modules/.installed
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (Debian) for browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'; }
	@command -v redis-server >/dev/null || test -x /usr/bin/redis-server || { \
	  echo "installing redis-server (Debian) for the scale-out tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server'; }

test: test-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# Fault campaign against the six vendor emulators (>= 1,000 faults over 120 assets; prints a table).
chaos: install
	$(BIN)/python -m tests.chaos --assets 120 --faults 14 --seed 11

# every shared concept image and turnaround through reconstruction and the LOD chain; every real GLB,
# image, turnaround and sample baked and rendered at its switch sizes (outline < 1 px) (~20 s)
test-lod-sweep: test-deps
	$(BIN)/pytest -m sweep tests/test_lod_sweep.py

# Multi-machine execution for real: Redis, PostgreSQL, SeaweedFS, two Celery workers, the daemon and
# webserver; a backfill of 20 assets with one worker killed mid-run (~5 min on 2 cores).
test-scale: test-deps
	nice -n 10 $(BIN)/pytest -m scale tests/test_scaleout.py

bench: install node_modules/.installed
	$(BIN)/python bench/reconstruct_bench.py
	$(BIN)/python bench/lod_bench.py
	$(BIN)/python bench/material_bench.py
	$(BIN)/python bench/sensor_bench.py

# A catalog backfill on the scale-out stack (PostgreSQL, Redis, SeaweedFS, Celery workers, daemon), offline
# and against vendor emulators, with 1 then 2 workers; prints a table (bench/out/ gets the JSON).
# BENCH_ARGS=--assets 40 for a look (~23 min); the full 1,000 assets take ~6-7 h on 2 cores.
# Then the unattended path: concept folders dropped into an idle `make dev`-like deployment, drop to
# catalog.json split by stage (~3 min).
bench-backfill: test-deps
	nice -n 10 $(BIN)/python bench/backfill_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/drop_bench.py

concepts: install
	$(BIN)/python scripts/draw_concepts.py data/concepts

clean:
	rm -rf .dagster data/store data/exports
