"""`posetrack track` end to end on real data with the real models (skips without their weights): the default
(NanoDet + MoveNet thunder, TF.js graphs) and the BlazePose preset on the real 5-frame PoseTrack clip (MP4 and
image folder), the realtime preset, and the PoseTrack18 val frames with oracle and precomputed boxes, scored by
`posetrack eval`."""
from __future__ import annotations

import json
import shutil

import pytest

from eval_posetrack import read_sequence
from tracker.cli import main
from tracker.sources import open_source


@pytest.fixture(scope="module")
def blazepose_weights():
    from estimators.blazepose.weights import blazepose_paths

    try:
        return blazepose_paths(verify=True)
    except (OSError, ValueError) as exc:
        pytest.skip(f"BlazePose weights not in the cache ({exc}); `make setup` fetches them")


@pytest.fixture(scope="module")
def tfjs_weights():
    """The TF.js models of the default and realtime presets (NanoDet, MoveNet), sha256-checked."""
    from estimators.tfjs import fetch

    bad = [s for s in fetch.list_models() if s.status != "ok"]
    if bad:
        pytest.skip(f"TF.js models not in the cache ({bad[0]}); `posetrack weights fetch` gets them")


def _clip(testdata):
    return testdata / "posetrack18" / "videos" / "000001_mpiinew_test"


@pytest.mark.parametrize("preset", [None, "blazepose"])
def test_track_real_clip_default_pipeline(preset, testdata, request, tmp_path, capsys):
    request.getfixturevalue("tfjs_weights" if preset is None else "blazepose_weights")
    video = _clip(testdata) / "000001_mpiinew_test.mp4"
    flags = [] if preset is None else ["--preset", preset]
    assert main(["track", str(video), "--out", str(tmp_path), "--render", "--no-progress", *flags]) == 0
    printed = capsys.readouterr().out
    assert "tracked 5 frames" in printed
    seq = read_sequence(tmp_path / "000001_mpiinew_test.json")
    assert len(seq.frames) == 5
    data = json.loads((tmp_path / "000001_mpiinew_test.json").read_text())
    ids_per_frame = {}
    for a in data["annotations"]:
        assert 0 <= a["track_id"] < 10000 and len(a["scores"]) == 17
        ids_per_frame.setdefault(a["image_id"], []).append(a["track_id"])
    assert all(len(v) == len(set(v)) for v in ids_per_frame.values())
    # the two players who stay visible and upright keep one id each through the 5 frames
    frames_per_id = {}
    for ids in ids_per_frame.values():
        for t in ids:
            frames_per_id[t] = frames_per_id.get(t, 0) + 1
    assert sum(n == 5 for n in frames_per_id.values()) >= 2, frames_per_id
    with open_source(str(tmp_path / "000001_mpiinew_test.mp4")) as src:
        frames = list(src)
    assert len(frames) == 5 and frames[0].image.shape == (720, 1280, 3)
    assert (tmp_path / "000001_mpiinew_test.config.yaml").is_file()


def test_track_image_folder_with_detection_interval(testdata, tfjs_weights, tmp_path):
    folder = tmp_path / "000001_mpiinew_test"
    folder.mkdir()
    for p in sorted(_clip(testdata).glob("*.jpg")):
        shutil.copy(p, folder / p.name)
    out = tmp_path / "out"
    assert main(["track", str(folder), "--out", str(out), "--det-interval", "3", "--flow", "farneback",
                 "--no-progress", "output.formats=[posetrack18,posetrack17,coco]"]) == 0
    data = json.loads((out / "000001_mpiinew_test.json").read_text())
    assert [im["file_name"] for im in data["images"]] == [f"images/000001_mpiinew_test/{i:06d}.jpg" for i in range(5)]
    assert len(read_sequence(out / "000001_mpiinew_test_posetrack17.json").frames) == 5
    coco = json.loads((out / "000001_mpiinew_test_coco.json").read_text())
    assert {c["image_id"] for c in coco} <= set(range(5)) and all(len(c["keypoints"]) == 51 for c in coco)


