"""Optical flow backends and warping of points through a flow field."""
from flow.base import FlowBackend, FlowConfigError, FlowInputError
from flow.factory import create_flow, list_flows
from flow.opencv_flow import DISFlow, FarnebackFlow
from flow.warp import warp_points

# flow.raft (RaftFlow) is not imported here so that `import flow` does not pay for torch.
__all__ = [
    "DISFlow", "FarnebackFlow", "FlowBackend", "FlowConfigError", "FlowInputError",
    "create_flow", "list_flows", "warp_points",
]
