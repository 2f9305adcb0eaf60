"""Paths that need an optional extra say which one when it is missing (the extras are in pyproject.toml)."""
import sys

import pytest


def test_plot_without_matplotlib_names_the_plot_extra(monkeypatch, tmp_path):
    from eval_posetrack.evaluate import plot_summary

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail as if absent
    with pytest.raises(ModuleNotFoundError, match=r"posetrack-pipeline\[plot\]"):
        plot_summary({"AP": {}}, tmp_path / "x.png")


def test_blazepose_without_the_tflite_runtime_names_the_blazepose_extra(monkeypatch):
    from estimators.blazepose.tflite import TFLiteModel
    from estimators.blazepose.weights import blazepose_paths

    _, landmark_path = blazepose_paths()

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ModuleNotFoundError, match=r"posetrack-pipeline\[blazepose\]"):
        TFLiteModel(landmark_path, input_shape=(256, 256, 3), outputs=lambda b: {}, what="BlazePose landmark")
