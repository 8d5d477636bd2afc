# One-command set-up: every target creates .venv and installs oddity if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ODDITY_DATA ?= ../shared/data

.PHONY: demo test docs docs-serve bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/oddity demo --out oddity-demo --overwrite

# Tests, the doctests of src/ (the Examples sections) and a strict build of the docs site.
test: $(STAMP)
	$(BIN)/python -m pytest --doctest-modules tests src/oddity
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(VENV)/site-check

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

bench: $(STAMP)
	ODDITY_DATA=$(ODDITY_DATA) $(BIN)/python benchmarks/run_image.py
	ODDITY_DATA=$(ODDITY_DATA) $(BIN)/python benchmarks/run_series.py
	ODDITY_DATA=$(ODDITY_DATA) $(BIN)/python benchmarks/run_fewshot.py
	ODDITY_DATA=$(ODDITY_DATA) $(BIN)/python benchmarks/run_reference.py

clean:
	rm -rf $(VENV) oddity-demo site
