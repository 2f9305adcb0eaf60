"""Fault injection: signals at points of a real `posetrack track` run on the real PoseTrack clip (subprocesses,
the real embedded model), a full disk, unwritable outputs. Each leaves valid files holding every frame up to
the last flush (or, after SIGKILL, a journal the next run assembles) and no temporary file."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from eval_posetrack import read_sequence

REPO = Path(__file__).resolve().parents[2]
SEQ = "000001_mpiinew_test"
FORMATS = "output.formats=[posetrack18,posetrack17,coco]"


@pytest.fixture(scope="module")
def clip_folder(testdata, tmp_path_factory):
    """The real 5-frame clip, 6 times over (30 frames), at 320x180 so that a frame takes well under a second."""
    from estimators.blazepose.weights import blazepose_paths

    try:
        blazepose_paths(verify=True)
    except (OSError, ValueError) as exc:
        pytest.skip(f"BlazePose weights not in the cache ({exc}); `make setup` fetches them")
    folder = tmp_path_factory.mktemp("clip") / SEQ
    folder.mkdir()
    frames = sorted((testdata / "posetrack18" / "videos" / SEQ).glob("*.jpg"))
    for i in range(30):
        image = cv2.imread(str(frames[i % len(frames)]))
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), cv2.resize(image, (320, 180)))
    return folder


def _start(folder: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tracker.cli", "track", str(folder), "--out", str(out), "--no-progress",
           "output.flush_every=1", FORMATS, "detector.tile_scales=[1.0]", *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _flushed(out: Path) -> int:
    """Frames in the run's journal so far (complete lines after the header)."""
    try:
        text = (out / f"{SEQ}.partial.jsonl").read_text()
    except OSError:
        return 0
    return max(0, text.count("\n") - 1)


