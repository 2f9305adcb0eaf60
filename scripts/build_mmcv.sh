#!/usr/bin/env bash
# Build mmcv 2.1.0 (with its C++ ops, CPU only) from source against the torch already installed in a venv,
# then install mmengine and mmdet 3.3.0 on top, for the `mmdet` person detector (tracker/detectors/).
#
# usage: scripts/build_mmcv.sh [VENV]        (default: .venv)
# env:   MAX_JOBS (default 1: parallel compile jobs), WORKDIR (default: a fresh mktemp dir), KEEP_WORKDIR=1
#
# Why it is not just `pip install mmcv==2.1.0`:
#  * there is no mmcv 2.1.0 wheel for this torch, so the ops are compiled here (~25 min on 1 core);
#  * the build must see the installed torch: `--no-build-isolation`;
#  * mmcv 2.1.0's setup.py hard-codes `-std=c++17`, which is passed AFTER $CXXFLAGS and so wins, but
#    torch >= 2.10 headers need C++20: CXXFLAGS cannot fix it, so we patch the flag in setup.py;
#  * setup.py imports `pkg_resources`, removed from setuptools >= 81 (the venv has a newer one): we patch
#    that import to importlib.metadata + packaging instead of downgrading the venv's setuptools;
#  * mmengine declares `opencv-python`, which would install a second cv2 over opencv-python-headless (and
#    needs libGL): mmengine, mmcv and mmdet are installed with --no-deps; their real runtime deps are the
#    project's `mmdet` extra (pyproject.toml), installed first.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-.venv}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "build_mmcv.sh: error: no python at $PY (give the venv folder)" >&2; exit 2; }
PIP=("$PY" -m pip)
export MAX_JOBS="${MAX_JOBS:-1}"
WORKDIR="${WORKDIR:-$(mktemp -d -t mmcv_build.XXXXXX)}"
mkdir -p "$WORKDIR"
START=$(date +%s)
echo "== venv $VENV, torch $("$PY" -c 'import torch; print(torch.__version__)'), MAX_JOBS=$MAX_JOBS, workdir $WORKDIR"

echo "== 1/4 runtime dependencies: the project's mmdet extra (no opencv-python: opencv-python-headless is there)"
"${PIP[@]}" install -c "$REPO/constraints.txt" -e "$REPO[mmdet]"
"${PIP[@]}" install --no-deps "mmengine>=0.10,<1.0"

echo "== 2/4 fetch the mmcv 2.1.0 source distribution"
# Metadata of the sdist is prepared in an isolated env; its setup.py needs pkg_resources -> old setuptools there.
printf 'setuptools<70\n' > "$WORKDIR/build-constraints.txt"
PIP_CONSTRAINT="$WORKDIR/build-constraints.txt" "${PIP[@]}" download --no-deps --no-binary :all: \
    mmcv==2.1.0 -d "$WORKDIR"
rm -rf "$WORKDIR/mmcv-2.1.0"
tar -xzf "$WORKDIR/mmcv-2.1.0.tar.gz" -C "$WORKDIR"
SRC="$WORKDIR/mmcv-2.1.0"

echo "== 3/4 patch setup.py (C++20, no pkg_resources) and compile mmcv with ops (CPU)"
"$PY" - "$SRC/setup.py" <<'PYEOF'
import re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
old_import = "from pkg_resources import DistributionNotFound, get_distribution, parse_version\n"
if old_import not in text:
    sys.exit(f"{path}: expected pkg_resources import line not found; mmcv source changed?")
text = text.replace(old_import,
    "from importlib.metadata import PackageNotFoundError as DistributionNotFound\n"
    "from importlib.metadata import distribution as get_distribution\n"
    "from packaging.version import parse as parse_version\n")
text, n = re.subn(r"([-/]std[=:])c\+\+1[47]", r"\1c++20", text)
if n == 0:
    sys.exit(f"{path}: no -std=c++14/17 flag found to patch")
open(path, "w", encoding="utf-8").write(text)
print(f"patched {path}: pkg_resources import, {n} -std flags -> c++20")
PYEOF
# FORCE_CUDA=0: CPU ops only (no GPU here; nvcc may exist but is not used).
( cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=0 "${PIP[@]}" install -v --no-build-isolation --no-deps . )

echo "== 4/4 mmdet 3.3.0"
"${PIP[@]}" install --no-deps mmdet==3.3.0

"$PY" - <<'PYEOF'
import mmcv, mmengine, mmdet
from mmcv.ops import nms, RoIAlign  # needs the compiled mmcv._ext
import mmcv._ext
print("mmcv", mmcv.__version__, "mmengine", mmengine.__version__, "mmdet", mmdet.__version__, "ops ok")
PYEOF
echo "== done in $(( $(date +%s) - START )) s"
[ "${KEEP_WORKDIR:-0}" = "1" ] || rm -rf "$WORKDIR"
