"""Training of the axial structure network (SpineMeasure's automatic measurements on images): a 2D V-Net on
0.75 mm axial slices near the lumbar discs and vertebrae of phantoms (structure_slices.py), 13 classes
(structure_classes.py). Seeded, resumable, logged like the localizer stages; exported as safetensors + card.

Loss: focal (gamma 2) + one soft Dice term per structure class, so thin structures (facet joint, flavum) weigh
as much as the psoas. Validation: Dice per class on fixed synthetic slices of the validation phantoms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .losses import focal_dice_loss
from .model_cards import write_weights_and_card
from .partial_labels import partial_batch, partial_label_loss
from .structure_classes import CLASS_INDEX, N_STRUCTURE_CLASSES, STRUCTURE_CLASSES
from .structure_slices import (
    DRAWS_PER_PLANE,
    SLAB_SHAPE,
    SLAB_STEP_MM,
    SUB_SLICES,
    SUB_STEP_MM,
    TRAIN_SEEDS,
    VAL_SEEDS,
    batch,
    build_slab_cache,
    load_slabs,
)
from .train import training_precision
from .training_loop import resume, run_training
from .vnet import VNet

STAGE = "structures"
BASE_CHANNELS = 12  # 0.79 s a bf16 step of 8 slices on the 2-core EPYC (16 channels: 1.09 s, 8: 0.53 s)
LEVELS = 5
BATCH = 8
STEPS = 2400
PEAK_LR = 2e-3
VALIDATE_EVERY = 400
DICE_SETS = tuple((c,) for c in range(1, N_STRUCTURE_CLASSES))


def make_structure_net() -> VNet:
    return VNet(1, N_STRUCTURE_CLASSES, BASE_CHANNELS, LEVELS, dims=2)


def dice_per_class(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    out = {}
    for c in range(1, N_STRUCTURE_CLASSES):
        p, t = pred == c, target == c
        denom = p.sum() + t.sum()
        if denom:
            out[STRUCTURE_CLASSES[c]] = float(2 * (p & t).sum() / denom)
    return out


def herniation_slabs(classes: np.ndarray) -> np.ndarray:
    """Indices of the slabs that show a herniation (about 5 % of them, ~30 pixels each)."""
    return np.nonzero((classes == CLASS_INDEX["herniation"]).any(axis=(1, 2)))[0]


def _validation(net, classes, tissue, precision: str):
    rng = np.random.default_rng(424242)  # fixed validation draws, apart from every training seed
    # A quarter of the validation draws show a herniation: at its natural ~5 % a Dice on 48 draws rests on two.
    images, targets = batch(classes, tissue, rng, 48, herniation_slabs(classes), 12)

    def validate() -> dict:
        net.eval()
        preds = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            for i in range(0, len(images), 8):
                preds.append(net(torch.from_numpy(images[i : i + 8])).float().argmax(dim=1).numpy())
        net.train()
        scores = dice_per_class(np.concatenate(preds), targets)
        return {"dice_mean": float(np.mean(list(scores.values()))), "dice": scores}

    return validate


def train_structures(
    out_dir: Path,
    cache: Path,
    *,
    steps: int = STEPS,
    seed: int = 31,
    precision: str = "auto",
    init: Path | None = None,
    herniation_per_batch: int = 0,
    peak_lr: float = PEAK_LR,
    real_like: bool = False,
    partial_list: Path | None = None,
    partial_per_batch: int = 4,
    partial_remap: float = 0.0,
    log=print,
) -> Path:
    """Train (or, from `init` weights, fine-tune) the structure network; `herniation_per_batch` slabs of each
    batch are drawn from those that show a herniation (the rare class the plain draw leaves unlearnt). With a
    `partial_list` (partial_labels.py) each batch also holds `partial_per_batch` real planes, scored only on the
    classes their masks outline."""
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = training_precision(precision)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    train_classes, train_tissue = load_slabs(build_slab_cache(TRAIN_SEEDS, cache))
    val_classes, val_tissue = load_slabs(build_slab_cache(VAL_SEEDS, cache))
    log(f"{len(train_classes)} training slices, {len(val_classes)} validation slices; {precision}")
    net = make_structure_net()
    if init is not None:
        from safetensors.torch import load_file

        net.load_state_dict(load_file(str(init)))
        log(f"starting from {init}")
    opt = torch.optim.AdamW(net.parameters(), lr=peak_lr, weight_decay=1e-4)
    rare = herniation_slabs(train_classes)
    partial = None
    if partial_list is not None:
        from .partial_labels import load_partial_planes, read_partial_list
        from .segment_structures import load_structure_net

        # Planes centred as inference centres them: by the network we start from (the shipped one by default).
        run, _ = load_structure_net(init.parent) if init is not None else load_structure_net()
        partial = load_partial_planes(run, read_partial_list(partial_list), seed)
        log(f"{len(partial.images)} real planes from {partial_list}, scored on classes {partial.classes}")
    start, history = resume(out_dir / f"{STAGE}_checkpoint.safetensors", net, opt, STAGE, log)
    rng = np.random.default_rng((seed, start))

    def batches():
        while True:
            x, y = batch(train_classes, train_tissue, rng, BATCH, rare, herniation_per_batch, real_like)
            if partial is None:
                yield torch.from_numpy(x), torch.from_numpy(y), None
                continue
            xr, yr = partial_batch(partial, rng, partial_per_batch, partial_remap)
            yield torch.from_numpy(np.concatenate([x, xr])), torch.from_numpy(y), torch.from_numpy(yr)

    def loss_of(b) -> torch.Tensor:
        x, y, y_real = b
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = net(x).float()
        loss = focal_dice_loss(logits[: len(y)], y, dice_sets=DICE_SETS)
        if y_real is not None:
            loss = loss + partial_label_loss(logits[len(y) :], y_real, partial.classes)
        return loss

    history = run_training(
        STAGE,
        net,
        opt,
        batches(),
        loss_of,
        _validation(net, val_classes, val_tissue, precision),
        start=start,
        steps=steps,
        peak_lr=peak_lr,
        history=history,
        out_dir=out_dir,
        validate_every=VALIDATE_EVERY,
        log=log,
    )
    card = {
        "stage": STAGE,
        "architecture": {
            "kind": "VNet",
            "dims": 2,
            "in_channels": 1,
            "out_channels": N_STRUCTURE_CLASSES,
            "base_channels": BASE_CHANNELS,
            "levels": LEVELS,
        },
        "outputs": list(STRUCTURE_CLASSES),
        "input": {"pixel_mm": SLAB_STEP_MM, "shape": list(SLAB_SHAPE), "axes": ["left", "posterior"]},
        "training_data": {
            "phantom_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1],
            "validation_seeds": [VAL_SEEDS.start, VAL_SEEDS.stop - 1],
            "slices": "planes near each lumbar disc and vertebra, tilted 0-9 deg, moved along the normal and in the "
            f"plane, {DRAWS_PER_PLANE} per plane; {SUB_SLICES} tissue planes {SUB_STEP_MM} mm apart for thick slices",
            "synthesis": "random signal per tissue or jittered T1/T2, inversion, bias, blur, coarser acquisition, "
            "gamma, noise, left-right flips",
        },
        "training_seed": seed,
        "steps": steps,
        "batch": BATCH,
        "peak_learning_rate": peak_lr,
        "initial_weights": str(init) if init else None,
        "herniation_slabs_per_batch": herniation_per_batch,
        "real_like_augmentation": real_like,
        "partial_masks": None
        if partial is None
        else {
            "list": str(partial_list),
            "planes": len(partial.images),
            "per_batch": partial_per_batch,
            "random_contrast_share": partial_remap,
        },
        "training_precision": precision,
        "validation": history[-1] if history else {},
    }
    return write_weights_and_card(out_dir, STAGE, net, card)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="train the axial structure network on phantoms")
    ap.add_argument("--out", default="models/structures")
    ap.add_argument("--cache", default=".cache/slabs")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--init", help="weights to start from (fine-tuning)")
    ap.add_argument("--herniation-per-batch", type=int, default=0)
    ap.add_argument("--lr", type=float, default=PEAK_LR)
    ap.add_argument("--real-like", action="store_true", help="elastic shapes, clutter, texture, reformat blur")
    ap.add_argument("--partial", help="JSON list of real axial images with partial masks (partial_labels.py)")
    ap.add_argument("--partial-per-batch", type=int, default=4)
    ap.add_argument("--partial-remap", type=float, default=0.0, help="share of real planes given a random contrast")
    args = ap.parse_args()
    train_structures(
        Path(args.out),
        Path(args.cache),
        steps=args.steps,
        seed=args.seed,
        precision=args.precision,
        init=Path(args.init) if args.init else None,
        herniation_per_batch=args.herniation_per_batch,
        peak_lr=args.lr,
        real_like=args.real_like,
        partial_list=Path(args.partial) if args.partial else None,
        partial_per_batch=args.partial_per_batch,
        partial_remap=args.partial_remap,
    )


if __name__ == "__main__":
    main()
