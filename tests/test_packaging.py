"""The wheel is complete: built from a copy of the sources, installed into a fresh venv, used from elsewhere.

Defect this guards: the tracking presets were not in the wheel (``package-data "*" = ["*.yaml"]`` matched
nothing), so a non-editable install could not load ``--preset default``. Here the wheel is installed with
``--no-deps`` into a new venv whose only view of third-party packages is the running venv's site-packages
(appended after its own, through a ``.pth`` line; the source tree is never on the path), and the check runs
from an empty folder so nothing of the repository is importable.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tracker", "estimators", "flow", "association", "eval_posetrack", "configs")


def _copy_sources(dst: Path) -> Path:
    """What the build needs (pyproject, README, the packages), so the build writes nothing into the tree."""
    src = dst / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


def build_wheel(src: Path, out: Path) -> Path:
    """Build the wheel of the project copy at ``src`` into ``out``; returns its path."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = sorted(out.glob("posetrack_pipeline-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, got {wheels}"
    return wheels[0]


def install_into_fresh_venv(wheel: Path, venv: Path) -> Path:
    """A new venv with only the wheel installed (no deps); the running venv's site-packages appended for the
    third-party dependencies. Returns the new venv's python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"installing {wheel.name} failed:\n{proc.stdout}\n{proc.stderr}"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


CHECK = textwrap.dedent("""
    import json
    import association, configs, estimators, eval_posetrack, flow, tracker
    from configs import list_presets, resolve_preset
    from tracker.config import load_track_config

    out = {"files": {m.__name__: m.__file__ for m in (association, configs, estimators, eval_posetrack, flow,
                                                       tracker)},
           "track": list_presets("track"), "train": list_presets("train")}
    for name in out["track"]:
        cfg = load_track_config(name)
        assert cfg is not None, name
    from estimators.training.config import load_config  # the training recipe loader
    for name in out["train"]:
        cfg = load_config(resolve_preset("train", name))
        assert cfg is not None, name
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the python of a fresh venv where it is installed)."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(_copy_sources(tmp), tmp / "dist")
    return wheel, install_into_fresh_venv(wheel, tmp / "venv")


def test_wheel_ships_every_package_and_preset(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in PACKAGES:
        assert f"{pkg}/__init__.py" in names, f"{wheel.name} lacks the package {pkg}"
    presets = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    assert any(p.startswith("track_") for p in presets) and any(p.startswith("train_") for p in presets)
    missing = [p for p in presets if f"configs/{p}" not in names]
    assert not missing, f"{wheel.name} lacks the presets {missing}"
    assert not any(n.startswith("tests/") for n in names), "the tests are not part of the wheel"


def test_installed_wheel_loads_every_preset_outside_the_source_tree(installed, tmp_path):
    _, python = installed
    venv = python.parent.parent
    proc = subprocess.run([str(python), "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(python.parent), "HOME": str(tmp_path), "PYTHONPATH": "",
                               "PYTHONNOUSERSITE": "1"})
    assert proc.returncode == 0, f"the installed wheel failed:\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, file in out["files"].items():
        assert Path(file).resolve().is_relative_to(venv.resolve()), f"{name} imported from {file}, not the wheel"
    expected_track = sorted(p.stem.removeprefix("track_") for p in (REPO / "configs").glob("track_*.yaml"))
    expected_train = sorted(p.stem.removeprefix("train_") for p in (REPO / "configs").glob("train_*.yaml"))
    assert out["track"] == expected_track and "default" in out["track"]
    assert out["train"] == expected_train


def test_installed_console_script_runs(installed, tmp_path):
    _, python = installed
    script = python.parent / "posetrack"
    assert script.is_file(), "the wheel installs no posetrack console script"
    proc = subprocess.run([str(script), "track", "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"PATH": str(python.parent), "HOME": str(tmp_path), "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert "--preset" in proc.stdout


def test_metadata_has_ranges_and_constraints_pin_them(installed):
    """Ranges in the wheel's metadata, the exact versions in constraints.txt (what `make setup` installs)."""
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    extras = {line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Provides-Extra:")}
    assert {"plot", "blazepose", "mmdet", "dev"} <= extras, extras
    pinned = [r for r in requires if "==" in r.split(";")[0]]
    assert not pinned, f"exact pins belong in constraints.txt, not the metadata: {pinned}"
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not an exact pin NAME==VERSION"
            pins[name.strip().lower().replace("_", "-")] = version
    core = [r.split(";")[0] for r in requires if "extra ==" not in r]
    names = [re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in core]
    missing = [n for n in names if n not in pins]
    assert not missing, f"constraints.txt pins no version of {missing}"
