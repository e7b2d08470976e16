# Two commands do all set-up on a fresh machine: `make leaderboard` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: leaderboard test install lint clean readme-dag

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

leaderboard: $(STAMP)
	$(BIN)/snakemake -c $(CORES) results/leaderboard.md

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakemake --lint --configfile .test/config_tiny/config.yaml
	$(BIN)/snakefmt --check workflow

clean:
	rm -rf results .snakemake

readme-dag: $(STAMP)
	$(BIN)/python -m medrepro.docs .
