# Set-up and the everyday jobs. `make setup` creates .venv and installs the project with its dev extra.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test demo bench clean weights

$(BIN)/posetrack: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/posetrack

setup: $(BIN)/posetrack

test: setup weights
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python benchmarks/estimators.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

VIDEO ?= ../shared/data/mmpose_testdata/posetrack18/videos/000001_mpiinew_test/000001_mpiinew_test.mp4
weights: setup
	$(BIN)/posetrack weights fetch

demo: setup weights
	$(BIN)/posetrack track "$(VIDEO)" --render --out out/demo
