# Two commands for a new user: `make train` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU wheel unless a GPU is present (an unpinned torch pulls the multi-GB CUDA build).
TORCH := torch==2.13.0

.PHONY: setup train retrain test lint cv calibrate clean labelstudio conll warmstart serve

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,benchmark,onnx,ray,serve]"
	touch $@

setup: $(VENV)/.installed

## Label Studio in its own venv (.venv-labelstudio) for the round-trip test; a no-op once installed.
labelstudio:
	PYTHON=$(PYTHON) bash scripts/labelstudio_env.sh

# CoNLL-2003 for the NER warm start: CONLL=/path (a folder with train.txt, dev.txt, test.txt), else $$NEWSFRAME_CONLL,
# ../shared/benchmarks/conll2003 or the Hugging Face Hub copy (src/data/conll.py). Without any, NER trains from the
# plain packaged model (experiment=seeds_ner_plain), a weaker model, and the run says so.
CONLL ?=
ONTO := runs/conll2003-onto
CONLL_MODEL := $(ONTO)/run/model/model.safetensors
# A previous run folder is kept under a new name, never overwritten.
keep = if [ -d $(1) ]; then mv $(1) $(1).$$(date +%Y%m%d-%H%M%S); echo "previous $(1) kept as $(1).<time>"; fi
NER_EXPERIMENT = $$(if [ -f $(CONLL_MODEL) ]; then echo seeds_ner; else echo seeds_ner_plain; fi)

## The model that the seed NER model warm-starts from (built once; fails if no CoNLL-2003): CoNLL-2003 retyped to
## our seven types by spaCy en_core_web_sm (src/data/retype_conll.py), then two CPU epochs on it (~13 min).
conll: setup
	$(PY) -m src.data.conll $(if $(CONLL),--dir $(abspath $(CONLL)))
	$(MAKE) --no-print-directory $(CONLL_MODEL)
$(ONTO)/retyping.json: | setup
	$(PY) -m src.data.retype_conll --out $(ONTO) $(if $(CONLL),--dir $(abspath $(CONLL)))
# Built again when its recipe (the retyping or the experiment config) is newer than the model; the old one is kept.
ONTO_RECIPE := configs/experiment/conll2003_onto_warmstart.yaml
$(CONLL_MODEL): $(ONTO)/retyping.json $(ONTO_RECIPE) | setup
	@t=$$(date +%Y%m%d-%H%M%S); if [ -f $(CONLL_MODEL) ]; then mv $(ONTO)/run $(ONTO)/run.$$t; \
	  echo "$(ONTO)/run is older than its recipe ($(ONTO_RECIPE) or the retyping): kept as $(ONTO)/run.$$t, building it again"; \
	elif [ -d $(ONTO)/run ]; then mv $(ONTO)/run $(ONTO)/run.incomplete-$$t; \
	  echo "$(ONTO)/run was an unfinished build: kept as $(ONTO)/run.incomplete-$$t"; fi
	$(PY) -m src.train data=conll2003 experiment=conll2003_onto_warmstart hydra.run.dir=$(ONTO)/run

# The NER warm start for `make train` and `make cv`: built once (rebuilt when its recipe changed) where CoNLL-2003 is
# found; without it NER trains from the packaged model (NER_EXPERIMENT), and the console says so. Never fails.
warmstart: setup
	@if [ -f $(CONLL_MODEL) ] && $(MAKE) -q $(CONLL_MODEL) 2>/dev/null; then \
	  echo "NER warm start: $(ONTO)/run (built earlier; remove it to rebuild)"; \
	elif [ -f $(CONLL_MODEL) ]; then \
	  $(MAKE) --no-print-directory $(CONLL_MODEL) || echo "The CoNLL-2003 rebuild failed (above): NER trains from the packaged model"; \
	elif [ -n "$(CONLL)" ]; then $(MAKE) --no-print-directory conll; \
	elif $(PY) -m src.data.conll; then \
	  $(MAKE) --no-print-directory $(CONLL_MODEL) || echo "The CoNLL-2003 build failed (above): NER trains from the packaged model"; fi

