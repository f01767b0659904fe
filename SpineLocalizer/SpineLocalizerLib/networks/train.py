"""Training of the two V-Nets (seeded, resumable, logged) and export as safetensors with a JSON card.

- `localize` (alias `labels`): one V-Net at 4 mm over the whole field of view with 2 + 9 output channels:
  spine / background logits (LVP module 1) and one heatmap per disc level (module 3). The two tasks share the
  encoder, which halves the CPU time of running them separately.
- `discs`: one V-Net at 2 mm on the spine's bounding box: background / vertebral body / disc logits (module 2;
  the body class gives the spine mask at 2 mm where the 4 mm localization is coarse).
- `levels`: a small classifier (networks/levels.py) of 96 mm patches around each disc: thoracic, lumbar or
  lumbosacral; cross-entropy, batches of 16. It feeds the lumbar count of module 3.
Segmentation loss: focal loss (gamma = 2, LVP) + soft Dice; heatmap loss: mean squared error against the
Gaussian heatmaps (peak 256, LVP), computed on the 0-1 scale and weighted towards the peaks (`heatmap_loss`).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from scipy import ndimage

from ..labels import VERTEBRA_CODES
from ..parallel import single_threaded_blas
from . import data as D
from . import levels as LV
from .compiled import TrainingForward, wants_compile
from .models import STAGES, StageConfig, make_net
from .vnet import VNet

LOCALIZE_CROP_4MM = (64, 64, 96)
DISC_PATCH_2MM = (64, 64, 64)
DISC_CLASSES = ("background", "vertebral body", "disc")
# Share of disc-network patches centred in the sacrum: its whole label (body and posterior part) is spine, and
# patches centred on discs rarely showed more than its top (it was most of the missed spine voxels).
SACRUM_FRACTION = 0.12
SACRUM_CODE = VERTEBRA_CODES["S1"]
# Disc-stage targets (train --targets): what each one means, as the weights' card records it.
DISC_TARGETS = {
    "hard": "class of each voxel of the phantom's 2 mm grid",
    "soft": "class fractions on a grid shifted by a random sub-voxel offset (image resampled the same way); "
    "about half the patches cut to part of their field of view, not scored outside it",
    "cut": "class of each voxel of the phantom's 2 mm grid; about half the patches cut to part of their field of "
    "view, not scored outside it",
}
DEFAULT_DISC_TARGETS = "hard"
TRAIN_SEEDS = range(1, 161)
VAL_SEEDS = range(50001, 50017)


LEVEL_BATCH = 16
PRECISIONS = ("auto", "bf16", "fp32")


def training_precision(requested: str = "auto") -> str:
    """The arithmetic of the forward pass in training: "bf16" (autocast) or "fp32".

    "auto" takes bf16 where the CPU computes it natively (AVX512-BF16 or AMX, as oneDNN reports): on this
    project's 2-core EPYC a training step of the disc network took 0.44 s in fp32 and 0.20 s in bf16, the
    localize network 0.76 and 0.27 s. Elsewhere bf16 is emulated and slower, so "auto" stays fp32.
    Weights, optimizer state, losses and validation stay fp32 either way.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested != "auto":
        return requested
    from .runtime import native_bf16

    return "bf16" if native_bf16() else "fp32"


def adapt_head(state: dict, net: VNet) -> dict:
    """Weights of a two-class disc network (background, disc) for the three-class one (background, body, disc):
    the disc channel keeps its weights, the new body channel starts as the background channel lowered by 5 logits,
    so the disc probability is unchanged at the start (to <1 %) and the body class is learnt from there."""
    out = dict(state)
    for name in ("head.weight", "head.bias"):
        old, new = state[name], net.state_dict()[name]
        if old.shape[0] == 2 and new.shape[0] == 3:
            body = old[:1] - 5.0 if name == "head.bias" else old[:1]
            out[name] = torch.cat([old[:1], body, old[1:]], dim=0)
    return out


# --------------------------------------------------------------------------------------------- samples


def _crop(shape, size, center, rng, jitter):
    start = []
    for n, s, c in zip(shape, size, center):
        lo = int(round(c - s / 2 + rng.uniform(-jitter, jitter)))
        start.append(int(np.clip(lo, 0, max(n - s, 0))))
    return tuple(slice(a, a + s) for a, s in zip(start, size))


def _pad_to(arr, size, value=0.0):
    pads = [(0, max(0, s - n)) for n, s in zip(arr.shape[-3:], size)]
    if not any(p[1] for p in pads):
        return arr
    lead = [(0, 0)] * (arr.ndim - 3)
    return np.pad(arr, lead + pads, constant_values=value)


