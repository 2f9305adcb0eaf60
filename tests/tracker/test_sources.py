"""Frame sources with real decoding: the real PoseTrack mp4 and its jpg folder, a real MJPEG-over-HTTP
stream on loopback, natural sorting, and broken inputs (missing file, corrupt image, corrupt video)."""
from __future__ import annotations

import http.server
import json
import shutil
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.sources import (
    CaptureSource,
    Frame,
    FrameSkippedWarning,
    ImageListSource,
    SourceError,
    VideoFileSource,
    natural_sort_key,
    open_source,
)

SEQ = "000001_mpiinew_test"


@pytest.fixture(scope="module")
def clip_dir(testdata) -> Path:
    return testdata / "posetrack18" / "videos" / SEQ


@pytest.fixture(scope="module")
def clip_mp4(clip_dir) -> Path:
    return clip_dir / f"{SEQ}.mp4"


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_video_file_frames_order_shapes_timestamps(clip_mp4):
    with open_source(clip_mp4, chunk_size=2) as src:  # chunk 2 -> 3 get_batch calls incl. a partial one
        assert isinstance(src, VideoFileSource)
        assert src.name == SEQ and src.num_frames == 5 and len(src) == 5
        assert src.fps == pytest.approx(30.0)
        frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.name for f in frames] == [f"{i:06d}" for i in range(5)]
    for f in frames:
        assert isinstance(f, Frame)
        assert f.image.shape == (720, 1280, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
    times = np.array([f.timestamp for f in frames])
    np.testing.assert_allclose(times, np.arange(5) / 30.0, atol=1e-3)
    # chunking must not change anything: a chunk of 8 yields identical pixels
    with open_source(clip_mp4) as src8:
        frames8 = list(src8)
    for a, b in zip(frames, frames8):
        np.testing.assert_array_equal(a.image, b.image)


def test_video_is_bgr_and_matches_the_jpg_frames(clip_mp4, clip_dir):
    frames = list(open_source(clip_mp4))
    for f in frames:
        jpg = cv2.imread(str(clip_dir / f"{f.index:06d}.jpg"))
        same = _mean_abs(f.image, jpg)
        swapped = _mean_abs(f.image[:, :, ::-1], jpg)
        assert same < 8.0, f"frame {f.index}: decoded mp4 differs from its jpg by {same:.2f} grey levels"
        assert swapped > 3 * same, f"frame {f.index}: channel order looks wrong ({same:.2f} vs {swapped:.2f})"
    # consecutive frames are distinct pictures, and each matches its own jpg best (order is right)
    jpgs = [cv2.imread(str(clip_dir / f"{i:06d}.jpg")) for i in range(5)]
    for f in frames:
        assert int(np.argmin([_mean_abs(f.image, j) for j in jpgs])) == f.index


def test_image_folder_is_a_posetrack_sequence(clip_dir, tmp_path):
    # the real folder also holds the mp4: only the images are listed
    with open_source(clip_dir, fps=10) as src:
        assert isinstance(src, ImageListSource)
        assert src.name == SEQ and src.num_frames == 5 and src.fps == 10
        frames = list(src)
    assert [f.name for f in frames] == [f"{i:06d}.jpg" for i in range(5)]
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in range(5)])
    np.testing.assert_array_equal(frames[3].image, cv2.imread(str(clip_dir / "000003.jpg")))
    # default folder rate is 30 fps
    assert [f.timestamp for f in open_source(clip_dir)][1] == pytest.approx(1 / 30)


def test_natural_sort_in_folder(clip_dir, tmp_path):
    names = ["10.jpg", "2.jpg", "1.png", "frame_3.bmp", "frame_20.jpeg", "notes.txt"]
    for i, n in enumerate(names):
        shutil.copy(clip_dir / f"{i % 5:06d}.jpg", tmp_path / n)  # a jpg under a .png/.bmp name still decodes
    frames = list(open_source(tmp_path))
    assert [f.name for f in frames] == ["1.png", "2.jpg", "10.jpg", "frame_3.bmp", "frame_20.jpeg"]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20, unique=True))
def test_natural_sort_key_orders_numbers_by_value(numbers):
    names = [f"img{n}.jpg" for n in numbers]
    assert sorted(names, key=natural_sort_key) == [f"img{n}.jpg" for n in sorted(numbers)]


def test_corrupt_image_in_folder_is_skipped_with_warning(clip_dir, tmp_path):
    for i in range(5):
        shutil.copy(clip_dir / f"{i:06d}.jpg", tmp_path / f"{i:06d}.jpg")
    good = (tmp_path / "000002.jpg").read_bytes()
    (tmp_path / "000002.jpg").write_bytes(b"\x00" * 64 + good[:100])  # not a decodable jpeg any more
    with pytest.warns(FrameSkippedWarning, match=r"000002\.jpg.*frame 2") as record:
        frames = list(open_source(tmp_path))
    assert len(record) == 1
    assert [f.index for f in frames] == [0, 1, 3, 4]  # gap, not renumbering
    assert all(f.image.shape == (720, 1280, 3) for f in frames)


