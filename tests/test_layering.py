"""No package imports "up": the layering of docs/architecture.md, checked on the source of every module.

    configs, association (the base)  <  flow  <  eval_posetrack  <  estimators  <  tracker (the app)

Every ``import`` statement anywhere in a file counts (inside functions too: a lazy import is still a
dependency), and so does ``importlib.import_module("literal.name")``. ``estimators.training`` may also import
``eval_posetrack``; nothing outside it imports it except the top-level command-line dispatcher
``tracker/cli.py``. The base imports no torch, and loading the tracking config imports no torch (a typo in a
flag is reported before the slow import).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ("configs", "association", "flow", "eval_posetrack", "estimators", "tracker")
# what each package may import of ours (besides itself)
ALLOWED: dict[str, set[str]] = {
    "configs": set(),
    "association": set(),
    "flow": {"configs", "association"},
    "eval_posetrack": {"configs", "association", "flow"},
    "estimators": {"configs", "association", "flow"},
    "tracker": {"configs", "association", "flow", "eval_posetrack", "estimators"},
}
TRAINING = "estimators.training"
TRAINING_IMPORTERS = {"tracker/cli.py"}  # the top-level dispatcher, lazily
TORCH_FREE_PACKAGES = ("configs", "association")
HEAVY = ("torch", "torchvision")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of everything ``path`` imports, anywhere in the file.

    ``from A import b`` yields ``A.b`` (b may be a submodule or an attribute: both depend on A); relative
    imports are resolved against the module's own package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[:-(node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found += [(node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base) for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and not node.args[0].value.startswith("."):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):  # importlib.import_module("pkg.mod") with a literal name
                found.append((node.lineno, node.args[0].value))
    return found


def _files(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts)


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _is_training(name: str) -> bool:
    return name == TRAINING or name.startswith(TRAINING + ".")


@pytest.mark.parametrize("package", OURS)
def test_no_import_goes_up(package):
    bad = []
    for path in _files(package):
        rel = path.relative_to(REPO).as_posix()
        in_training = rel.startswith("estimators/training/")
        for line, name in imports_of(path):
            top = _top(name)
            if top not in OURS or top == package:
                continue
            if top in ALLOWED[package] or (in_training and top == "eval_posetrack"):
                continue
            bad.append(f"{rel}:{line} imports {name}")
    assert not bad, f"{package} may import only {sorted(ALLOWED[package]) or 'nothing of ours'}:\n" + "\n".join(bad)


def test_only_the_dispatcher_imports_training():
    bad = []
    for package in OURS:
        for path in _files(package):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith("estimators/training/") or rel in TRAINING_IMPORTERS:
                continue
            bad += [f"{rel}:{line} imports {name}" for line, name in imports_of(path) if _is_training(name)]
    assert (REPO / "estimators" / "training" / "__init__.py").is_file(), "estimators/training is not a package"
    assert not bad, f"only {sorted(TRAINING_IMPORTERS)} may import {TRAINING}:\n" + "\n".join(bad)


def test_other_packages_use_eval_posetrack_through_its_top_level():
    """``from eval_posetrack import X``, never ``eval_posetrack.formats`` etc.: its modules can move freely."""
    bad = []
    for package in OURS:
        if package == "eval_posetrack":
            continue
        for path in _files(package):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else
                         [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                bad += [f"{path.relative_to(REPO).as_posix()}:{node.lineno} imports {n}"
                        for n in names if n.startswith("eval_posetrack.")]
    assert not bad, "import eval_posetrack's public names from the package top level:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", TORCH_FREE_PACKAGES)
def test_base_imports_no_torch(package):
    bad = [f"{path.relative_to(REPO).as_posix()}:{line} imports {name}"
           for path in _files(package) for line, name in imports_of(path) if _top(name) in HEAVY]
    assert not bad, f"the base package {package} must not import torch:\n" + "\n".join(bad)


@pytest.mark.parametrize("modules", ["configs, tracker.config", "estimators", "association, eval_posetrack"])
def test_import_does_not_load_torch(modules):
    code = (f"import sys, json; import {modules}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(HEAVY)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not loaded, f"`import {modules}` loads {', '.join(loaded[:5])}"


def test_the_checker_sees_relative_and_lazy_imports(tmp_path, monkeypatch):
    """The parser itself: relative imports resolve, imports inside functions count."""
    pkg = tmp_path / "flow" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "flow" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .. import base\n")
    (pkg / "mod.py").write_text("import importlib\ndef f():\n    from ...tracker import cli\n"
                                "    import estimators.factory\n    importlib.import_module('eval_posetrack.cli')\n"
                                "from . import sibling\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert imports_of(pkg / "__init__.py") == [(1, "flow.base")]
    assert sorted(n for _, n in imports_of(pkg / "mod.py")) == ["estimators.factory", "eval_posetrack.cli",
                                                                 "flow.sub.sibling", "importlib", "tracker.cli"]


def test_the_architecture_doc_config_example_is_a_valid_config():
    """docs/architecture.md's tracking config example loads as it is (the document describes the real schema)."""
    import yaml

    from configs.loader import from_dict
    from tracker.config import TrackConfig

    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    cfg = from_dict(TrackConfig, yaml.safe_load(block), "docs/architecture.md")
    assert cfg.estimator.kind == "topdown" and cfg.detector.kind == "nanodet"  # the default's kinds
