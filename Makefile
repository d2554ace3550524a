# Two commands on a fresh machine: `make demo` and `make test`. Everything installs itself into .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lsx-installed
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export PYTHONHASHSEED ?= 0

.PHONY: help install demo lint test test-all bench bench-scaling bench-threads bench-train bench-cli bench-permutation bench-byo bench-readme bench-reproduce reproduce reproduce-readme docs clean clean-outputs clean-cache

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test,launchers,lint]"
	touch $(STAMP)

## create .venv and install lsx (CPU torch 2.13, tests, launchers, lint tools)
install: $(STAMP)

## the quickstart: trains 3 SimpleCNN optima on the embedded digits, then a 2D filter-normalized surface
demo: $(STAMP)
	$(BIN)/python -m lsx.analyze experiment=quickstart

## lint and format check (ruff) and type-check the numerical core and the claims (mypy); configured in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check lsx tests benchmarks
	$(BIN)/ruff format --check lsx tests benchmarks
	$(BIN)/mypy

## the fast test suite (slow tests excluded; `make test-all` runs everything), one worker per core (at most 4)
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n auto --maxprocesses 4 --durations=15

## every test, slow ones included
test-all: $(STAMP)
	$(BIN)/python -m pytest -q

## benchmarks (interleaved, 1 thread): surface evaluation and Hessian vs the original codes; tables in outputs/bench/
bench: $(STAMP)
	$(BIN)/python -c "import loss_landscapes" 2>/dev/null || $(BIN)/python -m pip install -q "loss-landscapes==3.0.6"
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_surface.py | tee outputs/bench/surface.md
	$(BIN)/python benchmarks/bench_hessian.py | tee outputs/bench/hessian.md

## sharded landscape evaluation: ResNet-20 surface points/s on 1 vs 2 CPU processes (1 thread each); ARGS="--device cuda" for 1 vs all GPUs
bench-scaling: $(STAMP)
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_scaling.py $(ARGS) | tee outputs/bench/scaling$(if $(findstring cuda,$(ARGS)),-gpu).md

## cache hits on the command line: a finished lsx.train / lsx.analyze call vs `python -c "import torch"`
bench-cli: $(STAMP)
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_cli.py | tee outputs/bench/cli.md

## torch threads per job: whole CPU-scale jobs (make demo, a connector, training) at 1 vs 2 (and every core) threads
bench-threads: $(STAMP)
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_threads.py | tee outputs/bench/threads.md

## training throughput (images/s) of simple_cnn and resnet20 on CPU
bench-train: $(STAMP)
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_train.py | tee outputs/bench/train.md

## permutation benchmark (1 thread): weight matching of two ResNet-20s, activation matching vs one evaluation pass
bench-permutation: $(STAMP)
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_permutation.py --threads 1 | tee outputs/bench/permutation.md

## your-own-model benchmark (1 thread, needs lsx[hf]): byo_transformer's surface point vs a plain no_grad loop, HVP vs gradient, HVP memory vs a training step
bench-byo: $(STAMP)
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_byo.py --threads 1 | tee outputs/bench/byo.md

## copy the tables of the last benchmarks (outputs/bench/*.md) into docs/benchmarks.md (between <!-- bench:NAME --> markers)
bench-readme:
	$(BIN)/python benchmarks/update_readme.py $(wildcard outputs/bench/*.md)

## run the presets' claims on two disjoint unit sets, one job per core (PRESETS="fort_toy quickstart"; default all; ARGS="seeds=10-15 jobs=2"); writes outputs/reproduce/report.{html,json} only
reproduce: $(STAMP)
	$(BIN)/python -m lsx.reproduce $(PRESETS) $(ARGS)

## publish a complete report computed by one clean commit into docs/reproduce/ and regenerate the README's blocks from it (ARGS=--allow-mixed overrides)
reproduce-readme:
	$(BIN)/python -m lsx.claims.readme $(ARGS)

## per-job fixed costs (imports, Trainer construction, data loading) vs compute of `lsx.reproduce` jobs; table in outputs/bench/
bench-reproduce: $(STAMP)
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_reproduce.py | tee outputs/bench/reproduce.md

## regenerate docs/jobs.md (from conf/analysis/*.yaml and the job docstrings) and the preset list in docs/presets.md; tests/test_docs.py checks both are current
docs:
	$(BIN)/python -m lsx.cli.docs

## list the targets with their descriptions
help:
	@awk '/^## /{d=substr($$0,4); next} /^[a-zA-Z_-]+:/{if(d!=""){split($$1,t,":"); printf "  %-14s %s\n", t[1], d}} {d=""}' $(MAKEFILE_LIST)

OUTPUT_DIR = $${LSX_OUTPUT_DIR:-outputs}
CACHE_DIR = $${LSX_CACHE_DIR:-.lsx_cache}

## remove run outputs (LSX_OUTPUT_DIR or outputs/); trained models in the cache are kept
clean: clean-outputs

## remove run outputs only (what `make clean` does)
clean-outputs:
	rm -rf "$(OUTPUT_DIR)"

## delete every cached trained model (LSX_CACHE_DIR or .lsx_cache/): asks first; FORCE=1 skips the question
clean-cache:
	@dir="$(CACHE_DIR)"; \
	if [ "$(FORCE)" = 1 ]; then rm -rf "$$dir"; echo "removed $$dir"; \
	elif [ -t 0 ]; then printf "delete every trained model in %s? [y/N] " "$$dir"; read ans; \
	  if [ "$$ans" = y ] || [ "$$ans" = yes ]; then rm -rf "$$dir"; echo "removed $$dir"; else echo "kept $$dir"; fi; \
	else echo "clean-cache: not a terminal, refusing to delete $$dir without FORCE=1 (make clean-cache FORCE=1)"; exit 1; fi
