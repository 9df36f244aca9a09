# corrax: `make test` and `make demo` create .venv (if missing) and install into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

JEC_FILE := $(wildcard ../shared/data/corrections/JME__2018_UL__jet_jerc.json.gz)
# real CMS files and the AGC reference, when the shared data sit beside the clone
CORRECTIONS_DIR := $(patsubst %/,%,$(dir $(JEC_FILE)))
AGC_REFERENCE := $(wildcard ../shared/data/agc/reference_histos_1_file_per_process.json)
AGC_OPTIONS := $(if $(CORRECTIONS_DIR),--corrections $(CORRECTIONS_DIR)) $(if $(AGC_REFERENCE),--reference $(AGC_REFERENCE))

.PHONY: test test-all fuzz demo study demo-corrections bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# test files run in parallel, one file per worker process (module fixtures stay shared)
PYTEST := $(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

test: $(STAMP)
	$(PYTEST)

# every real correction with 10^4 inputs over up to 8 string combinations
test-all: $(STAMP)
	$(PYTEST) -m "slow or not slow"

# long random-document runs (not derandomised); failures become @example cases
fuzz: $(STAMP)
	$(BIN)/python -m pytest tests/test_hypothesis.py --hypothesis-profile=fuzz -x

# the main job: the AGC analysis, hard and differentiable, optimised → results/
SIZE ?= 20000
demo: $(STAMP)
	$(BIN)/python -m corrax.agc --size $(SIZE) --cache agc-sample --output results $(AGC_OPTIONS)

# the full study behind the README's result: six held-out replicas (three seeds, each
# half trained once) → results-study/
study: $(STAMP)
	$(BIN)/python -m corrax.agc --size $(SIZE) --cache agc-sample --output results-study --replicas 6 $(AGC_OPTIONS)

# the corrections tour (values vs correctionlib, gradients, relaxations)
demo-corrections: $(STAMP)
	$(BIN)/python -m corrax.demo $(JEC_FILE)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/columnar.py --cache agc-sample
	$(BIN)/python benchmarks/agc.py --cache agc-sample $(if $(CORRECTIONS_DIR),--corrections $(CORRECTIONS_DIR))
	$(BIN)/python benchmarks/coffea_agc.py --cache agc-sample

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check src tests benchmarks notebooks/execute.py
	$(BIN)/ruff format --check src tests benchmarks notebooks/execute.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
