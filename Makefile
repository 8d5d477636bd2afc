# One-command set-up: every target creates .venv and installs oddity if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ODDITY_DATA ?= ../shared/data

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/oddity demo --out oddity-demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	ODDITY_DATA=$(ODDITY_DATA) $(BIN)/python benchmarks/run_image.py
	ODDITY_DATA=$(ODDITY_DATA) $(BIN)/python benchmarks/run_series.py
	ODDITY_DATA=$(ODDITY_DATA) $(BIN)/python benchmarks/run_fewshot.py
	ODDITY_DATA=$(ODDITY_DATA) $(BIN)/python benchmarks/run_reference.py

clean:
	rm -rf $(VENV) oddity-demo
