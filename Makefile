# The README's two commands: `make demo` and `make test`. Both set up .venv first (idempotent).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test benchmark clean

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) tools/run_synthetic_demo.py --output output/demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

benchmark: setup
	$(PY) tools/benchmark.py

clean:
	rm -rf output .pytest_cache
