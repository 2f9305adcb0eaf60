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
           "--preset", "blazepose", "output.flush_every=1", FORMATS, "detector.tile_scales=[1.0]", *extra]
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


@pytest.mark.parametrize("seed", [12, 2024])
def test_signals_at_random_points_of_a_real_run(clip_folder, tmp_path, seed):
    """Item 6, per seed: SIGINT (twice, the second while the outputs are being finished), SIGTERM, SIGHUP and
    SIGKILL, each after a random number of flushed frames: the first three finish every output (the 2017 file
    too) and exit 128 + signal with a message and no traceback; SIGKILL leaves the journal (no temporary
    file), which assembles into valid files. During start-up: SIGHUP as soon as the handlers are installed,
    and Ctrl-C while the models load (--out already created): exit 129 / 130 with a message, no traceback,
    no --out folder left behind (Ctrl-C while torch was being imported left an empty one)."""
    rng = random.Random(seed)
    cases = {"int": signal.SIGINT, "term": signal.SIGTERM, "hup": signal.SIGHUP, "kill": signal.SIGKILL}
    points = {name: rng.randint(1, 4) for name in cases}
    procs = {name: _start(clip_folder, tmp_path / name) for name in cases}
    procs["startup"] = _start(clip_folder, tmp_path / "startup")
    procs["loading"] = _start(clip_folder, tmp_path / "loading")
    _wait(lambda: _handles_signals(procs["startup"].pid), procs["startup"])
    procs["startup"].send_signal(signal.SIGHUP)
    _wait(lambda: (tmp_path / "loading").exists(), procs["loading"])   # --out checked, models loading
    procs["loading"].send_signal(signal.SIGINT)
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

    for name, signum in (("int", signal.SIGINT), ("term", signal.SIGTERM), ("hup", signal.SIGHUP)):
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

    for name, signum, what in (("startup", signal.SIGHUP, "SIGHUP"), ("loading", signal.SIGINT, "Ctrl-C (SIGINT)")):
        rc, _, err = results[name]
        assert rc == 128 + signum and "Traceback" not in err, (name, rc, err[-2000:])
        assert f"stopped by {what} during start-up; nothing was tracked" in err, err[-2000:]
        assert not (tmp_path / name).exists()   # and no empty --out folder


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


