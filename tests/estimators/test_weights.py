"""The embedded BlazePose weights cache: locations, sha256 checks, atomic extraction, refetch of corrupt files."""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from estimators.blazepose import weights as W


def _cached_or_skip() -> tuple[Path, Path]:
    try:
        return W.blazepose_paths(verify=True)
    except W.WeightsError as exc:
        pytest.skip(f"BlazePose weights not in the cache ({exc}); run `posetrack weights fetch`")


def _wheel_from_cache(tmp_path: Path) -> Path:
    """A local stand-in for an already-downloaded wheel: a zip holding the real cached model files at their
    wheel member paths (no network). The real wheel is used instead when $POSETRACK_TEST_WHEEL names it."""
    env = os.environ.get("POSETRACK_TEST_WHEEL")
    if env and Path(env).is_file():
        return Path(env)
    det, lm = _cached_or_skip()
    wheel = tmp_path / "mediapipe-local-copy.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(det, W.DETECTOR.member)
        zf.write(lm, W.LANDMARK.member)
        zf.writestr("mediapipe/__init__.py", "")
    return wheel


def test_weights_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("POSETRACK_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.weights_dir() == tmp_path / "xdg" / "posetrack" / "weights"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert W.weights_dir() == Path.home() / ".cache" / "posetrack" / "weights"
    monkeypatch.setenv("POSETRACK_WEIGHTS_DIR", str(tmp_path / "env"))
    assert W.weights_dir() == tmp_path / "env"
    assert W.weights_dir(tmp_path / "arg") == tmp_path / "arg"


def test_cached_weights_hashes_verified():
    det, lm = _cached_or_skip()
    for path, spec in ((det, W.DETECTOR), (lm, W.LANDMARK)):
        assert path.stat().st_size == spec.size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    assert [s.status for s in W.list_weights()] == ["ok", "ok"]


def test_missing_weights_error_says_what_to_do(tmp_path):
    with pytest.raises(W.WeightsMissingError, match="posetrack weights fetch") as info:
        W.blazepose_paths(tmp_path)
    assert "pose_detection.tflite" in str(info.value)
    assert isinstance(info.value, OSError)


def test_wrong_member_content_is_rejected_and_leaves_nothing(tmp_path):
    fake = tmp_path / "fake.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(W.DETECTOR.member, b"not a model" * 100)
        zf.writestr(W.LANDMARK.member, b"not a model either")
    target = tmp_path / "cache"
    with pytest.raises(W.WeightsHashError, match="sha256"):
        W.fetch_blazepose(target, wheel=fake)
    assert list(target.iterdir()) == []  # no partial file, no .part left behind


def test_truncated_zip_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.whl"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(W.WeightsHashError, match="not a valid wheel"):
        W.fetch_blazepose(tmp_path / "cache", wheel=bad)


def test_corrupt_cache_file_detected_and_refetched(tmp_path):
    wheel = _wheel_from_cache(tmp_path)
    target = tmp_path / "cache"
    det, lm = W.fetch_blazepose(target, wheel=wheel)
    assert [s.status for s in W.list_weights(target)] == ["ok", "ok"]
    assert wheel.is_file()  # a wheel passed in is the caller's: not deleted

    # Same size, one byte flipped: only the hash can tell.
    data = bytearray(det.read_bytes())
    data[len(data) // 2] ^= 0xFF
    det.write_bytes(bytes(data))
    lm_mtime = lm.stat().st_mtime_ns
    assert [s.status for s in W.list_weights(target)] == ["bad-hash", "ok"]
    with pytest.raises(W.WeightsHashError, match="corrupt"):
        W.blazepose_paths(target)

    W.fetch_blazepose(target, wheel=wheel)  # no force: only the bad file is replaced
    assert [s.status for s in W.list_weights(target)] == ["ok", "ok"]
    assert lm.stat().st_mtime_ns == lm_mtime

    lm.write_bytes(lm.read_bytes()[:1000])  # a partial file
    assert W.list_weights(target)[1].status == "bad-size"
    assert W.fetch_blazepose(target, wheel=wheel) == (det, lm)
    assert W.blazepose_paths(target) == (det, lm)
    assert sorted(p.name for p in target.iterdir()) == [W.DETECTOR.name, W.LANDMARK.name]


def test_offline_fetch_is_a_clear_error(tmp_path, monkeypatch):
    # An index nobody listens on: pip fails at once; the message must say what failed and what to do.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(W.WeightsError, match="could not download mediapipe==0.10.14") as info:
        W.fetch_blazepose(tmp_path / "cache")
    assert "--wheel" in str(info.value)
    assert not any((tmp_path / "cache").iterdir())


def test_weights_cli_list_and_fetch(tmp_path, capsys):
    from tracker.cli import main

    target = tmp_path / "cache"
    assert main(["weights", "list", "--dir", str(target), "--only", "blazepose"]) == 1
    out = capsys.readouterr().out
    assert "missing" in out and "pose_landmark_full.tflite" in out and "posetrack weights fetch" in out

    wheel = _wheel_from_cache(tmp_path)
    assert main(["weights", "fetch", "--only", "blazepose", "--dir", str(target), "--wheel", str(wheel)]) == 0
    assert "fetched (was missing)" in capsys.readouterr().out
    assert main(["weights", "list", "--dir", str(target), "--only", "blazepose"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok ") == 2 and f"{W.LANDMARK.size:,} B" in out and W.DETECTOR.sha256[:16] in out

    nope = str(tmp_path / "nope.whl")  # fetching again: nothing to do
    assert main(["weights", "fetch", "--only", "blazepose", "--dir", str(target), "--wheel", nope]) == 0
    assert "kept (sha256 ok)" in capsys.readouterr().out
    assert main(["weights", "fetch", "--only", "blazepose", "--dir", str(target), "--force", "--wheel", nope]) == 2
    assert "nope.whl" in capsys.readouterr().err