# Stance-labelled pages of other outlets (third-party text, used by path, never copied here): SUPPLEMENT="a.jsonl ...",
# else ../shared/supplement/*.jsonl when it is there. They join every training split (NER skips them: their entities
# are not annotated); `make cv` also holds each of their outlets out in turn. SUPPLEMENT= trains on the seeds alone.
SUPPLEMENT ?= $(wildcard ../shared/supplement/*.jsonl)
comma := ,
space := $(subst ,, )
EXTRA = $(if $(strip $(SUPPLEMENT)),'data.extra=[$(subst $(space),$(comma),$(strip $(abspath $(SUPPLEMENT))))]')
SUPPLEMENT_LINE = if [ -n "$(strip $(SUPPLEMENT))" ]; then echo "Stance supplement: $(strip $(SUPPLEMENT)) (added to training)"; \
  else echo "Stance supplement: none (no ../shared/supplement/*.jsonl, no SUPPLEMENT=): the seed corpus alone"; fi

## Train the NER and the stance model on the seed corpus (fold 0 held out) and print their per-label reports.
## The NER model warm-starts from CoNLL-2003 where one is found (see CONLL above), else from the packaged model.
train: setup
	$(PY) -m src.data validate data/annotations/seeds.jsonl
	@$(MAKE) --no-print-directory warmstart
	$(call keep,runs/ner)
	@$(SUPPLEMENT_LINE)
	$(PY) -m src.train task=ner experiment=$(NER_EXPERIMENT) $(EXTRA) hydra.run.dir=runs/ner
	$(call keep,runs/stance)
	$(PY) -m src.train task=stance $(EXTRA) hydra.run.dir=runs/stance
	@echo "The figures above are for one held-out article (fold 0); they vary from article to article (stance macro-F1 by ±0.12-0.19 over the five folds): make cv gives the cross-validated ones."

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
	@$(SUPPLEMENT_LINE)
	$(PY) -m src.train task=ner experiment=$(NER_EXPERIMENT) data.fold=null data.path=$(abspath $(CORPUS)) $(EXTRA) hydra.run.dir=runs/ner
	$(call keep,runs/stance)
	$(PY) -m src.train task=stance data.fold=null data.path=$(abspath $(CORPUS)) $(EXTRA) hydra.run.dir=runs/stance

# Also store the stance decision bias fitted out of fold (it changes decisions; README "Scores you can trust").
DECISION_BIAS ?= false

## Leave-one-article-out cross-validation of both tasks, pooled with the baselines into multirun/cv/cv_report.md.
## NER uses the recipe `make train` uses here: the CoNLL-2003 warm start where one is found, else the plain model.
## With a supplement (SUPPLEMENT above) it trains in every fold, and stance is also cross-validated leaving one
## outlet of the supplement out at a time (multirun/cv-outlets/cv_report.md): the figure for unseen outlets.
## Their tables, with command and date, replace the blocks of those multiruns in RESULTS (RESULTS= writes none).
RESULTS ?= docs/results.md
RESULTS_ARG = $(if $(strip $(RESULTS)),results=$(RESULTS))
RUN_ARGS = trainer.disable_tqdm=true trainer.save_strategy=no
CV_ARGS = data.fold=0,1,2,3,4 hydra.sweep.dir=multirun/cv $(RUN_ARGS)
cv: setup
	@$(MAKE) --no-print-directory warmstart
	@$(SUPPLEMENT_LINE)
	$(call keep,multirun/cv)
	$(PY) -m src.train -m task=ner experiment=$(NER_EXPERIMENT) $(EXTRA) $(CV_ARGS)
	$(PY) -m src.train -m task=stance $(EXTRA) $(CV_ARGS)
	$(PY) -m src.evaluate cv=multirun/cv behaviour=data/behaviour/stance.jsonl $(RESULTS_ARG)
	@if [ -n "$(strip $(SUPPLEMENT))" ]; then $(call keep,multirun/cv-outlets); \
	  $(PY) -m src.train -m task=stance $(EXTRA) data.fold=null data.extra_fold=$$($(PY) -m src.data outlets --folds $(SUPPLEMENT)) \
	    hydra.sweep.dir=multirun/cv-outlets $(RUN_ARGS) && $(PY) -m src.evaluate cv=multirun/cv-outlets baselines=false calibration=false \
	    behaviour=data/behaviour/stance.jsonl $(RESULTS_ARG); fi
	@echo "Next: make calibrate (stores the out-of-fold temperature in runs/ner and runs/stance)"

## Store the CV's out-of-fold calibration in the models of `make train` (same settings), so a score is a probability.
## The stance temperature is extrapolated to the model trained on every article: stance models one article smaller
## than the fold models are trained for it (multirun/cv-size, 20 models on the seeds, reused until make cv runs again).
calibrate: setup
	@test -d multirun/cv || { echo "error: no multirun/cv: run make cv first" >&2; exit 2; }
	@if [ multirun/cv/cv_metrics.json -nt multirun/cv-size/nested_calibration.json ]; then $(call keep,multirun/cv-size); fi
	$(PY) -m src.evaluate.nested_cv --task stance --calibration --outer multirun/cv --out multirun/cv-size $(EXTRA)
	$(PY) -m src.evaluate cv=multirun/cv baselines=false behaviour=data/behaviour/stance.jsonl \
	  'store=[runs/ner,runs/stance]' decision_bias=$(DECISION_BIAS) size_check=multirun/cv-size/nested_calibration.json

## Serve both models over HTTP on 127.0.0.1:8000 (POST /v1/annotate, docs at /docs; README "Service").
serve: setup
	$(PY) -m src.serve --ner runs/ner --stance runs/stance

## Run the whole test suite (unit, integration and the slow end-to-end tests), one pytest-xdist worker per core,
## each test file on one worker (its module fixtures start once) and each worker one thread (two torch processes with
## a thread per core each slow each other down many times over).
test: setup labelstudio
	$(PY) -m ruff check src scripts tests
	$(VENV)/bin/lint-imports
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n auto --dist loadfile

lint: setup
	$(PY) -m ruff check src scripts tests
	$(PY) -m ruff format --check src scripts tests

clean:
	rm -rf $(VENV) .venv-labelstudio outputs multirun runs .pytest_cache
