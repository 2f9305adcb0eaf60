"""TensorFlow.js graph models (``model.json`` + weight shards) converted to PyTorch ``torch.fx`` modules.

``estimators.tfjs.weights`` (numpy only) reads the weights manifest; ``estimators.tfjs.graph`` converts the
GraphDef into a GraphModule with TensorFlow semantics (``load_graph_model``); ``estimators.tfjs.ops`` holds the
op definitions; ``estimators.tfjs.known`` the cut points (inputs and raw heads) of the models we use. Importing
this package does not import torch.
"""
