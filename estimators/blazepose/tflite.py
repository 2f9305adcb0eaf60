"""The one TFLite runtime set-up of both BlazePose models (ai-edge-litert, CPU only).

:class:`TFLiteModel` owns the interpreters of one ``.tflite`` file, one per batch size (the input is resized to
``[B, ...]``), created on first use and kept by the instance (no module-level state). Outputs are picked by
shape, never by listing order, because the interpreter does not list them in model order.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function of logits, clipped to [-100, 100] as MediaPipe's calculators do; float64."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100.0, 100.0)))


@dataclass(frozen=True)
class _Runner:
    interpreter: object
    input_index: int
    outputs: Mapping[str, int]  # output name (ours) -> tensor index


class TFLiteModel:
    """One ``.tflite`` file run at any batch size.

    path: the model file. input_shape: (h, w, c) of one input sample (checked against the file). outputs:
    ``(batch) -> {name: shape}`` giving the full output tensor shape, batch included, of each output we read
    (e.g. ``lambda b: {"landmarks": (b, 195)}``); every listed output must exist. what: the model's name for
    error messages. num_threads: CPU threads of each interpreter.
    """

    def __init__(self, path: str | os.PathLike, *, input_shape: tuple[int, int, int],
                 outputs: Callable[[int], Mapping[str, tuple[int, ...]]], what: str, num_threads: int = 2) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: {what} model not found; run `posetrack weights fetch`")
        if int(num_threads) < 1:
            raise ValueError(f"{what}: num_threads must be >= 1, got {num_threads}")
        self.input_shape = tuple(int(v) for v in input_shape)
        self.outputs = outputs
        self.what = what
        self.num_threads = int(num_threads)
        self._runners: dict[int, _Runner] = {}
        self._runner(1)  # fail now, not at the first frame, when the file is not the expected model

    def _runner(self, batch: int) -> _Runner:
        runner = self._runners.get(batch)
        if runner is not None:
            return runner
        try:
            from ai_edge_litert.interpreter import Interpreter  # lazy: only when a model is built
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("ai_edge_litert"):
                raise
            raise ModuleNotFoundError(
                f"the {self.what} model needs the TFLite runtime ai-edge-litert: "
                "pip install 'posetrack-pipeline[blazepose]' (make setup installs it)", name=exc.name) from None

        it = Interpreter(model_path=str(self.path), num_threads=self.num_threads)
        inp = it.get_input_details()[0]
        if tuple(int(v) for v in inp["shape"][1:]) != self.input_shape:
            raise ValueError(f"{self.path}: input {inp['name']} has shape {list(inp['shape'])}, expected "
                             f"[1, {', '.join(map(str, self.input_shape))}]; is it the {self.what} model?")
        if batch != 1:
            it.resize_tensor_input(inp["index"], [batch, *self.input_shape])
        it.allocate_tensors()
        wanted = {tuple(shape): name for name, shape in self.outputs(batch).items()}
        found = {}
        for d in it.get_output_details():
            name = wanted.get(tuple(int(v) for v in d["shape"]))
            if name is not None:
                found[name] = int(d["index"])
        missing = sorted(set(wanted.values()) - set(found))
        if missing:
            shapes = [list(s) for s, n in wanted.items() if n in missing]
            raise ValueError(f"{self.path}: outputs {missing} (shapes {shapes}) "
                             f"not found; is it the {self.what} model?")
        runner = _Runner(it, int(inp["index"]), found)
        self._runners[batch] = runner
        return runner

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """x: (B, h, w, c) float32 input -> {output name: a copy of its tensor (full shape, batch included)}."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape or len(x) < 1:
            raise ValueError(f"{self.what}: input must be (B >= 1, {', '.join(map(str, self.input_shape))}), "
                             f"got {x.shape}")
        r = self._runner(len(x))
        r.interpreter.set_tensor(r.input_index, x)
        r.interpreter.invoke()
        return {name: r.interpreter.get_tensor(index).copy() for name, index in r.outputs.items()}

    def __repr__(self) -> str:
        return f"TFLiteModel({str(self.path)!r}, {self.what}, num_threads={self.num_threads})"
