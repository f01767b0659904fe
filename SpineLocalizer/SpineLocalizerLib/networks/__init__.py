"""V-Net networks of the localizer pipeline: model, training data synthesis, training and inference.

Only light definitions live here so that importing the package does not import torch.
"""

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[3] / "Resources" / "Models"
"""Where the shipped weights and their cards live."""


class ModelError(RuntimeError):
    """Missing or damaged network weights."""
