"""Real axial images with partial masks, for fine-tuning the structure network beyond the phantom.

No real data set outlines every structure the network knows; many outline a few completely (the paraspinal
muscles of a Dixon study, the psoas of a body-composition study). Such a mask says, per pixel, "this class" or
"none of the classes I outline", and nothing of the others: a pixel outside a paraspinal mask may be psoas, bone
or fat. So the loss scores only what the mask says (`partial_label_loss`): for each outlined class, the network's
probability of that class against the mask, and pixels outside the image are not scored at all.

Planes are taken as inference takes them (segment_structures.stack_frames: one network plane per slice, centred
on the spine found in it), then moved and turned a little so the fine-tune does not learn one centring.

A data set is described by a JSON list of {"image": path, "mask": path, "classes": {"mask code": "class name"}};
mask codes not listed count as "none of the outlined classes".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from ..volume_io import Volume, read_volume
from . import data
from .segment_structures import PlaneFrame, sample_points, stack_frames
from .structure_classes import CLASS_INDEX

UNKNOWN = 255  # target of pixels the mask says nothing of (outside its image)
SHIFT_MM = 12.0  # the structure training slices lie within ~15 mm of the spine centre
TURN_DEG = 8.0


@dataclass
class PartialPlanes:
    """Network planes of real images and what their masks say: `targets` holds an outlined class index, 0 for
    "none of the outlined classes", or UNKNOWN."""

    images: np.ndarray  # (N, 256, 256) float32, normalised as at inference
    targets: np.ndarray  # (N, 256, 256) uint8
    classes: tuple[int, ...]


def read_partial_list(path: Path) -> list[dict]:
    """The entries of a partial-mask list, paths made absolute against the list's folder; each checked."""
    entries = json.loads(Path(path).read_text())
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a JSON list of {{image, mask, classes}} entries")
    out = []
    for i, e in enumerate(entries):
        missing = {"image", "mask", "classes"} - set(e)
        if missing:
            raise ValueError(f"{path}: entry {i} lacks {sorted(missing)}")
        unknown = sorted(set(e["classes"].values()) - set(CLASS_INDEX) - {"background"})
        if unknown:
            raise ValueError(f"{path}: entry {i} names classes the network does not have: {unknown}")
        out.append(
            {
                "image": (Path(path).parent / e["image"]).resolve(),
                "mask": (Path(path).parent / e["mask"]).resolve(),
                "classes": {int(k): CLASS_INDEX[v] for k, v in e["classes"].items()},
            }
        )
    return out


def _turned(frame: PlaneFrame, angle_rad: float) -> PlaneFrame:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return PlaneFrame(frame.centre, c * frame.left + s * frame.post, -s * frame.left + c * frame.post)


def planes_of_stack(
    run, image: Volume, mask: Volume, code_to_class: dict[int, int], rng: np.random.Generator, copies: int = 4
) -> PartialPlanes:
    """`copies` network planes per slice of an axial stack (the first as inference centres it, the others moved up
    to SHIFT_MM and turned up to TURN_DEG), with what the mask says on each."""
    if mask.array.shape != image.array.shape:
        raise ValueError(f"mask grid {mask.array.shape} differs from the image's {image.array.shape}")
    # The mask is read voxel for voxel on the image's grid: masks of public sets often carry another origin than
    # their image (MyoSegmenTUM's do), and the voxels are what the annotator drew on.
    lookup = np.zeros(max(256, int(mask.array.max()) + 1), dtype=np.uint8)
    for code, cls in code_to_class.items():
        lookup[code] = cls
    codes = Volume(mask.array.astype(np.int32), image.spacing, image.origin, image.direction)
    images, targets = [], []
    for frame in stack_frames(run, image):
        for j in range(copies):
            f = frame
            if j:
                f = _turned(f.moved(*rng.uniform(-SHIFT_MM, SHIFT_MM, 2)), np.radians(rng.uniform(-TURN_DEG, TURN_DEG)))
            pts = f.points()
            img = sample_points(image, pts)
            if not img.any():
                continue
            lab = sample_points(codes, pts, order=0, cval=-1)
            tgt = lookup[lab.clip(0, len(lookup) - 1)]
            tgt[lab < 0] = UNKNOWN
            images.append(data.normalise(img))
            targets.append(tgt)
    classes = tuple(sorted(set(code_to_class.values()) - {0}))
    return PartialPlanes(np.stack(images).astype(np.float32), np.stack(targets), classes)


def load_partial_planes(run, entries: list[dict], seed: int, copies: int = 4) -> PartialPlanes:
    """The planes of every entry of a partial-mask list (read_partial_list), in one set; the outlined classes must
    be the same in every entry (one loss for the whole set)."""
    rng = np.random.default_rng(seed)
    sets = [
        planes_of_stack(run, read_volume(e["image"]), read_volume(e["mask"]), e["classes"], rng, copies)
        for e in entries
    ]
    if len({s.classes for s in sets}) != 1:
        raise ValueError("every entry of a partial-mask list must outline the same classes")
    return PartialPlanes(
        np.concatenate([s.images for s in sets]), np.concatenate([s.targets for s in sets]), sets[0].classes
    )


def remapped_contrast(img: np.ndarray, rng: np.random.Generator, knots: int = 6) -> np.ndarray:
    """The image through a random, not necessarily monotone, intensity curve that keeps the air dark: on real
    images, where no tissue map says which signal to redraw, this is the nearest thing to the per-tissue random
    contrast of the phantom synthesis (one real sequence then teaches the anatomy under many contrasts)."""
    x = np.linspace(0.0, 1.5, knots)
    y = np.concatenate([[0.0], rng.uniform(0.1, 1.0, knots - 1)])
    return np.interp(img, x, y).astype(np.float32)


def partial_batch(
    planes: PartialPlanes, rng: np.random.Generator, size: int, remap: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 1 x H x W, targets N x H x W) drawn from real planes, half flipped left-right, with a gamma
    jitter (the contrast of one sequence is not the contrast of the next) and, for a share `remap` of them, a
    random intensity curve (`remapped_contrast`)."""
    idx = rng.integers(0, len(planes.images), size=size)
    images, targets = [], []
    for i in idx:
        img, tgt = planes.images[i], planes.targets[i]
        if rng.random() < remap:
            img = remapped_contrast(img, rng)
        img = np.clip(img, 0, None) ** rng.uniform(0.7, 1.4)
        if rng.random() < 0.5:
            img, tgt = img[::-1], tgt[::-1]
        images.append(img)
        targets.append(tgt)
    return np.stack(images)[:, None].astype(np.float32), np.stack(targets).astype(np.int64)


def partial_label_loss(logits: torch.Tensor, target: torch.Tensor, classes: tuple[int, ...]) -> torch.Tensor:
    """Per outlined class: binary cross entropy of the network's probability of it against the mask, plus a soft
    Dice, both over the pixels the mask speaks of; the other classes are free to share the rest."""
    logp = functional.log_softmax(logits, dim=1)
    scored = (target != UNKNOWN).float()
    n = scored.sum().clamp(min=1.0)
    loss = logits.new_zeros(())
    for c in classes:
        lp = logp[:, c]
        p = lp.exp()
        t = (target == c).float()
        log_not = torch.log1p(-p.clamp(max=1 - 1e-6))
        bce = -((t * lp + (1 - t) * log_not) * scored).sum() / n
        dice = 1 - (2 * (p * t * scored).sum() + 1) / ((p * scored).sum() + t.sum() + 1)
        loss = loss + bce + dice
    return loss
