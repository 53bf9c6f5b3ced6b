"""posenet: head-pose estimation toolkit (baseline study, landmark baselines, ONNX tracker)."""

__version__ = "0.1.0"
