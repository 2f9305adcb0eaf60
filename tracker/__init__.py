"""Tracking pipeline: sources, person detectors, the per-frame pipeline, outputs and the command line.

The Python API: ``load_track_config`` -> ``build_tracker`` -> ``PoseTracker.run(open_source(...))``.
Names are imported lazily so that ``posetrack eval`` does not pay for torch.
"""
from importlib import import_module

_EXPORTS = {
    "PoseTracker": ".pipeline", "Propagation": ".pipeline", "PoseRecord": ".record", "Candidates": ".record",
    "TrackConfig": ".config", "load_track_config": ".config",
    "build_tracker": ".build", "Frame": ".sources", "open_source": ".sources", "track_source": ".track_cli",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'tracker' has no attribute {name!r}")
