"""Shared fixtures: where the real data in ../shared/data lives, and a skip when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # A parallel run (`make test PYTEST_ARGS="-n 2"`): one intra-op thread per worker process, or the workers'
    # torch thread pools fight over the cores. Set before any test module imports torch.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSETRACK_SHARED", REPO.parent / "shared"))
TESTDATA = SHARED / "data" / "mmpose_testdata"
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """``../shared/data/mmpose_testdata`` (real COCO / PoseTrack18 files); skips when absent."""
    if not TESTDATA.is_dir():
        pytest.skip(f"real test data not found at {TESTDATA} (set POSETRACK_SHARED to the shared/ folder)")
    return TESTDATA


SAMPLE_VIDEO = Path(os.environ.get("POSETRACK_VIDEO_CACHE", Path.home() / ".cache" / "posetrack" / "videos")) \
    / "vtest.avi"


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """OpenCV's real sample video vtest.avi (768x576, 10 frames/s, pedestrians on a campus road), fetched by
    ``make sample-video`` (Debian's opencv-doc, sha256-checked); skips when absent."""
    if not SAMPLE_VIDEO.is_file():
        pytest.skip(f"sample video not found at {SAMPLE_VIDEO} (make sample-video)")
    return SAMPLE_VIDEO


@pytest.fixture(scope="session")
def reference() -> Path:
    """``../shared/reference`` (checkpoint layouts, model stats, protocol); skips when absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference folder not found at {REFERENCE} (set POSETRACK_SHARED to the shared/ folder)")
    return REFERENCE