def test_posetrack_val_oracle_boxes_scored_by_eval(testdata, blazepose_weights, tmp_path, capsys):
    """GT boxes (oracle detector) -> BlazePose -> PoseTrack JSON -> `posetrack eval` mAP on the 3 labelled frames."""
    root = testdata / "posetrack18"
    pred = tmp_path / "pred"
    for ann in sorted((root / "annotations" / "val").glob("*.json")):
        assert main(["track", str(ann), "--image-root", str(root), "--detector", "gt", "--detections", str(ann),
                     "--out", str(pred), "--no-progress"]) == 0
    summary = tmp_path / "summary.json"
    assert main(["eval", "--gt", str(root / "annotations" / "val"), "--pred", str(pred), "--no-track",
                 "--json", str(summary)]) == 0
    ap = json.loads(summary.read_text())["AP"]
    # measured 41.6 mAP (33.9 with the eye points left in the head_bottom / head_top slots)
    assert 30.0 < ap["Total"] < 100.0, ap
    assert ap["Head"] > 40.0, ap  # head_bottom / head_top derived from the COCO points
    assert ap["Shou"] > 30.0, ap


def test_precomputed_detections_on_posetrack_val(testdata, blazepose_weights, tmp_path):
    root = testdata / "posetrack18"
    ann = root / "annotations" / "val" / "012834_mpii_test.json"
    dets = root / "annotations" / "test_posetrack18_human_detections.json"
    assert main(["track", str(ann), "--image-root", str(root), "--detector", "precomputed", "--detections",
                 str(dets), "--out", str(tmp_path), "--no-progress", "detector.score_threshold=0.5"]) == 0
    data = json.loads((tmp_path / "012834_mpii_test.json").read_text())
    n_boxes = sum(1 for d in json.loads(dets.read_text()) if d["image_id"] == 10128340000 and d["score"] >= 0.5)
    assert 0 < len(data["annotations"]) <= n_boxes


def test_missing_source_is_a_clear_error(tmp_path, capsys):
    assert main(["track", str(tmp_path / "nope.mp4"), "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "nope.mp4" in err and "error" in err


def test_config_typo_is_reported_before_anything_runs(tmp_path, capsys):
    assert main(["track", str(tmp_path / "x.mp4"), "--out", str(tmp_path), "flow.scael=1"]) == 2
    err = capsys.readouterr().err
    assert "flow: unknown key(s) scael for kind 'dis'; valid keys: kind, preset, scale" in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_estimator_without_weights_is_refused_naming_the_flag(testdata, tmp_path, capsys):
    """Defect 7: a top-down estimator without --checkpoint would run on random weights; refuse it."""
    video = _clip(testdata) / "000001_mpiinew_test.mp4"
    assert main(["track", str(video), "--out", str(tmp_path), "--estimator", "hrnet_w32", "--no-progress"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_track_real_clip_realtime_preset(testdata, tfjs_weights, tmp_path, capsys):
    video = _clip(testdata) / "000001_mpiinew_test.mp4"
    assert main(["track", str(video), "--preset", "realtime", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "tracked 5 frames" in capsys.readouterr().out
    data = json.loads((tmp_path / "000001_mpiinew_test.json").read_text())
    assert len(data["images"]) == 5 and len(data["annotations"]) >= 5
    saved = (tmp_path / "000001_mpiinew_test.config.yaml").read_text()
    assert "det_interval: 10" in saved and "name: movenet_lightning" in saved and "kind: nanodet" in saved


def test_track_stream_url_on_loopback(testdata, tfjs_weights, tmp_path, capsys):
    """`posetrack track http://127.0.0.1:PORT/...`: a real MJPEG-over-HTTP stream served on loopback."""
    import http.server
    import threading

    jpegs = [p.read_bytes() for p in sorted(_clip(testdata).glob("*.jpg"))]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for data in jpegs:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data))
                self.wfile.write(data + b"\r\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.mjpg"
        assert main(["track", url, "--out", str(tmp_path), "--no-progress", "--max-frames", "5"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("http_127.0.0.1_")
    data = json.loads(files[0].read_text())
    assert len(data["images"]) == 5 and len(data["annotations"]) >= 5
