"""Disc-level classifier: is this disc thoracic, lumbar or lumbosacral?

Why it exists: the sequence matching of module 3 can place a chain of discs exactly, but which disc is the
first lumbar one (the lumbar count, 4/5/6) was decided from disc thickness and footprint alone, and a degenerated
L1-L2 looks like a thoracic disc by both. The anatomy around a disc tells more: the size and height of the
vertebral bodies above and below, the psoas beside lumbar bodies, the conus, the paraspinal muscles, the sagittal
curve (kyphotic above the thoracolumbar junction, lordotic below), the sacrum under the lumbosacral disc. A small
3D CNN sees a 96 mm cube around each disc candidate and gives the three class probabilities; `infer.match_sequence`
adds their log-likelihood under each naming hypothesis (LVP's template matching is kept; this replaces only the
hand-made thickness/footprint prior when the model is present).

Patches are cut from the canonical 2 mm grid around the disc centre and normalised on their own
(`data.normalise`), in training (after synthesis) and in inference alike.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..labels import VERTEBRA_CODES
from . import data
from .heatmap_levels import CLASSES, NOT_A_DISC, class_of

# "Not a disc": patches centred in the sacrum (the disc network sometimes answers a sacral segment border, as a
# real S1-S2 remnant disc would look) or in a vertebral body. Without this class such a candidate below the
# lumbosacral disc looked lumbosacral itself and added a lumbar vertebra.
NOT_A_DISC_FRACTION = 0.15
SACRUM_SHARE = 0.7
PATCH_2MM = (48, 48, 48)  # 96 mm: the disc, both adjacent bodies and the psoas beside them
CENTRE_JITTER_VOX = 3.0  # a segmented component's centre is within a few mm of the disc's
# Discs whose class is hard to tell apart (the thoracolumbar junction) are drawn more often in training.
JUNCTION = ("T11-T12", "T12-L1", "L1-L2", "L2-L3")
JUNCTION_FRACTION = 0.5
SLAB_FRACTION = 0.35


class LevelNet(nn.Module):
    """Four strided stages (8-16-32-64 channels, instance norm, PReLU) from 48^3 to 3^3, then two dense layers.

    The last feature map is flattened rather than pooled: where things are (the body above vs below the disc,
    the psoas beside it) is the information.
    """

    def __init__(self, channels=(8, 16, 32, 64), n_classes: int = len(CLASSES)):
        super().__init__()
        layers, c_in = [], 1
        for c in channels:
            layers += [
                nn.Conv3d(c_in, c, 3, padding=1),
                nn.InstanceNorm3d(c, affine=True),
                nn.PReLU(c),
                nn.Conv3d(c, c, 2, stride=2),  # strided-convolution down, as in the V-Nets
                nn.PReLU(c),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        side = PATCH_2MM[0] // 2 ** len(channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side**3, 64), nn.PReLU(64), nn.Linear(64, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def cut_patch(volume: np.ndarray, centre_vox, size=PATCH_2MM) -> np.ndarray:
    """The `size` block of `volume` centred on `centre_vox` (zeros where it leaves the volume)."""
    out = np.zeros(size, dtype=volume.dtype)
    start = np.round(np.asarray(centre_vox, dtype=float) - np.asarray(size) / 2.0).astype(int)
    src, dst = [], []
    for a, s, n in zip(start, size, volume.shape):
        lo, hi = max(a, 0), min(a + s, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - a, hi - a))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def _not_a_disc_centre(case: data.Case, rng: np.random.Generator) -> np.ndarray | None:
    """A random voxel of the sacrum (most often) or of a vertebral body."""
    sacrum = VERTEBRA_CODES["S1"]
    pick = (
        case.labels == sacrum
        if rng.random() < SACRUM_SHARE
        else data.spine_mask(case.labels) & ~data.disc_mask(case.labels)
    )
    idx = np.argwhere(pick[::2, ::2, ::2]) * 2  # every other voxel is plenty to choose a centre from
    return idx[int(rng.integers(len(idx)))].astype(float) if len(idx) else None


def _user_target(case: data.Case, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A level target of a user case: a disc (junction levels more often) or, now and then, "not a disc"."""
    discs = [(c, n) for c, n in case.level_targets if n != "not a disc"]
    others = [(c, n) for c, n in case.level_targets if n == "not a disc"]
    if others and (not discs or rng.random() < NOT_A_DISC_FRACTION):
        centre, _ = others[int(rng.integers(len(others)))]
        return np.asarray(centre, dtype=float), NOT_A_DISC
    junction = [t for t in discs if t[1] in JUNCTION]
    pool = junction if junction and rng.random() < JUNCTION_FRACTION else discs
    centre, name = pool[int(rng.integers(len(pool)))]
    return np.asarray(centre, dtype=float), class_of(name)