def _handles_signals(pid: int) -> bool:
    """The process has installed its SIGTERM handler (bit 15 of SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _wait(predicate, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the signal: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("timed out waiting for the run")
        time.sleep(0.02)


def _check_outputs(out: Path, at_least: int) -> int:
    """Every requested file is valid and holds the same frames, in order, at least ``at_least``; no journal,
    no temporary file. Returns the number of frames."""
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{SEQ}.json", f"{SEQ}_posetrack17.json", f"{SEQ}_coco.json", f"{SEQ}.config.yaml"])
    seq18 = read_sequence(out / f"{SEQ}.json")
    seq17 = read_sequence(out / f"{SEQ}_posetrack17.json")
    n = len(seq18.frames)
    assert at_least <= n <= 30 and len(seq17.frames) == n
    assert [f.image_name for f in seq18.frames] == [f"images/{SEQ}/{i:06d}.jpg" for i in range(n)]
    coco = json.loads((out / f"{SEQ}_coco.json").read_text())
    assert {c["image_id"] for c in coco} <= set(range(n))
    return n


def test_signals_at_random_points_of_a_real_run(clip_folder, tmp_path):
    """SIGINT (twice, the second while the outputs are being finished), SIGTERM and SIGKILL, each after a random
    number of flushed frames (seeded): the first two finish every output and exit 128 + signal with a message and
    no traceback; SIGKILL leaves the journal (no temporary file), which assembles into valid files. SIGHUP during
    start-up (handlers installed, models loading): exit 129 with a message, no traceback, no --out folder."""
    rng = random.Random(12)
    cases = {"int": signal.SIGINT, "term": signal.SIGTERM, "kill": signal.SIGKILL}
    points = {name: rng.randint(1, 3) for name in cases}
    procs = {name: _start(clip_folder, tmp_path / name) for name in cases}
    procs["startup"] = _start(clip_folder, tmp_path / "startup")
    _wait(lambda: _handles_signals(procs["startup"].pid), procs["startup"])
    procs["startup"].send_signal(signal.SIGHUP)
    flushed: dict[str, int] = {}
    end = time.monotonic() + 240
    while len(flushed) < len(cases):            # signal each run as soon as it has flushed its frames
        for name, signum in cases.items():
            proc, out = procs[name], tmp_path / name
            if name in flushed or _flushed(out) < points[name]:
                if name not in flushed and proc.poll() is not None:
                    pytest.fail(f"{name}: the run ended before the signal: {proc.communicate()[1][-2000:]}")
                continue
            flushed[name] = _flushed(out)
            proc.send_signal(signum)
            if name == "int":
                time.sleep(0.05)
                proc.send_signal(signal.SIGINT)
        assert time.monotonic() < end, "timed out waiting for the runs"
        time.sleep(0.01)
    results = {name: (proc.wait(timeout=120), *proc.communicate()) for name, proc in procs.items()}

    for name, signum in (("int", signal.SIGINT), ("term", signal.SIGTERM)):
        rc, _, err = results[name]
        assert rc == 128 + signum, (name, rc, err[-2000:])
        assert "Traceback" not in err and "every output is written and valid" in err, err[-2000:]
        _check_outputs(tmp_path / name, flushed[name])

    rc, _, err = results["kill"]
    assert rc == -signal.SIGKILL
    out = tmp_path / "kill"
    assert (out / f"{SEQ}.partial.jsonl").is_file() and not list(out.glob(".*"))
    from tracker.outputs import recover_journal

    recover_journal(out / f"{SEQ}.partial.jsonl")
    assert _check_outputs(out, flushed["kill"]) >= flushed["kill"]

    rc, _, err = results["startup"]
    assert rc == 129 and "Traceback" not in err, err[-2000:]
    assert "stopped by SIGHUP during start-up; nothing was tracked" in err
    assert not (tmp_path / "startup").exists()   # and no empty --out folder


def test_a_failed_run_leaves_no_out_folder_and_bad_outputs_are_reported_first(tmp_path, capsys):
    """Item 9: a missing source is reported without creating --out; an --out that cannot be written is
    reported before any model loads (a file where the folder should be)."""
    from tracker.cli import main

    out = tmp_path / "out"
    assert main(["track", str(tmp_path / "missing.mp4"), "--out", str(out), "--no-progress"]) == 2
    assert "source not found" in capsys.readouterr().err and not out.exists()
    folder = tmp_path / SEQ
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.jpg"), np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "blocked").write_text("a file, not a folder")
    t = time.perf_counter()
    assert main(["track", str(folder), "--out", str(tmp_path / "blocked" / "out"), "--no-progress"]) == 2
    assert "cannot write there" in capsys.readouterr().err and time.perf_counter() - t < 5


def test_stop_signals_defer_a_second_signal():
    from tracker.track_cli import Interrupted, StopSignals

    with StopSignals() as signals:
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)      # noted, not raised: the outputs are being finished
            time.sleep(0.01)
        assert signals.received == signal.SIGTERM
    with StopSignals(), pytest.raises(Interrupted) as info:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.01)
    assert info.value.exit_status == 129


DISK_FULL = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from association.keypoints import COCO17
    from tracker.outputs import TrackOutputs, recover_journal
    from tracker.record import PoseRecord
    from tracker.sources import Frame
    root = sys.argv[1]
    filler = os.path.join(root, "filler")
    with open(filler, "wb") as f:
        f.write(b"x" * 600_000)
    out = TrackOutputs(root, "000001_mpiinew_test", ["posetrack18", "coco"], layout=COCO17, render=False, fps=25,
                       keypoint_threshold=0.3, flush_every=2)
    rec = PoseRecord(np.tile([[0, 0, 10, 20]], (4, 1)), np.full(4, 0.9), np.full((4, 17, 2), 1.5),
                     np.full((4, 17), 0.5), track_ids=np.arange(4))
    error = None
    try:
        for i in range(100000):
            out.add(Frame(i, 0.0, np.zeros((4, 4, 3), np.uint8)), rec)
    except OSError as exc:
        error = str(exc)
    try:
        out.close()
    except OSError as exc:
        error = error or str(exc)
    left = sorted(os.listdir(root))
    flushed = out.frames_flushed
    os.unlink(filler)   # make room, then recover
    paths = recover_journal(os.path.join(root, "000001_mpiinew_test.partial.jsonl"))
    pt = json.load(open(paths["posetrack18"]))
    print(json.dumps({"error": error, "left": left, "flushed": flushed, "images": len(pt["images"]),
                      "coco": len(json.load(open(paths["coco"])))}))
""")