def test_a_run_whose_model_fails_to_load_leaves_no_out_folder(tmp_path, capsys):
    """Item 9: a run that fails after --out was checked and created (here the estimator's weights file is not
    a model) removes the empty --out folder it made."""
    pytest.importorskip("ai_edge_litert", reason="the blazepose extra (TFLite runtime) is not installed")
    from tracker.cli import main

    folder = tmp_path / SEQ
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.jpg"), np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer" * 8)
    out = tmp_path / "out"
    assert main(["track", str(folder), "--out", str(out), "--no-progress", "--preset", "blazepose",
                 f"estimator.checkpoint={tmp_path / 'broken.tflite'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posetrack track: error:") and "Traceback" not in err, err
    assert not out.exists()


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


def _in_mount_namespace(script: str, *args: str, setup: str = "") -> subprocess.CompletedProcess:
    """Run ``python -c script args`` as (mapped) root in a private mount namespace after the shell commands
    ``setup`` (mounts there are invisible outside and vanish with it); skip with the reason where that is not
    permitted. chmod cannot make a folder unwritable for root: a read-only mount does."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1) for a private mount namespace")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o ro tmpfs /mnt"], capture_output=True,
                           text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount in a private namespace here: {probe.stderr.strip()[:200]}")
    command = f"{setup} exec {sys.executable} -c \"$SCRIPT\" {' '.join(args)}"
    env = dict(os.environ, SCRIPT=script, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run(["unshare", "-rm", "sh", "-c", command], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


READ_ONLY_OUT = textwrap.dedent("""
    import json, sys
    from tracker.cli import main
    folder, root = sys.argv[1], sys.argv[2]
    codes = [main(["track", folder, "--out", out, "--no-progress"]) for out in (root, root + "/new")]
    print(json.dumps({"codes": codes, "torch": "torch" in sys.modules}))
""")


def test_read_only_out_is_reported_before_any_model_loads(tmp_path):
    """Unwritable outputs: --out on a read-only mount (an existing folder, and one to be created there) is a
    one-line error naming it, exit 2, before torch or any model is loaded."""
    folder = tmp_path / SEQ
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.jpg"), np.full((64, 64, 3), 128, np.uint8))
    root = tmp_path / "ro"
    root.mkdir()
    proc = _in_mount_namespace(READ_ONLY_OUT, str(folder), str(root), setup=f"mount -t tmpfs -o ro tmpfs {root} &&")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"codes": [2, 2], "torch": False}, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"posetrack track: error: --out {root}: cannot write there (Read-only file system)",
                     f"posetrack track: error: --out {root}/new: cannot write there (Read-only file system)"]


MID_RUN_READ_ONLY = textwrap.dedent("""
    import json, os, subprocess, sys, time
    folder, out, journal, *command = sys.argv[1:]
    proc = subprocess.Popen([sys.executable, "-m", "tracker.cli", "track", folder, "--out", out, *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def frames():
        try:
            return max(0, open(journal).read().count("\\n") - 1)
        except OSError:
            return 0
    end = time.monotonic() + 240
    while frames() < 3 and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    flushed = frames()
    # the folder turns read-only under the running process: a read-only bind mount of it on itself (a plain
    # remount is refused while the journal is open for writing; the open journal stays writable)
    for cmd in (["mount", "--bind", out, out], ["mount", "-o", "remount,bind,ro", out]):
        subprocess.run(cmd, check=True)
    try:
        open(os.path.join(out, "probe"), "w").close()
        probe = "writable"
    except OSError as exc:
        probe = exc.strerror
    _, err = proc.communicate(timeout=240)
    subprocess.run(["umount", out], check=True)
    print(json.dumps({"flushed": flushed, "probe": probe, "rc": proc.returncode, "err": err}))
""")


def test_outputs_turning_read_only_mid_run_fail_honestly_and_keep_the_journal(clip_folder, tmp_path):
    """Unwritable outputs mid-run: a real run whose --out turns read-only after a few flushed frames cannot
    write its final files: exit 2 with one line naming the folder, the error and the journal, no traceback;
    no temporary file and no partial final file is left, the journal keeps every flushed frame, and it
    assembles into valid files once the folder is writable again (as the next run does)."""
    out = tmp_path / "out"
    journal = out / f"{SEQ}.partial.jsonl"
    proc = _in_mount_namespace(MID_RUN_READ_ONLY, str(clip_folder), str(out), str(journal), "--no-progress",
                               "--preset", "blazepose", "output.flush_every=1", FORMATS,
                               "detector.tile_scales=[1.0]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    err = result["err"]
    assert result["probe"] == "Read-only file system" and result["flushed"] >= 3, result
    assert result["rc"] == 2 and "Traceback" not in err, err[-3000:]
    message = [line for line in err.splitlines() if line.startswith("posetrack track: error:")]
    assert len(message) == 1 and "Read-only file system" in message[0] and str(journal) in message[0], err[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [f"{SEQ}.config.yaml", journal.name]  # no temporary file
    from tracker.outputs import recover_journal

    recover_journal(journal)
    assert _check_outputs(out, result["flushed"]) >= result["flushed"]


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
    ("flow.scale=0", "flow.scale"),                                   # was "scale: ..."
    ("propagation.box_enlarge=-1", "propagation.box_enlarge"),       # was "enlarge: ..."
    ("association.min_similarity=2", "association.min_similarity"),  # was "min_similarity: ..."
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


def test_range_errors_come_before_torch_loads(tmp_path):
    """Item 3: range errors appeared only after 10-20 s of model loading; now no torch is imported first."""
    code = ("import sys; from tracker.cli import main; "
            "codes = [main(['track', sys.argv[1], '--out', sys.argv[2], o]) for o in sys.argv[3:]]; "
            "print(*codes, 'torch' in sys.modules)")
    overrides = ["detector.score_threshold=0", "max_frames=-1", "propagation.nms_iou=5"]
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tmp_path / "out"), *overrides],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["2", "2", "2", "False"], (proc.stdout, proc.stderr[-2000:])
    for override in overrides:
        assert f": {override.split('=')[0]}: expected" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


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

    assert load_track_config("blazepose", ["detector.max_views=8"]).detector.max_views == 8
    with pytest.raises(ConfigError, match="detector.max_views: expected >= 1"):
        load_track_config("blazepose", ["detector.max_views=0"])


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
