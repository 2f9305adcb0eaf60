"""DIS / Farneback / zero flow on real PoseTrack frames: known shifts are recovered, interface and factory."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from flow import DISFlow, FarnebackFlow, FlowConfigError, FlowInputError, create_flow, list_flows

CLIP = "posetrack18/videos/000001_mpiinew_test"
MARGIN = 40  # px kept away from the border (the shifted frame is reflected there)


@pytest.fixture(scope="module")
def frames(testdata):
    paths = [testdata / CLIP / f"{i:06d}.jpg" for i in range(5)]
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
    for path, image in zip(paths, images):
        if image is None:
            pytest.skip(f"cannot read {path}")
    return images


def _shift(image: np.ndarray, tx: float, ty: float) -> np.ndarray:
    """The image content moved by (tx, ty) px: the point (x, y) of image is at (x+tx, y+ty) in the result."""
    matrix = np.float32([[1, 0, tx], [0, 1, ty]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _textured_interior(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: the 20% of interior pixels with the largest min-eigenvalue of the structure tensor.

    The clip is mostly uniform grass, where any flow method is ill-posed (aperture problem), so accuracy
    is judged where the image has 2-D structure.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    eig = cv2.cornerMinEigenVal(gray, blockSize=15, ksize=3)
    interior = np.zeros(gray.shape, bool)
    interior[MARGIN:-MARGIN, MARGIN:-MARGIN] = True
    return interior & (eig > np.percentile(eig[interior], 80))


BACKENDS = [
    ("dis", {"preset": "fast"}),
    ("dis", {"preset": "medium"}),
    ("dis", {"preset": "medium", "scale": 0.5}),
    ("farneback", {}),
    ("farneback", {"scale": 0.5}),
]


@pytest.mark.parametrize("shift", [(3.0, -2.0), (2.5, 1.25)], ids=["integer", "subpixel"])
@pytest.mark.parametrize("name,kwargs", BACKENDS, ids=[f"{n}-{k}" for n, k in BACKENDS])
def test_known_translation_is_recovered(frames, name, kwargs, shift):
    prev = frames[0]
    tx, ty = shift
    curr = _shift(prev, tx, ty)
    flow = create_flow(name, **kwargs).compute(prev, curr)
    assert flow.shape == prev.shape[:2] + (2,) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    mask = _textured_interior(prev)
    error = np.hypot(flow[..., 0] - tx, flow[..., 1] - ty)[mask]
    print(f"{name} {kwargs} shift {shift}: textured-interior end-point error median {np.median(error):.3f} "
          f"mean {error.mean():.3f} px")
    assert np.median(error) < 0.5
    assert error.mean() < 0.5


def test_dis_ultrafast_recovers_translation_roughly(frames):
    prev = frames[0]
    flow = DISFlow(preset="ultrafast").compute(prev, _shift(prev, 3.0, -2.0))
    error = np.hypot(flow[..., 0] - 3.0, flow[..., 1] + 2.0)[_textured_interior(prev)]
    print(f"dis ultrafast: median {np.median(error):.3f} mean {error.mean():.3f} px")
    assert np.median(error) < 0.5


@pytest.mark.parametrize("backend", [DISFlow(preset="fast"), FarnebackFlow()], ids=["dis", "farneback"])
def test_real_motion_flow_explains_the_next_frame(frames, backend):
    """Backward-warping frame t+1 through the flow onto frame t matches frame t better than no motion."""
    prev, curr = frames[0], frames[1]
    flow = backend.compute(prev, curr)
    h, w = prev.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    pulled = cv2.remap(curr, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    err_flow = np.abs(pulled[inner].astype(np.float32) - prev[inner]).mean()
    err_static = np.abs(curr[inner].astype(np.float32) - prev[inner]).mean()
    print(f"{backend!r}: photometric error with flow {err_flow:.2f}, without {err_static:.2f}")
    assert err_flow < err_static


def test_scale_brings_field_back_to_full_size_and_units(frames):
    prev = frames[0]
    curr = _shift(prev, 6.0, 0.0)
    half = DISFlow(preset="medium", scale=0.5).compute(prev, curr)
    odd = DISFlow(preset="medium", scale=0.37).compute(prev, curr)  # non-integer resize factors
    mask = _textured_interior(prev)
    assert half.shape == odd.shape == prev.shape[:2] + (2,)
    for flow in (half, odd):
        assert abs(np.median(flow[..., 0][mask]) - 6.0) < 0.5
        assert abs(np.median(flow[..., 1][mask])) < 0.5


def test_none_means_no_flow_and_identical_frames_give_zero_flow(frames):
    """"none" is no flow (None: the pipeline propagates nothing), the same meaning as in the config."""
    prev = frames[0]
    assert create_flow("none") is None
    with pytest.raises(FlowConfigError, match="takes no arguments"):
        create_flow("none", scale=0.5)
    still = DISFlow(preset="fast").compute(prev, prev.copy())
    assert np.abs(still[MARGIN:-MARGIN, MARGIN:-MARGIN]).max() < 0.5


def test_factory_names_and_errors():
    assert list_flows() == ["dis", "farneback", "raft_small", "raft_large", "none"]
    assert isinstance(create_flow("dis", preset="ultrafast"), DISFlow)
    assert isinstance(create_flow("farneback", levels=3, winsize=9), FarnebackFlow)
    with pytest.raises(FlowConfigError, match="valid names: dis, farneback, raft_small, raft_large, none"):
        create_flow("flownet2")
    with pytest.raises(FlowConfigError, match="preset"):
        create_flow("dis", preset="slow")
    with pytest.raises(FlowConfigError, match="bad arguments"):
        create_flow("dis", winsize=3)
    with pytest.raises(FlowConfigError, match="scale"):
        create_flow("farneback", scale=0.0)
    with pytest.raises(FlowConfigError, match="poly_n"):
        FarnebackFlow(poly_n=3)
    assert issubclass(FlowConfigError, ValueError)


def test_bad_frames_are_rejected():
    backend = DISFlow(preset="ultrafast")
    good = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(FlowInputError, match="prev: expected shape"):
        backend.compute(np.zeros((32, 48), np.uint8), good)
    with pytest.raises(FlowInputError, match="curr: expected dtype uint8"):
        backend.compute(good, good.astype(np.float32))
    with pytest.raises(FlowInputError, match="curr: shape"):
        backend.compute(good, np.zeros((32, 40, 3), np.uint8))
    assert issubclass(FlowInputError, ValueError)


def test_warp_points_through_real_flow(frames):
    """Corners of a real frame moved through the DIS field land where the known shift puts them."""
    from flow import warp_points

    prev = frames[0]
    gray = cv2.cvtColor(prev, cv2.COLOR_BGR2GRAY)
    corners = cv2.goodFeaturesToTrack(gray, maxCorners=60, qualityLevel=0.05, minDistance=10)[:, 0]
    inside = ((corners > MARGIN) & (corners < np.array([prev.shape[1], prev.shape[0]]) - MARGIN)).all(1)
    corners = corners[inside].astype(np.float32)
    flow = DISFlow(preset="medium").compute(prev, _shift(prev, 4.5, -1.5))
    moved = warp_points(corners, flow)
    error = np.linalg.norm(moved - (corners + np.float32([4.5, -1.5])), axis=1)
    print(f"{len(corners)} corners: warp error median {np.median(error):.3f} px")
    assert len(corners) >= 10 and np.median(error) < 0.5


def test_low_scale_on_a_small_frame_keeps_a_working_resolution():
    """flow.scale=0.05 on a 200x120 frame would compute DIS on 10x6 px, where OpenCV fails; the working size is
    clamped to 32 px per side and the field still has the frame's shape and moves a shifted texture."""
    from flow.opencv_flow import DISFlow

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (120, 200), dtype=np.uint8), (0, 0), 3)
    prev = cv2.cvtColor(texture, cv2.COLOR_GRAY2BGR)
    curr = np.roll(prev, 4, axis=1)
    field = DISFlow("ultrafast", scale=0.05).compute(prev, curr)
    assert field.shape == (120, 200, 2)
    assert np.isfinite(field).all()
    assert float(np.median(field[30:90, 50:150, 0])) > 1.0
