# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench lint clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first and pinned: the CPU wheel on disk; an open range pulls GBs of CUDA wheels.
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[test,monailabel]"
	# MONAI Label's task classes for tests/integrations/test_monailabel.py, without its pins (another torch and a
	# CUDA torchvision): the light packages its bundle tasks import are the extra `monailabel`
	$(PY) -m pip install --no-deps "monailabel==0.8.5"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check monai_nacl tests benchmarks scripts
	$(VENV)/bin/ruff format --check monai_nacl tests benchmarks scripts
	$(PY) -m pytest -q -n 2 --dist loadfile tests

demo: $(STAMP)
	$(PY) -m monai_nacl demo

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check monai_nacl tests benchmarks scripts
	$(VENV)/bin/ruff format --check monai_nacl tests benchmarks scripts

clean:
	rm -rf $(VENV) build *.egg-info
