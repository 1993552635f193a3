# Two commands for a new user: `make train` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU wheel unless a GPU is present (an unpinned torch pulls the multi-GB CUDA build).
TORCH := torch==2.13.0

.PHONY: setup train retrain test lint cv clean labelstudio conll

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

# CoNLL-2003 for the NER warm start: CONLL=/path (a folder with train.txt, dev.txt, test.txt), else $$NEWSFRAME_CONLL,
# ../shared/benchmarks/conll2003 or the Hugging Face Hub copy (src/data/conll.py). Without any, NER trains from the
# plain packaged model (experiment=seeds_ner_plain), a weaker model, and the run says so.
CONLL ?=
CONLL_MODEL := runs/conll2003/model/model.safetensors
CONLL_DIR := $(if $(CONLL),data.dir=$(abspath $(CONLL)))
# A previous run folder is kept under a new name, never overwritten.
keep = if [ -d $(1) ]; then mv $(1) $(1).$$(date +%Y%m%d-%H%M%S); echo "previous $(1) kept as $(1).<time>"; fi
NER_EXPERIMENT = $$(if [ -f $(CONLL_MODEL) ]; then echo seeds_ner; else echo seeds_ner_plain; fi)

## The CoNLL-2003 model that the seed NER model warm-starts from (one CPU epoch; built once). Fails if no CoNLL-2003.
conll: setup
	$(PY) -m src.data.conll $(if $(CONLL),--dir $(abspath $(CONLL)))
	$(MAKE) --no-print-directory $(CONLL_MODEL)
$(CONLL_MODEL): | setup
	@if [ -d runs/conll2003 ]; then t=$$(date +%Y%m%d-%H%M%S); mv runs/conll2003 runs/conll2003.incomplete-$$t; \
	  echo "runs/conll2003 was an unfinished build: kept as runs/conll2003.incomplete-$$t"; fi
	$(PY) -m src.train data=conll2003 experiment=conll2003_warmstart hydra.run.dir=runs/conll2003 $(CONLL_DIR)

## Train the NER and the stance model on the seed corpus (fold 0 held out) and print their per-label reports.
## The NER model warm-starts from CoNLL-2003 where one is found (see CONLL above), else from the packaged model.
train: setup
	$(PY) -m src.data validate data/annotations/seeds.jsonl
	@if [ -f $(CONLL_MODEL) ]; then echo "NER warm start: runs/conll2003 (built earlier; remove it to rebuild)"; \
	elif [ -n "$(CONLL)" ]; then $(MAKE) --no-print-directory conll; \
	elif $(PY) -m src.data.conll; then \
	  $(MAKE) --no-print-directory $(CONLL_MODEL) || echo "The CoNLL-2003 build failed (above): NER trains from the packaged model"; fi
	$(call keep,runs/ner)
	$(PY) -m src.train task=ner experiment=$(NER_EXPERIMENT) hydra.run.dir=runs/ner
	$(call keep,runs/stance)
	$(PY) -m src.train task=stance hydra.run.dir=runs/stance

## Add a Label Studio export to the corpus and train both models on every article: make retrain EXPORT=project-1-at-....json
## A bad export or an article already in the corpus is refused (located errors, exit 2) with the corpus unchanged;
## the previous corpus is kept as CORPUS.<time> and the previous runs/ner, runs/stance as runs/*.<time>.
EXPORT ?=
CORPUS ?= data/annotations/seeds.jsonl
retrain:
	@if [ -z "$(EXPORT)" ]; then echo "error: give the export: make retrain EXPORT=project-1-at-....json" >&2; exit 2; fi
	@$(MAKE) --no-print-directory setup
	$(PY) -m src.data add $(EXPORT) --corpus $(CORPUS)
	$(call keep,runs/ner)
	$(PY) -m src.train task=ner experiment=$(NER_EXPERIMENT) data.fold=null data.path=$(abspath $(CORPUS)) hydra.run.dir=runs/ner
	$(call keep,runs/stance)
	$(PY) -m src.train task=stance data.fold=null data.path=$(abspath $(CORPUS)) hydra.run.dir=runs/stance

## Leave-one-article-out cross-validation of both tasks, pooled with the baselines into multirun/cv/cv_report.md.
cv: conll
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
