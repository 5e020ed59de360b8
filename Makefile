.PHONY: install test lint format type demo bench clean

PYTHON ?= python

install:
	$(PYTHON) -m pip install -e ".[test]"

## The whole test suite (unit + integration against the bundled emulator + real Chromium login).
test:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

type:
	$(PYTHON) -m mypy langchain_hailuo tests examples

## A streamed two-turn LangChain chat: real Hailuo when credentials are set, the emulator otherwise.
demo:
	$(PYTHON) -m langchain_hailuo.demo

bench:
	$(PYTHON) -m benchmarks.run

clean:
	rm -rf .venv build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