def localize_sample(case: D.Case, rng: np.random.Generator):
    """(image 1x64x64x96 at 4 mm, spine mask, heatmaps 9x...) cropped around the spine with a random shift."""
    idx = D.spine_voxels(case)
    center = idx.mean(axis=0) if len(idx) else np.array(case.labels.shape) / 2
    crop2 = _crop(case.labels.shape, [2 * s for s in LOCALIZE_CROP_4MM], center, rng, 20)
    sub = D.Case(
        case.labels[crop2],
        None if case.tissue is None else case.tissue[crop2],
        None if case.image is None else case.image[crop2],
        {},
    )
    image2 = D.synthesize_image(sub, rng)
    offset = np.array([s.start for s in crop2])
    discs = {k: dict(v, centroid_vox=(np.asarray(v["centroid_vox"]) - offset).tolist()) for k, v in case.discs.items()}
    spine2 = D.spine_mask(sub.labels)
    per_lr = spine2.sum(axis=(1, 2))  # the mean L-R index of the spine voxels, without listing them
    centre_lr = float(per_lr @ np.arange(len(per_lr)) / per_lr.sum()) if per_lr.sum() else None
    fov = D.random_fov_mask(image2.shape, rng, center_lr=centre_lr)
    if fov is not None:
        image2 = image2 * fov
    image4 = D.downsample2(image2)
    spine4 = D.downsample2(spine2.astype(np.float32)) >= 0.5
    heat4 = D.heatmaps(image4.shape, discs, 4.0, scale=0.5)
    if fov is not None:
        fov4 = D.downsample2(fov.astype(np.float32)) >= 0.5
        spine4 &= fov4
        heat4 *= fov4
    if rng.random() < 0.5:  # left-right flip: the canonical i axis is L-R
        image4, spine4, heat4 = image4[::-1], spine4[::-1], heat4[:, ::-1]
    image4 = _pad_to(image4, LOCALIZE_CROP_4MM)
    spine4 = _pad_to(spine4, LOCALIZE_CROP_4MM, False)
    heat4 = _pad_to(heat4, LOCALIZE_CROP_4MM)
    return (
        np.ascontiguousarray(image4[None]),
        np.ascontiguousarray(spine4.astype(np.int64)),
        np.ascontiguousarray(heat4),
    )


DISC_PATCH_MARGIN = 16  # 2 mm voxels of context each side of a disc patch, synthesised and then cut away


def disc_patch_crop(case: D.Case, rng: np.random.Generator, sacrum_share: float) -> tuple[slice, ...]:
    """Where a disc-network patch (with `DISC_PATCH_MARGIN` around it) is cut from a case: centred near a random
    disc, in the sacrum (`sacrum_share` of the patches) or anywhere on the spine (15 %)."""
    u = rng.random()
    sacrum = D.label_voxels(case, SACRUM_CODE) if u < sacrum_share else []
    if len(sacrum):
        center = sacrum[int(rng.integers(len(sacrum)))]
    elif case.discs and u < 0.85:
        info = list(case.discs.values())[int(rng.integers(len(case.discs)))]
        center = np.asarray(info["centroid_vox"])
    else:
        idx = D.spine_voxels(case)
        center = idx[int(rng.integers(len(idx)))].astype(int) if len(idx) else np.array(case.labels.shape) / 2
    big = tuple(s + 2 * DISC_PATCH_MARGIN for s in DISC_PATCH_2MM)
    return _crop(case.labels.shape, big, center, rng, 14)