def test_disk_full_keeps_a_valid_journal_and_no_temporary_file(tmp_path):
    """A 1 MiB tmpfs (600 KB taken, a private mount namespace) fills up during the run: the error names the file, the
    journal keeps every flushed frame (cut back to its last flush), no temporary file is left, and the journal
    assembles into valid files once there is room."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1) to mount a private tmpfs")
    root = tmp_path / "small"
    root.mkdir()
    script = f"mount -t tmpfs -o size=1m tmpfs {root} && exec {sys.executable} -c \"$SCRIPT\" {root}"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, env=dict(os.environ, SCRIPT=DISK_FULL),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "mount" in proc.stderr and "Traceback" not in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "No space left" in result["error"]
    assert not [n for n in result["left"] if n.startswith(".")], result["left"]   # no temporary file
    assert result["flushed"] > 0 and result["images"] == result["flushed"] and result["coco"] == 4 * result["flushed"]


@pytest.mark.parametrize("override, key", [
    ("detector.score_threshold=0", "detector.score_threshold"),       # 2,058 poses and 5 GB for one frame
    ("detector.score_threshold=-1", "detector.score_threshold"),
    ("detector.score_threshold=2", "detector.score_threshold"),
    ("output.formats=[]", "output.formats"),
    ("propagation.nms_iou=0", "propagation.nms_iou"),
    ("propagation.nms_iou=5", "propagation.nms_iou"),
    ("max_frames=-1", "max_frames"),
    ("output.render_fps=-1", "output.render_fps"),
    ("output.flush_every=0", "output.flush_every"),
    ("flow.scale=0", "flow.scale"),
])
def test_settings_are_range_checked_with_their_dotted_name(override, key, tmp_path, capsys):
    """Item 3: every out-of-range setting is a one-line error naming its full dotted key, before any model
    loads and before --out is created."""
    from tracker.cli import main

    t = time.perf_counter()
    assert main(["track", str(tmp_path), "--out", str(tmp_path / "out"), override]) == 2
    err = capsys.readouterr().err
    assert f": {key}: " in err and "Traceback" not in err, err
    assert time.perf_counter() - t < 2 and not (tmp_path / "out").exists()


def test_detector_nms_iou_and_batch_size_checked():
    from tracker.config import ConfigError, load_track_config

    for override, key in (("detector.nms_iou=0", "detector.nms_iou"), ("detector.batch_size=0", "detector.batch_size"),
                          ("estimator.input_size=[0,0]", "estimator.input_size")):
        kind = "estimator.kind=topdown" if key.startswith("estimator") else "detector.kind=torchvision"
        with pytest.raises(ConfigError, match=f"{key}: expected"):
            load_track_config(None, [kind, override])


def test_detector_views_per_frame_are_bounded_whatever_the_frame_shape():
    """Item 2: a 500x2 frame asked the tiled BlazePose detector for 1,548 views (102 s, 9.9 GB for one frame);
    the views are now capped (detector.max_views, 32 by default) with a warning, ordinary frames unchanged."""
    from estimators.blazepose.detector import ViewCapWarning, view_squares

    assert len(view_squares(500, 2, (1.0, 0.6), 0.3, True).sizes) == 1548          # what the cap prevents
    for w, h in ((500, 2), (2, 500), (10000, 100), (100000, 3)):
        with pytest.warns(ViewCapWarning, match=f"a {w}x{h} frame asks for more than 32 views"):
            assert len(view_squares(w, h, (1.0, 0.6), 0.3, True, max_views=32).sizes) <= 32
    default = view_squares(1280, 720, (1.0, 0.6), 0.3, True)
    capped = view_squares(1280, 720, (1.0, 0.6), 0.3, True, max_views=32)
    assert len(capped.sizes) == len(default.sizes) == 12 and (capped.sizes == default.sizes).all()
    from tracker.config import ConfigError, load_track_config

    assert load_track_config(None, ["detector.max_views=8"]).detector.max_views == 8
    with pytest.raises(ConfigError, match="detector.max_views: expected >= 1"):
        load_track_config(None, ["detector.max_views=0"])


def test_missing_source_is_reported_before_torch_loads(tmp_path):
    """Item 9: reporting a missing source took 7.6 s (torch and the model were loaded first)."""
    code = ("import sys; from tracker.cli import main; rc = main(['track', sys.argv[1], '--out', sys.argv[2]]); "
            "print(rc, 'torch' in sys.modules)")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing.mp4"), str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["2", "False"] and "source not found" in proc.stderr
    assert time.perf_counter() - t < 5 and not (tmp_path / "out").exists()


def test_second_run_on_the_same_outputs_is_refused_before_any_model_loads(tmp_path, capsys):
    """Item 5: a second run of the same sequence into the same --out silently replaced the first one's files
    (its config beside the other's JSON); now exit 2 naming the file, before any model loads, unless
    --overwrite."""
    from tracker.cli import main

    folder = tmp_path / SEQ
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.jpg"), np.full((64, 64, 3), 128, np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{SEQ}.json").write_text("{}")
    t = time.perf_counter()
    assert main(["track", str(folder), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{out / SEQ}.json exists" in err and "--overwrite" in err and time.perf_counter() - t < 5
    assert sorted(p.name for p in out.iterdir()) == [f"{SEQ}.json"]      # nothing else written
