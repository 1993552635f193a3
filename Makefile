# Two commands for a new user: `make train` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU wheel unless a GPU is present (an unpinned torch pulls the multi-GB CUDA build).
TORCH := torch==2.13.0

.PHONY: setup train test lint cv clean labelstudio conll

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,benchmark,onnx]"
	touch $@

setup: $(VENV)/.installed

## Label Studio in its own venv (.venv-labelstudio) for the round-trip test; a no-op once installed.
labelstudio:
	PYTHON=$(PYTHON) bash scripts/labelstudio_env.sh

CONLL := runs/conll2003/model/config.json
# A previous run folder is kept under a new name, never overwritten.
keep = if [ -d $(1) ]; then mv $(1) $(1).$$(date +%Y%m%d-%H%M%S); echo "previous $(1) kept as $(1).<time>"; fi

## The CoNLL-2003 model that the seed NER model warm-starts from (one CPU epoch; built once).
conll: $(CONLL)
$(CONLL): | setup
	$(call keep,runs/conll2003)
	$(PY) -m src.train data=conll2003 experiment=conll2003_warmstart hydra.run.dir=runs/conll2003

## Train the NER and the stance model on the seed corpus (fold 0 held out) and print their per-label reports.
train: setup $(CONLL)
	$(PY) -m src.data validate data/annotations/seeds.jsonl
	$(call keep,runs/ner)
	$(PY) -m src.train task=ner hydra.run.dir=runs/ner
	$(call keep,runs/stance)
	$(PY) -m src.train task=stance hydra.run.dir=runs/stance

## Leave-one-article-out cross-validation of both tasks, pooled with the baselines into multirun/cv/cv_report.md.
cv: setup $(CONLL)
	$(call keep,multirun/cv)
	$(PY) -m src.train -m task=ner,stance data.fold=0,1,2,3,4 hydra.sweep.dir=multirun/cv trainer.disable_tqdm=true trainer.save_strategy=no
	$(PY) -m src.evaluate cv=multirun/cv

## Run the whole test suite (unit, integration and the slow end-to-end tests).
test: setup labelstudio
	$(PY) -m ruff check src scripts tests
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check src scripts tests
	$(PY) -m ruff format --check src scripts tests

clean:
	rm -rf $(VENV) .venv-labelstudio outputs multirun runs .pytest_cache