def disc_sample(case: D.Case, rng: np.random.Generator, sacrum_share: float = SACRUM_FRACTION, targets: str = "hard"):
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
    sub = D.Case(
        case.labels[crop],
        None if case.tissue is None else case.tissue[crop],
        None if case.image is None else case.image[crop],
        {},
    )
    image = D.synthesize_image(sub, rng)
    inner = (slice(margin, -margin),) * 3
    if targets == "hard":
        labels = sub.labels[inner]
        target = np.where(D.disc_mask(labels), 2, np.where(D.spine_mask(labels), 1, 0))
        if rng.random() < 0.5:
            image, target = image[::-1], target[::-1]
        image = image[inner]
        image, target = _pad_to(image, DISC_PATCH_2MM), _pad_to(target, DISC_PATCH_2MM, False)
        return np.ascontiguousarray(image[None]), np.ascontiguousarray(target.astype(np.int64))
    # "soft": the image and the one-hot labels move by the same offset, both interpolated linearly, as inference
    # does to the image; one voxel of context each side is enough for a shift below one voxel. "cut": no shift.
    ctx = (slice(margin - 1, -margin + 1),) * 3
    labels = sub.labels[ctx]
    classes = np.where(D.disc_mask(labels), 2, np.where(D.spine_mask(labels), 1, 0))
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
    fov = D.random_fov_mask(image.shape, rng, center_lr=float(spine_lr.mean()) if len(spine_lr) else None)
    if fov is not None:
        image, soft = image * fov, soft * fov
    # Padding (a patch at the edge of the phantom's grid) is outside the field of view too: not scored.
    image, soft = _pad_to(image, DISC_PATCH_2MM), _pad_to(soft, DISC_PATCH_2MM)
    return np.ascontiguousarray(image[None], dtype=np.float32), np.ascontiguousarray(soft, dtype=np.float32)


# --------------------------------------------------------------------------------------------- losses


def focal_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, dice_sets: tuple = ((1,),)
) -> torch.Tensor:
    """Focal loss over all classes + one soft Dice term per set of classes (a set = one foreground structure:
    (2,) the discs, (1, 2) the spine = bodies + discs).

    `target` holds class indices (N, ...) or class fractions (N, C, ...); with one-hot fractions both give the
    same loss. With fractions the focal term is the fraction-weighted sum over classes, and voxels whose
    fractions sum to 0 (outside the field of view) are scored by neither term."""
    logp = F.log_softmax(logits, dim=1)
    fractions = target.is_floating_point()
    if fractions:
        focal = (-(target * (1 - logp.exp()) ** gamma * logp).sum(dim=1)).mean()
        scored = target.sum(dim=1)
    else:
        logp_t = logp.gather(1, target[:, None]).squeeze(1)
        focal = (-((1 - logp_t.exp()) ** gamma) * logp_t).mean()
    loss = focal
    for classes in dice_sets:
        prob = sum(logp[:, c].exp() for c in classes)
        if fractions:
            prob = prob * scored
            tgt = sum(target[:, c] for c in classes)
        else:
            tgt = sum((target == c).float() for c in classes)
        loss = loss + 1 - (2 * (prob * tgt).sum() + 1) / (prob.sum() + tgt.sum() + 1)
    return loss


DISC_DICE_SETS = ((2,), (1, 2))


def heatmap_loss(pred: torch.Tensor, heat: torch.Tensor, competition: float = 0.0) -> torch.Tensor:
    """Mean squared error on the heatmaps scaled to 0-1 (peak 256 -> 1), weighted towards the peaks, plus
    `competition` x the cross-entropy of the level channels (as logits / 0.1) near the disc centres.

    Plain MSE over a volume that is 99.7 % zero is minimised by predicting zero everywhere; weighting each voxel
    by 1 + 20 x its target makes the few voxels near a disc centre count (the weighting is a common fix for
    heatmap regression). The factor 50 puts it on the scale of the segmentation loss.
    Why the competition term: with the weighted MSE alone the shipped network answers every disc on every
    channel alike (the true level's channel the strongest on 8 of 64 discs, chance; README); the cross-entropy
    where a target exceeds half its peak makes the channels compete for each disc.
    """
    t = heat / D.HEATMAP_PEAK
    loss = 50.0 * ((1.0 + 20.0 * t) * (pred - t) ** 2).mean()
    near = t.max(dim=1).values > 0.5
    if competition > 0.0 and bool(near.any()):
        logits = (pred / LEVEL_LOGIT_SCALE).permute(0, 2, 3, 4, 1)[near]
        level = t.permute(0, 2, 3, 4, 1)[near].argmax(dim=1)
        loss = loss + competition * F.cross_entropy(logits, level)
    return loss


LEVEL_LOGIT_SCALE = 0.1  # heatmaps live on 0-1: a lead of 0.3 is a factor e^3 between channels


def dice_score(pred: np.ndarray, target: np.ndarray) -> float:
    inter = np.logical_and(pred, target).sum()
    total = pred.sum() + target.sum()
    return float(2 * inter / total) if total else 1.0


# --------------------------------------------------------------------------------------------- checkpoints


