# Two set-up commands (README): `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-avx2 lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned for development and CI (a CPU wheel is on the build machines' disk)
	$(PY) -m pip install -q "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples tools
	$(PY) -m ruff format --check src tests benchmarks examples tools
	$(PY) -m mypy

test: $(STAMP) lint
	$(PY) -m pytest -q

# the CPU-sensitive tests again on the kernels of an AVX2-only x86 CPU (no AVX-512, VNNI, AMX or native bf16):
# oneDNN and PyTorch honour these limits; inductor's cache does not key on them, so it gets its own folder
test-avx2: $(STAMP)
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 TORCHINDUCTOR_CACHE_DIR="$$(mktemp -d)" \
		$(PY) -m pytest -q tests/optimize tests/flops tests/measure/test_cpu_caps.py

bench: $(STAMP)
	$(PY) benchmarks/bench_overhead.py
	$(PY) benchmarks/bench_startup.py
	$(PY) benchmarks/bench_inference.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
