"""Validation of the phantom stages on fixed synthetic samples of the validation phantoms (seeds 50001+, never
trained on): Dice, heatmap peak error, classifier accuracy overall and at the thoracolumbar junction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import data, levels
from .losses import dice_score
from .samples import disc_sample, localize_sample
from .vnet import VNet

# Validation samples are fixed (seeded per case), so each is synthesised once per process and reused at every
# validation: re-synthesising them was most of a validation's time (levels 16 s, localize 10 s, discs 4.6 s per
# call on the 2-core EPYC, every validation of a run).
_VAL_SAMPLES: dict[tuple[str, str], list] = {}


def _val_samples(stage: str, path: Path, k: int) -> list:
    key = (stage, str(path))
    if key not in _VAL_SAMPLES:
        rng = np.random.default_rng(900 + k)
        case = data.load_case(path)
        if stage == "levels":
            samples = [levels.level_sample(case, rng) for _ in range(4)]
        elif stage == "localize":
            samples = [localize_sample(case, rng)]
        else:
            samples = [disc_sample(case, rng)]
        _VAL_SAMPLES[key] = samples
    return _VAL_SAMPLES[key]


def _val_junction_patches(path: Path, k: int) -> list[tuple[np.ndarray, int]]:
    """(patch, class) at each junction disc of a validation case's whole synthetic image (`_val_image`)."""
    key = ("junction", str(path))
    if key not in _VAL_SAMPLES:
        case = data.load_case(path)
        junction = [info for info in case.discs.values() if info["name"] in levels.JUNCTION]
        image = _val_image(case, k) if junction else None
        _VAL_SAMPLES[key] = [
            (levels.patches_at(image, [info["centroid_vox"]]), levels.class_of(info["name"])) for info in junction
        ]
    return _VAL_SAMPLES[key]


def _val_image(case: data.Case, k: int) -> np.ndarray:
    """One whole synthetic image of a validation case (fixed seed), as inference would see it."""
    return data.synthesize_image(case, np.random.default_rng(700 + k))


def validate_levels(net, val_paths: list[Path]) -> dict[str, float]:
    """Class accuracy on 4 fixed samples per validation case (seeds 50001+), overall and at the junction
    (T11-T12 .. L2-L3, where the lumbar count is decided)."""
    net.eval()
    right, junction = [], []
    with torch.inference_mode():
        for k, path in enumerate(val_paths):
            for img, cls in _val_samples("levels", path, k):
                pred = int(net(torch.from_numpy(img[None])).argmax(dim=1))
                right.append(pred == cls)
        # The junction share of the samples is drawn by level_sample; count it separately with a fixed pass.
        for k, path in enumerate(val_paths):
            for img, cls in _val_junction_patches(path, k):
                junction.append(int(net(torch.from_numpy(img)).argmax(dim=1)) == cls)
    net.train()
    return {"val_accuracy": float(np.mean(right)), "val_junction_accuracy": float(np.mean(junction))}


def validate(stage: str, net: VNet, val_paths: list[Path]) -> dict[str, float]:
    """Fixed synthetic validation samples (seeds 50001+, never trained on)."""
    if stage == "levels":
        return validate_levels(net, val_paths)
    net.eval()
    dices, dists, spine_dices = [], [], []
    with torch.inference_mode():
        for k, path in enumerate(val_paths):
            if stage == "localize":
                img, spine, heat = _val_samples(stage, path, k)[0]
                out = net(torch.from_numpy(img[None]))[0].numpy()
                dices.append(dice_score(out[1] > out[0], spine.astype(bool)))
                for ch in range(len(data.LEVELS)):
                    if heat[ch].max() > 128:
                        t = np.unravel_index(np.argmax(heat[ch]), heat[ch].shape)
                        p = np.unravel_index(np.argmax(out[2 + ch]), heat[ch].shape)
                        dists.append(4.0 * float(np.linalg.norm(np.subtract(t, p))))
            else:
                img, target = _val_samples(stage, path, k)[0]
                cls = net(torch.from_numpy(img[None]))[0].numpy().argmax(axis=0)
                dices.append(dice_score(cls == 2, target == 2))
                spine_dices.append(dice_score(cls > 0, target > 0))
    net.train()
    res = {"val_dice": float(np.mean(dices))}
    if spine_dices:
        res["val_spine_dice"] = float(np.mean(spine_dices))
    if dists:
        res["val_peak_error_mm_median"] = float(np.median(dists))
        res["val_peak_within_6mm"] = float(np.mean(np.array(dists) < 6.0))
    return res