def _save_checkpoint(path: Path, net, opt, step: int, log: list) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    state = opt.state_dict()
    for idx, st in state["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"opt.{idx}.{name}"] = (
                    val.detach().contiguous().reshape(-1) if val.dim() == 0 else val.detach().contiguous()
                )
    meta = {"step": str(step), "param_groups": json.dumps(state["param_groups"]), "log": json.dumps(log[-200:])}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def _load_checkpoint(path: Path, net, opt) -> tuple[int, list]:
    from safetensors import safe_open

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict = {"state": {}, "param_groups": json.loads(meta["param_groups"])}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            opt_state["state"].setdefault(int(idx), {})[name] = v.reshape(()) if name == "step" else v
    opt.load_state_dict(opt_state)
    return int(meta["step"]), json.loads(meta["log"])


# --------------------------------------------------------------------------------------------- training


def sample_stream_key(seed: int, stream: int, start_step: int) -> list[int]:
    """Seed of a sample stream: the training seed, which stream (0 the V-Net and classifier stages' worker, 1 the
    output network's), and the step the run starts at. Seeded so, a run is repeated by its seed, and a resumed run still does not
    replay the samples its first part saw."""
    return [seed, stream, start_step]


# What a card says about its samples (weights whose streams also took the wall clock say the opposite: a rerun
# with their seed draws other samples).
SAMPLE_STREAMS = "seeded by (training seed, stream, start step): a rerun with this seed draws the same samples"


# Steps between validations, which are also the checkpoints a stopped run resumes from. 300 rather than 150
# halves the validation time (~2 min of a full training run on the 2-core EPYC) and a resume loses at most
# ~2 min of the disc network's steps.
VALIDATE_EVERY = 300

CACHED_CASES = 200  # decompressed phantom cases kept by the sample worker (~10 MB each: 160 cases ~1.5 GB)