def test_missing_sources_fail_at_once(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match="nope.mp4"):
        open_source(missing)
    with pytest.raises(OSError):
        open_source(str(tmp_path / "no_folder"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path / "empty")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="garbage.mp4"):
        open_source(garbage)


def test_truncated_video_gives_clear_error(clip_mp4, tmp_path):
    data = clip_mp4.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 2])  # this mp4 keeps its index (moov) at the end: it is lost
    with pytest.raises(SourceError, match=r"truncated\.mp4"):
        open_source(cut)


def test_corrupt_frames_mid_video_are_skipped(clip_mp4, tmp_path):
    data = bytearray(clip_mp4.read_bytes())
    start, end = data.find(b"mdat"), data.find(b"moov")
    assert 0 < start < end, "fixture layout changed: expected mdat before moov"
    a, b = start + int(0.35 * (end - start)), start + int(0.55 * (end - start))
    data[a:b] = bytes(b - a)  # wipe the middle of the compressed stream, keep the index
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        frames = list(open_source(bad, chunk_size=8))
    skipped = [w for w in record if issubclass(w.category, FrameSkippedWarning)]
    assert frames and frames[0].index == 0  # the frames before the damage still come
    assert len(frames) + len(skipped) == 5
    assert skipped, "the damaged frames should be reported"
    assert all("corrupt.mp4" in str(w.message) and "frame" in str(w.message) for w in skipped)


def test_posetrack_annotation_json_source(testdata):
    ann = testdata / "posetrack18" / "annotations" / "test_posetrack18_val.json"
    images = json.loads(ann.read_text())["images"]
    with open_source(ann, image_root=testdata / "posetrack18") as src:
        frames = list(src)
    assert [f.name for f in frames] == [im["file_name"] for im in images]
    for f, im in zip(frames, images):
        assert f.image.shape == (im["height"], im["width"], 3)
    # without image_root, the PoseTrack layout (<root>/annotations/...) is found
    assert len(list(open_source(ann))) == len(images)
    one = testdata / "posetrack18" / "annotations" / "val" / "003418_mpii_test.json"
    src = open_source(one)
    assert src.name == "003418_mpii_test" and src.num_frames == 1
    with pytest.raises(SourceError, match="image root"):
        open_source(ann, image_root=testdata / "does_not_exist")


class _MJPEGHandler(http.server.BaseHTTPRequestHandler):
    jpegs: list[bytes] = []  # set on a per-test subclass

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path != "/stream.mjpg":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for jpeg in self.jpegs:
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
            self.wfile.write(jpeg + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"--frame--\r\n")  # then the connection closes: end of stream

    def log_message(self, *args):
        pass


def test_mjpeg_http_stream_on_loopback(clip_dir):
    jpeg_paths = [clip_dir / f"{i:06d}.jpg" for i in range(5)]
    handler = type("Handler", (_MJPEGHandler,), {"jpegs": [p.read_bytes() for p in jpeg_paths]})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
        with open_source(url, max_frames=20, open_timeout_s=5, read_timeout_s=5) as src:
            assert isinstance(src, CaptureSource) and src.num_frames is None and src.fps > 0
            frames = list(src)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    times = [f.timestamp for f in frames]
    assert times == sorted(times) and times[0] >= 0
    for f, p in zip(frames, jpeg_paths):
        assert f.image.shape == (720, 1280, 3) and f.image.dtype == np.uint8
        assert _mean_abs(f.image, cv2.imread(str(p))) < 3.0  # same JPEG, FFmpeg vs libjpeg decoder


def test_unreachable_stream_fails_clearly():
    # a loopback port nobody listens on (bind and close to find one)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match="cannot open stream"):
        open_source(f"http://127.0.0.1:{port}/x.mjpg", open_timeout_s=2)


def test_absent_webcam_fails_clearly():
    # device index 99 does not exist on a test machine; the index may be given as int or digit string
    for spec in (99, "99"):
        with pytest.raises(SourceError, match="webcam device 99"):
            open_source(spec, open_timeout_s=2)


def _write_video(path: Path, size: tuple[int, int], n: int) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, size)
    assert vw.isOpened()
    for i in range(n):
        vw.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    vw.release()


def test_tiny_video_decord_garbles_is_read_with_opencv(tmp_path):
    """Item 4: decord returns a 16x16 video's frames with 6 channels (every frame was skipped, 0 tracked);
    OpenCV reads it, so the source falls back to OpenCV."""
    path = tmp_path / "tiny.mp4"
    _write_video(path, (16, 16), 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameSkippedWarning)
        with open_source(path) as src:
            frames = list(src)
            assert src.backend == "opencv"
    assert len(frames) == 6 and all(f.image.shape == (16, 16, 3) for f in frames)
    assert [f.index for f in frames] == list(range(6)) and frames[3].image.mean() == pytest.approx(60, abs=3)


