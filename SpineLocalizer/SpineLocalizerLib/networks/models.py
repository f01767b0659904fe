"""The networks of each stage and their weights: stage settings (steps and seeds from the shipped recipe,
resources/training_recipe.json), building a stage's network, and loading shipped weights against their card.
Imported by training and inference alike, so neither imports the other."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import MODEL_DIR, heatmap_levels
from .levels import LevelNet
from .model_cards import checked_weights
from .vnet import VNet


@dataclass
class StageConfig:
    name: str
    out_channels: int
    base_channels: int = 8
    levels: int = 4
    steps: int = 1500
    lr: float = 2e-3
    spacing_mm: float = 4.0
    threads: int = 2  # torch threads; the sample worker process runs beside them
    extra: dict = field(default_factory=dict)


def recipe_stage(stage: str) -> dict:
    """The shipped recipe's phantom run of `stage` (resources/training_recipe.json): its steps and seed are the
    defaults of `train` and `spine-localizer train`."""
    from importlib import resources

    text = resources.files("SpineLocalizerLib").joinpath("resources/training_recipe.json").read_text()
    return next(s for s in json.loads(text)["stages"] if s["stage"] == stage and "user_data" not in s)


STAGES = {
    "localize": StageConfig(
        "localize", 2 + len(heatmap_levels.LEVELS), steps=recipe_stage("localize")["steps"], spacing_mm=4.0
    ),
    # 16 channels: on 40 tuning phantoms disc Dice 0.911 vs 0.898 with 8, spine 0.941 vs 0.925 (README, Networks).
    "discs": StageConfig("discs", 3, base_channels=16, steps=recipe_stage("discs")["steps"], spacing_mm=2.0),
    # One torch thread: the classifier is small and its sample worker (16 patches a step) is the bound; with two
    # threads they fight over the two cores. Compiled step with its worker, median of 50: 0.38 s vs 0.44 s with
    # two threads (2-core EPYC, two runs each).
    "levels": StageConfig(
        "levels", len(heatmap_levels.CLASSES), steps=recipe_stage("levels")["steps"], lr=1e-3, spacing_mm=2.0, threads=1
    ),
}


def make_net(cfg: StageConfig, out_channels: int | None = None, base_channels: int | None = None):
    """The stage's network; `out_channels` and `base_channels` override the stage's (weights exported with an
    older head, or trained wider or narrower with `--width`)."""
    if cfg.name == "levels":
        return LevelNet(n_classes=out_channels or cfg.out_channels)
    return VNet(1, out_channels or cfg.out_channels, base_channels or cfg.base_channels, cfg.levels)


def load_model(stage: str, model_dir: Path = MODEL_DIR):
    """Load `stage` weights, checking the sha256 in its card (safetensors, never pickle)."""
    state, card = checked_weights(model_dir, stage)
    # The card says how many outputs the weights have (the disc network had two before the body class).
    arch = card.get("architecture", {})
    net = make_net(
        STAGES[stage], arch.get("out_channels") or len(arch.get("classes", [])) or None, arch.get("base_channels")
    )
    net.load_state_dict(state)
    net.eval()
    return net, card