def level_sample(case: data.Case, rng: np.random.Generator):
    """(image 1x48^3, class) around one disc of a phantom case (or, now and then, around a point of the sacrum or
    a vertebral body: class "not a disc"), synthesised with the training randomisation. User cases (real images)
    draw from their `level_targets` instead."""
    if case.level_targets:
        centre, cls = _user_target(case, rng)
        centre = centre + rng.uniform(-CENTRE_JITTER_VOX, CENTRE_JITTER_VOX, 3)
        return _sample_at(case, centre, cls, rng)
    names = {code: info["name"] for code, info in case.discs.items()}
    junction = [c for c, n in names.items() if n in JUNCTION]
    pool = junction if junction and rng.random() < JUNCTION_FRACTION else list(names)
    code = pool[int(rng.integers(len(pool)))]
    centre = np.asarray(case.discs[code]["centroid_vox"]) + rng.uniform(-CENTRE_JITTER_VOX, CENTRE_JITTER_VOX, 3)
    cls = class_of(names[code])
    if rng.random() < NOT_A_DISC_FRACTION:
        other = _not_a_disc_centre(case, rng)
        if other is not None:
            centre, cls = other, NOT_A_DISC
    return _sample_at(case, centre, cls, rng)


def _sample_at(case: data.Case, centre: np.ndarray, cls: int, rng: np.random.Generator):
    margin = 8  # synthesis (blur, bias) on a slightly larger block, so the patch has no edge effects
    big = tuple(s + 2 * margin for s in PATCH_2MM)
    labels = cut_patch(case.labels, centre, big)
    tissue = None if case.tissue is None else cut_patch(case.tissue, centre, big)
    image = None if case.image is None else cut_patch(case.image.astype(np.float32), centre, big)
    image = data.synthesize_image(data.Case(labels, tissue, image, {}), rng)[
        margin:-margin, margin:-margin, margin:-margin
    ]
    if rng.random() < SLAB_FRACTION:
        # A multi-slice sagittal localizer covers only a left-right slab around the spine (55-90 mm). (The
        # whole-volume sub-box fields of view of the V-Net samples would cut most of a 96 mm patch away.)
        half = rng.uniform(25.0, 45.0) / data.CANONICAL_SPACING_MM
        c = PATCH_2MM[0] / 2.0 + rng.uniform(-2.5, 2.5)
        image[: max(int(c - half), 0)] = 0.0
        image[int(c + half) :] = 0.0
        image = data.normalise(image)
    if rng.random() < 0.5:
        image = image[::-1]
    return np.ascontiguousarray(image[None]), cls


def patches_at(image2: np.ndarray, centres_vox: np.ndarray) -> np.ndarray:
    """Normalised patches (n x 1 x 48^3) of the canonical 2 mm image around each candidate's centre."""
    return np.stack([data.normalise(cut_patch(image2, c).astype(np.float32))[None] for c in centres_vox])


def adapt_head(state: dict, net: LevelNet) -> dict:
    """Weights of a three-class classifier for the four-class one: the new "not a disc" output starts at zero
    weights and a low bias (probability ~0 at first), the three others keep theirs."""
    out = dict(state)
    w, b = state["head.3.weight"], state["head.3.bias"]
    n = net.state_dict()["head.3.bias"].shape[0]
    if w.shape[0] < n:
        out["head.3.weight"] = torch.cat([w, torch.zeros(n - w.shape[0], w.shape[1])])
        out["head.3.bias"] = torch.cat([b, torch.full((n - b.shape[0],), float(b.min()) - 5.0)])
    return out


# Test-time mirror averaging: the classifier learnt from patches mirrored left-right half of the time, so a patch
# and its mirror image are two equally valid views; where the classifier is unsure of a patch (its top class below
# `MIRROR_BELOW`), the mean of both views' probabilities is steadier at the thoracolumbar junction and the
# lumbosacral disc of multi-slice stacks. Measured by Testing/bench/tune_labeling.py-style captures of 100 tuning
# phantoms with four trainings (docs/experiments.md): averaging every patch and averaging only those
# below 0.99 (12 % of the patches) name the same discs; averaging every patch cost 0.07-0.2 s per localizer.
MIRROR_BELOW = 0.99


def _probabilities(net, patches: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(net(torch.from_numpy(patches)).float(), dim=1).numpy().astype(float)


def class_log_probabilities(net, image2: np.ndarray, centres_vox: np.ndarray) -> np.ndarray:
    """log P(class) for each candidate (n x classes: thoracic, lumbar, lumbosacral[, not a disc]); for candidates
    whose top class is below `MIRROR_BELOW`, of the mean of the probabilities of the patch and of its left-right
    mirror image."""
    if len(centres_vox) == 0:
        return np.zeros((0, len(CLASSES)))
    patches = patches_at(image2, centres_vox)
    p = _probabilities(net, patches)
    unsure = p.max(axis=1) < MIRROR_BELOW
    if unsure.any():
        mirrored = np.ascontiguousarray(patches[unsure][:, :, ::-1])  # axis 2: left-right
        p[unsure] = 0.5 * (p[unsure] + _probabilities(net, mirrored))
    return np.log(np.clip(p, 1e-12, None))
