"""What the networks' outputs mean, without torch: the level heatmap channels of the localization network and the
classes of the level classifier. Shared by training (data.py, levels.py) and by the torch-free labeling."""

from __future__ import annotations

HEATMAP_PEAK = 256.0  # LVP: Gaussian heatmaps with peak value 256
LEVELS = ("T10-T11", "T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-L6", "LS")
"""Heatmap channels. 'LS' is the lumbosacral disc whatever its name (L4-S1, L5-S1 or L6-S1): the anchor."""


def level_channel(name: str) -> int | None:
    if name.endswith("-S1"):
        return LEVELS.index("LS")
    return LEVELS.index(name) if name in LEVELS else None


CLASSES = ("thoracic", "lumbar", "lumbosacral", "not a disc")
NOT_A_DISC = 3


def class_of(name: str) -> int:
    """0 thoracic (upper vertebra T, T12-L1 included), 1 lumbar (L-L), 2 lumbosacral (lower vertebra S1)."""
    upper, lower = name.split("-")
    if lower == "S1":
        return 2
    return 1 if upper.startswith("L") else 0
