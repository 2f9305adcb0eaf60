"""Top-down pose estimators: architectures (one file per family), registry, checkpoints, inference."""
from .registry import build_model, list_models, register_model

__all__ = ["build_model", "list_models", "register_model"]
