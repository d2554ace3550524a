# Two commands on a fresh machine: `make demo` and `make test`. Everything installs itself into .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lsx-installed
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export PYTHONHASHSEED ?= 0

.PHONY: install demo test test-all bench bench-train reproduce clean

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

## surface-evaluation benchmark: engine vs per-point baseline vs forward-pass floor
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_surface.py

## training throughput (images/s) of simple_cnn and resnet20 on CPU
bench-train: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py

## run the presets' paper claims over seeds (PRESETS="fort_toy quickstart"; default: every preset that declares claims),
## write outputs/reproduce/report.html + report.json, then regenerate the README's results block
reproduce: $(STAMP)
	$(BIN)/python -m lsx.reproduce $(PRESETS)
	$(BIN)/python -m lsx.claims.readme

clean:
	rm -rf outputs multirun .lsx_cache