def test_gif_that_decord_refuses_is_read_with_opencv(tmp_path):
    """Item 4: decord fails on a GIF with "broken metadata" (Failed to measure duration); OpenCV reads it."""
    from PIL import Image

    path = tmp_path / "anim.gif"
    images = [Image.fromarray(np.full((60, 80, 3), 40 * i, np.uint8)) for i in range(4)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    with open_source(path) as src:
        frames = list(src)
        assert src.backend == "opencv" and src.name == "anim"
    assert [f.image.shape for f in frames] == [(60, 80, 3)] * 4


def test_damaged_video_recovers_every_frame_a_fresh_reader_can_decode(tmp_path):
    """Item 4: the per-frame retry after a failed chunk recovers at least the frames that decode alone (each on
    a fresh reader); it lost some before (the failed decode spoilt the reader's state)."""
    import decord

    path = tmp_path / "long.mp4"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 64))
    for i in range(24):
        vw.write(np.random.default_rng(i).integers(0, 255, (64, 96, 3), dtype=np.uint8))
    vw.release()
    data = bytearray(path.read_bytes())
    start, end = data.find(b"mdat"), data.find(b"moov")
    a, b = start + int(0.3 * (end - start)), start + int(0.5 * (end - start))
    data[a:b] = bytes(b - a)
    path.write_bytes(bytes(data))
    alone = 0
    for i in range(24):
        try:
            decord.VideoReader(str(path))[i].asnumpy()
            alone += 1
        except Exception:  # noqa: BLE001 - decord's errors have no common class
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FrameSkippedWarning)
        frames = list(open_source(path, chunk_size=8))
    assert 0 < alone < 24 and len(frames) >= alone


def test_a_run_that_decodes_nothing_fails(tmp_path):
    """Item 4: a folder where no image decodes ended "tracked 0 frames" with exit status 0; now a SourceError
    (an OSError: `posetrack track` exits 2 with it) and no outputs nor --out folder are left."""
    from association.keypoints import COCO17
    from tracker.build import build_tracker
    from tracker.config import load_track_config
    from tracker.track_cli import track_source

    class Unused:  # no frame decodes, so no component is ever called
        layout = COCO17
        num_keypoints = 17

    folder = tmp_path / "broken"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:06d}.jpg").write_bytes(b"not a jpeg")
    cfg = load_track_config(None, ["flow.kind=none", "association.appearance=false"])
    tracker = build_tracker(cfg, estimator=Unused(), detector=Unused(), flow=Unused())
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FrameSkippedWarning)
        with pytest.raises(SourceError, match="broken: no frame could be decoded"):
            track_source(cfg, str(folder), out, progress=False, tracker=tracker)
    assert not out.exists()


def _write_mjpeg_avi(path: Path, size: tuple[int, int], n: int) -> None:
    """Motion-JPEG in AVI: the one codec of OpenCV's writer that takes a 1x1 frame (mp4v refuses it)."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    assert vw.isOpened()
    for i in range(n):
        vw.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    vw.release()


def test_one_pixel_video_decord_garbles_is_read_with_opencv(tmp_path):
    """Item 4: decord returns a 1x1 video's frames with 96 channels; the source falls back to OpenCV."""
    import decord

    path = tmp_path / "dot.avi"
    _write_mjpeg_avi(path, (1, 1), 5)
    assert decord.VideoReader(str(path))[0].asnumpy().shape == (1, 1, 96)   # what the fallback is for
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameSkippedWarning)
        with open_source(path) as src:
            frames = list(src)
            assert src.backend == "opencv"
    assert [f.image.shape for f in frames] == [(1, 1, 3)] * 5 and [f.index for f in frames] == list(range(5))


def test_frames_too_small_to_track_are_refused(tmp_path):
    """Item 4 / bounded work: a 16x16 or 1x1 video, once decoded, crashed the run in OpenCV's DIS flow (a
    traceback, exit 1); such frames are now skipped with one warning naming the size, and a run with nothing
    else is a SourceError (exit 2) that leaves no outputs."""
    from association.keypoints import COCO17
    from tracker.build import build_tracker
    from tracker.config import load_track_config
    from tracker.track_cli import MIN_FRAME_SIDE, track_source

    class Unused:  # every frame is refused before any component is called
        layout = COCO17
        num_keypoints = 17

    cfg = load_track_config(None, ["association.appearance=false"])
    _write_video(tmp_path / "tiny.mp4", (16, 16), 4)
    _write_mjpeg_avi(tmp_path / "dot.avi", (1, 1), 4)
    for name, size in (("tiny.mp4", "16x16"), ("dot.avi", "1x1")):
        tracker = build_tracker(cfg, estimator=Unused(), detector=Unused(), flow=Unused())
        out = tmp_path / f"out_{name}"
        small = f"frame 0 is {size} px, smaller than {MIN_FRAME_SIDE} px"
        with pytest.warns(FrameSkippedWarning, match=small) as rec, \
                pytest.raises(SourceError, match=f"{name}: no frame could be decoded and tracked"):
            track_source(cfg, str(tmp_path / name), out, progress=False, tracker=tracker)
        assert len([w for w in rec if issubclass(w.category, FrameSkippedWarning)]) == 1   # once, not per frame
        assert not out.exists()
