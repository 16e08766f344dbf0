# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test lint down bench clean

$(BIN)/clickstream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/clickstream ## create .venv with clickstream, the local stack and the dev tools

demo: install ## run the whole pipeline on the local stack
	$(BIN)/clickstream demo

lint: install ## ruff, mypy --strict and the import contracts (pyproject.toml)
	$(BIN)/ruff check clickstream tests bench dashboards
	$(BIN)/ruff format --check clickstream tests bench dashboards
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

test: lint ## lint, type-check, then every test (unit, integration, end to end)
	$(BIN)/pytest

down: ## stop the local stack
	$(BIN)/clickstream stack down

clean: down
	rm -rf $(VENV) .clickstream
