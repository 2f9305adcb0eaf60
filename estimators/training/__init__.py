"""Training and validation of the top-down estimators (nothing outside this subpackage imports it, except the
``posetrack`` dispatcher, lazily, for ``train`` and ``evaluate-coco``).

Modules, in dependency order: ``config`` (the typed recipe, no torch), ``augmentation`` (per-person random
crops and flips, no torch), ``targets`` (network input and heatmap targets per ``Family``, no torch),
``datasets`` (COCO / PoseTrack person samples, the torch Dataset), ``losses``, ``distributed`` (DDP, device,
random state), ``logs``, ``checkpointing`` (the recipe's network, run checkpoints and resume),
``coco_eval`` (COCO keypoint AP and PoseTrack mAP validation), ``loop`` (:func:`loop.train`), ``cli``.
MultiPoseNet's three stages (a recipe's ``stage``): ``multiposenet_config`` (its recipe section, no torch),
``multiposenet_data``, ``multiposenet_losses``, ``multiposenet_loop`` (:func:`multiposenet_loop.train_multiposenet`).

``import estimators.training`` imports nothing else (no torch).
"""
