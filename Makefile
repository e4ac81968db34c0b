# Every target installs what it needs into .venv: a fresh machine needs only Python 3.10+ and pip.
# pip fetches the pinned torch wheel (pip knows where a machine keeps its CPU build) and installs uv; uv installs the rest,
# torch first, so that the package's torch range installs nothing more. A whole test venv: 47 s with uv, 115 s with pip.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
OUT ?= out/demo
# Bytecode compiled once at install: the notebook kernels would otherwise recompile torch at every start.
UV_INSTALL := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python

.PHONY: demo test notebooks site student bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	$(BIN)/python -m pip download -q --no-deps -d $(VENV)/wheels "$(TORCH)"
	$(UV_INSTALL) $(VENV)/wheels/torch-*.whl

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(UV_INSTALL) -e .
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(UV_INSTALL) -e ".[dev,notebooks,site]"
	touch $@ $(VENV)/.core

$(VENV)/.bench: $(VENV)/.dev  # torch pinned again: torchcfm's torchvision would otherwise pull a newer, CUDA torch
	$(UV_INSTALL) -e ".[bench]" $(VENV)/wheels/torch-*.whl
	touch $@

demo: $(VENV)/.core  ## the main job: 1-RF and two reflow rounds, figures and metrics in $(OUT)
	$(BIN)/python -m toyflow reflow --out $(OUT)

# Two pytest workers with one torch thread each use both cores without the thread contention that slows torch down
# (each notebook stays in one worker: --dist loadfile). The browser test needs Chromium: `.ci/run` installs it.
# 00_tour is executed by tests/test_course.py's Colab-like session, from the installed wheel, so nbval skips it.
test: $(VENV)/.dev  ## unit tests, doctests, every notebook executed top to bottom, the course website in Chromium
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=10 tests toyflow --nbval-lax --nbval-current-env notebooks --deselect notebooks/00_tour.ipynb

notebooks: $(VENV)/.dev  ## re-execute the notebooks in place, with their outputs
	MPLBACKEND=module://matplotlib_inline.backend_inline $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 notebooks/*.ipynb
	$(BIN)/python docs/course.py sync  # strip widget state and progress text from the saved outputs

site: $(VENV)/.dev  ## the course website in out/site, from the executed notebooks (math as MathML, no network needed)
	$(BIN)/python docs/course.py site

student: $(VENV)/.dev  ## the student edition in out/student: solutions removed (nbgrader markers), outputs cleared
	$(BIN)/python docs/course.py student --out out/student

# metric_agreement.py reads what the others wrote, so it runs last.
bench: $(VENV)/.bench  ## speed and quality tables (JSON in benchmarks/results/, committed: the site draws them)
	for script in $(filter-out benchmarks/common.py benchmarks/metric_agreement.py,$(wildcard benchmarks/*.py)); do \
		$(BIN)/python $$script || exit 1; done
	$(BIN)/python benchmarks/metric_agreement.py

lint: $(VENV)/.dev
	$(BIN)/ruff check toyflow tests benchmarks

clean:
	rm -rf $(VENV) out
