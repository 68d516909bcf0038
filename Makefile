# One obvious way to run things. Every target installs what it needs from uv.lock first.
PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install serve test test-fast lint bench demo screen-demo clean lock

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(VENV)/.synced

lock: | $(UV)
	$(UV) lock

serve: install
	OSTEO_CDS_AUTH=none OSTEO_CDS_PREVIEW=$${OSTEO_CDS_PREVIEW:-true} \
	  OSTEO_CDS_CODE_MAP=$${OSTEO_CDS_CODE_MAP-examples/code-map.json} \
	  $(VENV)/bin/osteo-cds serve --host $(HOST) --port $(PORT)

test: install
	bash scripts/test-setup.sh
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not fhir_server and not browser and not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check cds_service tests scripts $(wildcard bench)
	$(VENV)/bin/ruff format --check cds_service tests scripts $(wildcard bench)
	$(VENV)/bin/mypy

bench: install
	$(PY) -m bench.run
	$(PY) -m bench.long_chart_waves

# A real FHIR server (sekmet, installed by scripts/test-setup.sh if missing) with the demonstration patients,
# the service beside it, and a curl per patient; Ctrl-C stops both. DEMO_ARGS, e.g. DEMO_ARGS="--port 8081".
demo: install
	$(PY) scripts/demo.py $(DEMO_ARGS)

# osteo-cds screen over the example patients and Synthea fixtures as a Bulk Data NDJSON folder (written to
# screen-demo/export); the worklist and report.html land in screen-demo/out. SCREEN_ARGS, e.g. "--engine spark".
screen-demo: install
	$(PY) -c "from pathlib import Path; from tests.screen.export import write_export; write_export(Path('screen-demo/export'))"
	OSTEO_CDS_CODE_MAP=examples/code-map.json $(VENV)/bin/osteo-cds screen screen-demo/export \
	  --out screen-demo/out --today 2026-11-25 $(SCREEN_ARGS)
	@echo "report: screen-demo/out/report.html (owner-only; worklist.csv/.parquet beside it)"

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
