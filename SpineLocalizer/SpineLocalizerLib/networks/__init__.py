"""V-Net networks of the localizer pipeline: model, training data synthesis, training and inference.

Only light definitions live here so that importing the package does not import torch.
"""

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Models"
"""Where the shipped weights and their cards live: the module's own Resources/Models, in the source tree
(SpineLocalizer/Resources/Models) and in an installed extension (beside SpineLocalizer.py), as CMake lists them."""


class ModelError(RuntimeError):
    """Missing or damaged network weights."""
