# Two commands on a fresh machine: `make demo` (train ALI on the 25-Gaussian grid) and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN    := runs/toy25-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test gpu-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch 2.13.0 first (the CPU build on this disk); a GPU user's own torch>=2.4 is kept.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ali train --config toy25 --out $(RUN)
	@echo "figure: $(RUN)/comparison.png   metrics: $(RUN)/metrics.json   report: $(RUN)/report.html"

test: $(STAMP)
	$(VENV)/bin/ruff check ali tests benchmarks
	$(VENV)/bin/ruff format --check ali tests benchmarks
	$(PY) -m pytest -q -p no:cacheprovider

# Every method, precision and paper architecture, resume, torchrun and compile on this machine's
# GPU (the CPU without one): a pass/fail table with steps/s and peak memory, as it goes.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --out runs/gpu-check-$(shell date +%Y%m%d-%H%M%S)

clean:
	rm -rf runs
