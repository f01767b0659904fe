"""Training samples of the phantom stages, synthesised on the fly from the cached phantom cases.

- `localize_sample`: a 4 mm crop around the spine with its spine mask and level heatmaps (random field of view,
  left-right flips);
- `disc_sample`: a 2 mm patch around a disc (or in the sacrum, or anywhere on the spine) with its classes;
- `Samples`: the endless, seeded stream of a stage's samples (phantoms, and the user's cases at `user_share`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ..labels import VERTEBRA_CODES
from ..parallel import single_threaded_blas
from . import data, levels

LOCALIZE_CROP_4MM = (64, 64, 96)
DISC_PATCH_2MM = (64, 64, 64)
DISC_CLASSES = ("background", "vertebral body", "disc")
# Share of disc-network patches centred in the sacrum: its whole label (body and posterior part) is spine, and
# patches centred on discs rarely showed more than its top (it was most of the missed spine voxels).
SACRUM_FRACTION = 0.12
SACRUM_CODE = VERTEBRA_CODES["S1"]
TRAIN_SEEDS = range(1, 161)
VAL_SEEDS = range(50001, 50017)


def crop_around(shape, size, center, rng, jitter):
    """Slices of a `size` box centred on `center` (voxels) moved by up to `jitter` voxels, kept inside `shape`."""
    start = []
    for n, s, c in zip(shape, size, center):
        lo = int(round(c - s / 2 + rng.uniform(-jitter, jitter)))
        start.append(int(np.clip(lo, 0, max(n - s, 0))))
    return tuple(slice(a, a + s) for a, s in zip(start, size))


def pad_to(arr, size, value=0.0):
    """`arr` padded with `value` at the high end of its last three axes up to `size` (patches at the grid's edge)."""
    pads = [(0, max(0, s - n)) for n, s in zip(arr.shape[-3:], size)]
    if not any(p[1] for p in pads):
        return arr
    lead = [(0, 0)] * (arr.ndim - 3)
    return np.pad(arr, lead + pads, constant_values=value)


def localize_sample(case: data.Case, rng: np.random.Generator):
    """(image 1x64x64x96 at 4 mm, spine mask, heatmaps 9x...) cropped around the spine with a random shift."""
    idx = data.spine_voxels(case)
    center = idx.mean(axis=0) if len(idx) else np.array(case.labels.shape) / 2
    crop2 = crop_around(case.labels.shape, [2 * s for s in LOCALIZE_CROP_4MM], center, rng, 20)
    sub = data.Case(
        case.labels[crop2],
        None if case.tissue is None else case.tissue[crop2],
        None if case.image is None else case.image[crop2],
        {},
    )
    image2 = data.synthesize_image(sub, rng)
    offset = np.array([s.start for s in crop2])
    discs = {k: dict(v, centroid_vox=(np.asarray(v["centroid_vox"]) - offset).tolist()) for k, v in case.discs.items()}
    spine2 = data.spine_mask(sub.labels)
    per_lr = spine2.sum(axis=(1, 2))  # the mean L-R index of the spine voxels, without listing them
    centre_lr = float(per_lr @ np.arange(len(per_lr)) / per_lr.sum()) if per_lr.sum() else None
    fov = data.random_fov_mask(image2.shape, rng, center_lr=centre_lr)
    if fov is not None:
        image2 = image2 * fov
    image4 = data.downsample2(image2)
    spine4 = data.downsample2(spine2.astype(np.float32)) >= 0.5
    heat4 = data.heatmaps(image4.shape, discs, 4.0, scale=0.5)
    if fov is not None:
        fov4 = data.downsample2(fov.astype(np.float32)) >= 0.5
        spine4 &= fov4
        heat4 *= fov4
    if rng.random() < 0.5:  # left-right flip: the canonical i axis is L-R
        image4, spine4, heat4 = image4[::-1], spine4[::-1], heat4[:, ::-1]
    image4 = pad_to(image4, LOCALIZE_CROP_4MM)
    spine4 = pad_to(spine4, LOCALIZE_CROP_4MM, False)
    heat4 = pad_to(heat4, LOCALIZE_CROP_4MM)
    return (
        np.ascontiguousarray(image4[None]),
        np.ascontiguousarray(spine4.astype(np.int64)),
        np.ascontiguousarray(heat4),
    )


DISC_PATCH_MARGIN = 16  # 2 mm voxels of context each side of a disc patch, synthesised and then cut away


def disc_patch_crop(case: data.Case, rng: np.random.Generator, sacrum_share: float) -> tuple[slice, ...]:
    """Where a disc-network patch (with `DISC_PATCH_MARGIN` around it) is cut from a case: centred near a random
    disc, in the sacrum (`sacrum_share` of the patches) or anywhere on the spine (15 %)."""
    u = rng.random()
    sacrum = data.label_voxels(case, SACRUM_CODE) if u < sacrum_share else []
    if len(sacrum):
        center = sacrum[int(rng.integers(len(sacrum)))]
    elif case.discs and u < 0.85:
        info = list(case.discs.values())[int(rng.integers(len(case.discs)))]
        center = np.asarray(info["centroid_vox"])
    else:
        idx = data.spine_voxels(case)
        center = idx[int(rng.integers(len(idx)))].astype(int) if len(idx) else np.array(case.labels.shape) / 2
    big = tuple(s + 2 * DISC_PATCH_MARGIN for s in DISC_PATCH_2MM)
    return crop_around(case.labels.shape, big, center, rng, 14)


def disc_sample(
    case: data.Case, rng: np.random.Generator, sacrum_share: float = SACRUM_FRACTION, targets: str = "hard"
):
    """(image 1x64^3 at 2 mm, target) centred near a random disc, sometimes anywhere on the spine.

    targets "hard": class indices (64^3, int64) on the phantom's own grid. "cut": the same as one-hot fractions
    (3x64^3, float32), about half the patches cut as below. "soft": the patch is resampled onto a
    grid shifted by a random sub-voxel offset and the target is the class fractions there (3x64^3, float32);
    about half of the soft patches lose part of their field of view as multi-slice and lumbar-only localizers do
    (a thin left-right slab or a sub-box, image zero outside); voxels outside it have fractions summing to 0,
    which the loss does not score (inference never reads the networks outside the images).
    Why: at inference the localizer is resampled linearly onto the canonical grid and the probabilities back onto
    the localizer's grid, whose labels are the reference. A network that reproduces hard labels of its own grid
    caps the disc Dice at ~0.93 on that round trip (4 tuning phantoms: 0.913-0.941), one that predicts the
    fractions of the other grid's labels at ~0.97-0.99 (the same cases, measured with the phantom's own labels).
    """
    crop = disc_patch_crop(case, rng, sacrum_share)
    margin = DISC_PATCH_MARGIN
    sub = data.Case(
        case.labels[crop],
        None if case.tissue is None else case.tissue[crop],
        None if case.image is None else case.image[crop],
        {},
    )
    image = data.synthesize_image(sub, rng)
    inner = (slice(margin, -margin),) * 3
    if targets == "hard":
        labels = sub.labels[inner]
        target = np.where(data.disc_mask(labels), 2, np.where(data.spine_mask(labels), 1, 0))
        if rng.random() < 0.5:
            image, target = image[::-1], target[::-1]
        image = image[inner]
        image, target = pad_to(image, DISC_PATCH_2MM), pad_to(target, DISC_PATCH_2MM, False)
        return np.ascontiguousarray(image[None]), np.ascontiguousarray(target.astype(np.int64))
    # "soft": the image and the one-hot labels move by the same offset, both interpolated linearly, as inference
    # does to the image; one voxel of context each side is enough for a shift below one voxel. "cut": no shift.
    ctx = (slice(margin - 1, -margin + 1),) * 3
    labels = sub.labels[ctx]
    classes = np.where(data.disc_mask(labels), 2, np.where(data.spine_mask(labels), 1, 0))
    onehot = [(classes == c).astype(np.float32) for c in range(len(DISC_CLASSES))]
    image = image[ctx]
    if targets == "soft":
        shift = rng.uniform(-0.5, 0.5, size=3)
        onehot = [ndimage.shift(o, shift, order=1, mode="nearest") for o in onehot]
        image = ndimage.shift(image, shift, order=1, mode="nearest")
    soft = np.stack([o[1:-1, 1:-1, 1:-1] for o in onehot])
    image = image[1:-1, 1:-1, 1:-1]
    if rng.random() < 0.5:
        image, soft = image[::-1], soft[:, ::-1]
    spine_lr = np.nonzero((soft[1] + soft[2]).sum(axis=(1, 2)) > 0)[0]
    fov = data.random_fov_mask(image.shape, rng, center_lr=float(spine_lr.mean()) if len(spine_lr) else None)
    if fov is not None:
        image, soft = image * fov, soft * fov
    # Padding (a patch at the edge of the phantom's grid) is outside the field of view too: not scored.
    image, soft = pad_to(image, DISC_PATCH_2MM), pad_to(soft, DISC_PATCH_2MM)
    return np.ascontiguousarray(image[None], dtype=np.float32), np.ascontiguousarray(soft, dtype=np.float32)


def sample_stream_key(seed: int, stream: int, start_step: int) -> list[int]:
    """Seed of a sample stream: the training seed, which stream (0 the V-Net and classifier stages' worker, 1 the
    output network's), and the step the run starts at. Seeded so, a run is repeated by its seed, and a resumed run still does not
    replay the samples its first part saw."""
    return [seed, stream, start_step]


# What a card says about its samples (weights whose streams also took the wall clock say the opposite: a rerun
# with their seed draws other samples).
SAMPLE_STREAMS = "seeded by (training seed, stream, start step): a rerun with this seed draws the same samples"

CACHED_CASES = 200  # decompressed phantom cases kept by the sample worker (~10 MB each: 160 cases ~1.5 GB)


class Samples(torch.utils.data.IterableDataset):
    def __init__(
        self,
        stage: str,
        paths: list[Path],
        seed: int,
        user: list[data.Case],
        user_share: float,
        sacrum_share: float = SACRUM_FRACTION,
        targets: str = "hard",
        start_step: int = 0,
    ):
        self.stage, self.paths, self.seed, self.user, self.user_share = stage, paths, seed, user, user_share
        self.sacrum_share, self.targets, self.start_step = sacrum_share, targets, start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng(sample_stream_key(self.seed, 0 if info is None else info.id, self.start_step))
        # Decompressing a case took 0.024 s, as long as synthesising a classifier patch from it (0.05 s, 16 per
        # batch): training is bound by the sample worker, so each case is read once. Samples never write into
        # a case's arrays (they crop and synthesise new ones).
        cases: dict[int, data.Case] = {}
        while True:
            if self.user and rng.random() < self.user_share:
                case = self.user[int(rng.integers(len(self.user)))]
            else:
                k = int(rng.integers(len(self.paths)))
                case = cases.get(k) or data.load_case(self.paths[k])
                if len(cases) < CACHED_CASES:
                    cases[k] = case
            if self.stage == "levels":
                yield levels.level_sample(case, rng)
            elif self.stage == "localize":
                yield localize_sample(case, rng)
            else:
                yield disc_sample(case, rng, self.sacrum_share, self.targets)


def single_threaded_worker(_worker_id: int) -> None:
    """Sample workers' numpy would otherwise start a spinning BLAS pool beside torch's two threads."""
    single_threaded_blas()
