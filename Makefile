# Two commands on a fresh machine: `make demo` and `make test`. Everything installs itself into .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lsx-installed
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export PYTHONHASHSEED ?= 0

.PHONY: install demo test test-all bench bench-train bench-readme clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test,launchers]"
	touch $(STAMP)

install: $(STAMP)

## the quickstart: trains 3 SimpleCNN optima on the embedded digits, then a 2D filter-normalized surface
demo: $(STAMP)
	$(BIN)/python -m lsx.analyze experiment=quickstart

## the fast test suite (slow tests excluded; `make test-all` runs everything)
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

## benchmarks (interleaved, 1 thread): surface evaluation and Hessian vs the original codes; tables in outputs/bench/
bench: $(STAMP)
	$(BIN)/python -c "import loss_landscapes" 2>/dev/null || $(BIN)/python -m pip install -q "loss-landscapes==3.0.6"
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_surface.py | tee outputs/bench/surface.md
	$(BIN)/python benchmarks/bench_hessian.py | tee outputs/bench/hessian.md

## training throughput (images/s) of simple_cnn and resnet20 on CPU
bench-train: $(STAMP)
	mkdir -p outputs/bench
	$(BIN)/python benchmarks/bench_train.py | tee outputs/bench/train.md

## copy the tables of the last `make bench` / `make bench-train` into README.md (between <!-- bench:NAME --> markers)
bench-readme:
	$(BIN)/python benchmarks/update_readme.py $(wildcard outputs/bench/*.md)

clean:
	rm -rf outputs multirun .lsx_cache
