"""Build a flow backend by name: ``create_flow("dis", preset="fast", scale=0.5)``; ``"none"`` -> None.

"none" means no optical flow, everywhere: the tracking pipeline then propagates no boxes (the detector runs
every frame) and associates without motion compensation.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flow.base import FlowBackend, FlowConfigError


def _dis(**kwargs: Any) -> FlowBackend:
    from flow.opencv_flow import DISFlow
    return DISFlow(**kwargs)


def _farneback(**kwargs: Any) -> FlowBackend:
    from flow.opencv_flow import FarnebackFlow
    return FarnebackFlow(**kwargs)


def _raft_small(**kwargs: Any) -> FlowBackend:
    from flow.raft import RaftFlow  # torch is imported only when RAFT is asked for
    return RaftFlow(size="small", **kwargs)


def _raft_large(**kwargs: Any) -> FlowBackend:
    from flow.raft import RaftFlow
    return RaftFlow(size="large", **kwargs)


FLOW_BUILDERS: dict[str, Callable[..., FlowBackend]] = {
    "dis": _dis,
    "farneback": _farneback,
    "raft_small": _raft_small,
    "raft_large": _raft_large,
}
NO_FLOW = "none"


def list_flows() -> list[str]:
    """Names accepted by create_flow ("none" included)."""
    return [*FLOW_BUILDERS, NO_FLOW]


def create_flow(name: str, **kwargs: Any) -> FlowBackend | None:
    """Build the flow backend ``name`` ("dis", "farneback", "raft_small", "raft_large"); "none" -> None
    (no flow: nothing is propagated).

    kwargs go to the backend's constructor (e.g. ``preset``/``scale`` for DIS, ``weights_path`` for RAFT);
    an argument the backend does not take raises FlowConfigError naming it.
    """
    if name == NO_FLOW:
        if kwargs:
            raise FlowConfigError(f"flow 'none' takes no arguments, got {sorted(kwargs)}")
        return None
    if name not in FLOW_BUILDERS:
        raise FlowConfigError(f"flow: unknown backend {name!r}; valid names: {', '.join(list_flows())}")
    try:
        return FLOW_BUILDERS[name](**kwargs)
    except TypeError as exc:  # unexpected keyword argument
        raise FlowConfigError(f"flow {name!r}: bad arguments {sorted(kwargs)}: {exc}") from exc
