# Two commands for a new user: `make train` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU wheel unless a GPU is present (an unpinned torch pulls the multi-GB CUDA build).
TORCH := torch==2.13.0

.PHONY: setup train test lint cv clean labelstudio

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

## Label Studio in its own venv (.venv-labelstudio) for the round-trip test; a no-op once installed.
labelstudio:
	PYTHON=$(PYTHON) bash scripts/labelstudio_env.sh

## Train the NER and the stance model on the seed corpus (default model, fold 0 held out) and print their reports.
train: setup
	$(PY) -m src.data validate data/annotations/seeds.jsonl
	$(PY) -m src.train task=ner hydra.run.dir=runs/ner
	$(PY) -m src.train task=stance hydra.run.dir=runs/stance

## Run the whole test suite (unit, integration and the slow end-to-end tests).
test: setup labelstudio
	$(PY) -m ruff check src scripts tests
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check src scripts tests
	$(PY) -m ruff format --check src scripts tests

clean:
	rm -rf $(VENV) .venv-labelstudio outputs multirun runs .pytest_cache