class _Samples(torch.utils.data.IterableDataset):
    def __init__(
        self,
        stage: str,
        paths: list[Path],
        seed: int,
        user: list[D.Case],
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
        cases: dict[int, D.Case] = {}
        while True:
            if self.user and rng.random() < self.user_share:
                case = self.user[int(rng.integers(len(self.user)))]
            else:
                k = int(rng.integers(len(self.paths)))
                case = cases.get(k) or D.load_case(self.paths[k])
                if len(cases) < CACHED_CASES:
                    cases[k] = case
            if self.stage == "levels":
                yield LV.level_sample(case, rng)
            elif self.stage == "localize":
                yield localize_sample(case, rng)
            else:
                yield disc_sample(case, rng, self.sacrum_share, self.targets)


# Validation samples are fixed (seeded per case), so each is synthesised once per process and reused at every
# validation: re-synthesising them was most of a validation's time (levels 16 s, localize 10 s, discs 4.6 s per
# call on the 2-core EPYC, every `VALIDATE_EVERY` steps).
_VAL_SAMPLES: dict[tuple[str, str], list] = {}


def _val_samples(stage: str, path: Path, k: int) -> list:
    key = (stage, str(path))
    if key not in _VAL_SAMPLES:
        rng = np.random.default_rng(900 + k)
        case = D.load_case(path)
        if stage == "levels":
            samples = [LV.level_sample(case, rng) for _ in range(4)]
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
        case = D.load_case(path)
        junction = [info for info in case.discs.values() if info["name"] in LV.JUNCTION]
        image = _val_image(case, k) if junction else None
        _VAL_SAMPLES[key] = [
            (LV.patches_at(image, [info["centroid_vox"]]), LV.class_of(info["name"])) for info in junction
        ]
    return _VAL_SAMPLES[key]


def _val_image(case: D.Case, k: int) -> np.ndarray:
    """One whole synthetic image of a validation case (fixed seed), as inference would see it."""
    return D.synthesize_image(case, np.random.default_rng(700 + k))


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
                for ch in range(len(D.LEVELS)):
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


def _single_threaded_worker(_worker_id: int) -> None:
    # The sample worker's numpy would otherwise start a spinning BLAS pool beside torch's two threads.
    single_threaded_blas()


def train(
    stage: str,
    cache: Path,
    out_dir: Path,
    *,
    steps: int | None = None,
    seed: int = 0,
    user_folder: Path | None = None,
    user_share: float = 0.5,
    lr: float | None = None,
    threads: int | None = None,
    log=print,
    init_from: Path | None = None,
    precision: str = "auto",
    width: int | None = None,
    sacrum_share: float | None = None,
    targets: str | None = None,
    level_competition: float | None = None,
    compile: str = "auto",
) -> Path:
    stage = "localize" if stage == "labels" else stage
    if level_competition is not None and (stage != "localize" or level_competition < 0.0):
        raise ValueError(
            f"--level-competition is a weight (>= 0) of the localize stage's heatmap loss, got {level_competition!r}"
        )
    competition = level_competition or 0.0
    precision = training_precision(precision)
    compiled = wants_compile(compile)
    cfg = STAGES[stage]
    if sacrum_share is not None and (stage != "discs" or not 0.0 <= sacrum_share <= 1.0):
        raise ValueError(
            f"--sacrum-share is the share (0-1) of disc-network patches centred in the sacrum, got {sacrum_share!r}"
        )
    sacrum_share = SACRUM_FRACTION if sacrum_share is None else sacrum_share
    if targets is not None and (stage != "discs" or targets not in DISC_TARGETS):
        raise ValueError(f"--targets ({'/'.join(DISC_TARGETS)}) is an option of the discs stage, got {targets!r}")
    targets = targets or DEFAULT_DISC_TARGETS
    if width is not None:
        if stage == "levels":
            raise ValueError("--width sets the channels of a V-Net stage (localize, discs), not of the classifier")
        if not 2 <= width <= 64:
            raise ValueError(f"width (V-Net channels at full resolution) must be 2-64, got {width}")
        cfg = replace(cfg, base_channels=width)
    elif init_from is not None and stage != "levels":
        # A fine-tune keeps the width of the weights it starts from.
        init_arch = json.loads((Path(init_from) / f"{stage}.json").read_text()).get("architecture", {})
        cfg = replace(cfg, base_channels=init_arch.get("base_channels", cfg.base_channels))
    steps = steps or cfg.steps
    peak_lr = lr or cfg.lr  # a lower peak keeps a fine-tune closer to the weights it starts from
    torch.manual_seed(seed)
    torch.set_num_threads(threads or cfg.threads)
    # The user's data are checked before anything slow (the phantom cache) starts.
    if not 0.0 < user_share <= 1.0:
        raise ValueError(f"user_share must be in (0, 1], got {user_share!r}")
    user = D.user_cases(user_folder) if user_folder else []
    if user_folder and not user:
        raise ValueError(f"{user_folder}: no <case>_image.nii.gz + <case>_labels.nii.gz pairs found")
    if stage == "levels" and user:
        empty = [k for k, case in enumerate(user) if not case.level_targets]
        if empty:
            raise ValueError(
                f"{len(empty)} of the {len(user)} user label maps give no disc position for the levels stage: "
                "label the discs or at least two adjacent vertebral bodies (VerSe codes)"
            )
    paths = D.build_cache(list(TRAIN_SEEDS), cache)
    val_paths = D.build_cache(list(VAL_SEEDS), cache)
    net = make_net(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=peak_lr)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / f"{stage}_checkpoint.safetensors"
    start, history = 0, []
    if ckpt.exists():
        try:
            start, history = _load_checkpoint(ckpt, net, opt)
        except RuntimeError as err:  # e.g. a checkpoint of another width in the same folder
            raise ValueError(
                f"{ckpt} does not fit this {stage} network ({err}); resume with the same settings or use another --out"
            ) from err
        log(f"resuming {stage} from step {start}")
    elif init_from is not None:
        # Fine-tuning (e.g. on a user's own data) starts from existing weights with a fresh optimizer.
        from .models import load_model

        state = load_model(stage, init_from)[0].state_dict()
        net.load_state_dict(LV.adapt_head(state, net) if stage == "levels" else adapt_head(state, net))
        log(f"starting {stage} from the weights in {init_from}")
    forward = TrainingForward(net, compiled, log)
    log(f"training {stage} in {precision}" + (" (torch.compile)" if compiled else ""))
    loader = torch.utils.data.DataLoader(
        _Samples(stage, paths, seed, user, user_share, sacrum_share, targets, start_step=start),
        batch_size=LEVEL_BATCH if stage == "levels" else None,
        num_workers=1,
        worker_init_fn=_single_threaded_worker,
        prefetch_factor=4,
        persistent_workers=True,
    )
    it = iter(loader)
    t0 = time.time()
    running = None
    for step in range(start, steps):
        lr = peak_lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = next(it)
        if stage == "levels":
            img, target = batch
        else:
            img, *target = (torch.as_tensor(x)[None] for x in batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = forward(img)
        out = out.float()  # losses in fp32
        if stage == "localize":
            spine, heat = target
            loss = focal_dice_loss(out[:, :2], spine) + heatmap_loss(out[:, 2:], heat, competition)
        elif stage == "levels":
            loss = F.cross_entropy(out, target)
        else:
            loss = focal_dice_loss(out, target[0], dice_sets=DISC_DICE_SETS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % 25 == 0:
            done = step + 1 - start
            eta = (time.time() - t0) / done * (steps - step - 1)
            print(
                f"\r{stage} step {step + 1}/{steps} loss {running:.4f} lr {lr:.2e} eta {eta / 60:.1f} min",
                end="",
                file=sys.stderr,
                flush=True,
            )
        if (step + 1) % VALIDATE_EVERY == 0 or step + 1 == steps:
            entry = {"step": step + 1, "loss": running, "time_s": time.time() - t0, **validate(stage, net, val_paths)}
            history.append(entry)
            log(f"\n{json.dumps(entry)}")
            with open(out_dir / f"{stage}_log.jsonl", "a") as fh:
                fh.write(json.dumps(entry) + "\n")
            _save_checkpoint(ckpt, net, opt, step + 1, history)
    start_card = None
    if init_from is not None:
        start_card = json.loads((Path(init_from) / f"{stage}.json").read_text())
    user_names = (
        sorted(p.name.split("_image.nii.gz")[0] for p in Path(user_folder).glob("*_image.nii.gz")) if user else []
    )
    return export(
        stage,
        net,
        out_dir,
        history,
        seed=seed,
        steps=steps,
        user=user_names,
        user_share=user_share,
        peak_lr=peak_lr,
        init_card=start_card,
        precision=precision,
        cfg=cfg,
        sacrum_share=sacrum_share if stage == "discs" else None,
        targets=targets if stage == "discs" else None,
        level_competition=level_competition,
    )


def export(
    stage: str,
    net: VNet,
    out_dir: Path,
    history: list,
    *,
    seed: int,
    steps: int,
    user: list[str],
    user_share: float = 0.5,
    peak_lr: float | None = None,
    init_card: dict | None = None,
    precision: str = "fp32",
    cfg: StageConfig | None = None,
    sacrum_share: float | None = None,
    targets: str | None = None,
    level_competition: float | None = None,
) -> Path:
    cfg = cfg or STAGES[stage]
    weights = out_dir / f"{stage}.safetensors"
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(weights))
    vnet = {"class": "VNet", "in_channels": 1, "out_channels": cfg.out_channels}
    vnet.update(base_channels=cfg.base_channels, levels=cfg.levels)
    outputs = {
        "localize": ["background", "spine"] + [f"heatmap {lv}" for lv in D.LEVELS],
        "discs": list(DISC_CLASSES),
        "levels": list(LV.CLASSES),
    }[stage]
    card = {
        "stage": stage,
        "architecture": {"class": "LevelNet", "in_channels": 1, "classes": list(LV.CLASSES)}
        if stage == "levels"
        else vnet,
        "outputs": outputs,
        "spacing_mm": cfg.spacing_mm,
        "input": "canonical grid (networks.canonical), intensities scaled by networks.data.normalise; sides multiple of 8"
        if stage != "levels"
        else "48^3 patch of the canonical grid centred on a disc candidate, normalised on its own",
        "input_size_trained": list(
            {"localize": LOCALIZE_CROP_4MM, "discs": DISC_PATCH_2MM, "levels": LV.PATCH_2MM}[stage]
        ),
        "training_data": {
            "phantom_seeds": f"{TRAIN_SEEDS.start}-{TRAIN_SEEDS.stop - 1}",
            "validation_seeds": f"{VAL_SEEDS.start}-{VAL_SEEDS.stop - 1}",
            "user_cases": user,  # mixed in with the phantoms when not empty
            "user_share": user_share if user else 0.0,
            "synthesis": "random per-tissue contrast, inversion, bias, gamma, blur, noise, thick slices, random FOV, L-R flips",
            **({} if sacrum_share is None else {"sacrum_share": sacrum_share}),
            **({} if targets is None else {"targets": DISC_TARGETS[targets]}),
            **({} if not level_competition else {"heatmap_level_competition": level_competition}),
        },
        "training_seed": seed,
        "sample_streams": SAMPLE_STREAMS,
        "steps": steps,
        "peak_learning_rate": peak_lr or STAGES[stage].lr,
        "training_precision": precision,
        # Fine-tuned weights say what they started from (its seed and steps, and what that started from).
        "initialised_from": None
        if init_card is None
        else {k: init_card.get(k) for k in ("training_seed", "steps", "validation", "initialised_from")},
        "validation": history[-1] if history else {},
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    (out_dir / f"{stage}.json").write_text(json.dumps(card, indent=1))
    return weights
