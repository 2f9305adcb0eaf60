# Set-up and the everyday jobs. `make setup` creates .venv and installs the project with its dev extra.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test demo bench clean mmdet

$(BIN)/posetrack: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/posetrack

# installs the project and fetches the embedded BlazePose weights (from the PyPI wheel mediapipe==0.10.14)
setup: $(BIN)/posetrack
	$(BIN)/posetrack weights fetch

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python benchmarks/estimators.py

# optional: mmengine + mmcv 2.1.0 built from source (-std=c++20, ~25 min on 2 idle cores) + mmdet 3.3.0
mmdet: setup
	bash scripts/build_mmcv.sh $(VENV)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

VIDEO ?= ../shared/data/mmpose_testdata/posetrack18/videos/000001_mpiinew_test/000001_mpiinew_test.mp4
demo: setup
	$(BIN)/posetrack track "$(VIDEO)" --render --out out/demo
