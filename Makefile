# software_dna — every target creates and reuses the local virtual environment (.venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck bench stress clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[server,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

typecheck: lint

test: $(STAMP) lint
	$(BIN)/python -m pytest

# The reliability and security suite at full scale (one line per family; see docs/security.md).
stress: $(STAMP)
	$(BIN)/python -m tests.stress

bench: $(STAMP)
	$(BIN)/python bench/import_check.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
