"""Training of the output disc network (networks/fine.py): a copy of the disc network with the 1 mm head,
fine-tuned together from the disc weights.

Samples: three in four are boxes shaped like the one the pipeline segments (the spine across, a margin, part of
its length: `box_patch_crop`), the rest the disc network's own patches (`train.disc_patch_crop`); both
synthesised as the disc network's (`data.synthesize_image` on the phantom's 2 mm tissues), with targets from the
phantom evaluated on the 1 mm grid (`data.build_fine_cache`); about half of them are cut to part of their field of view as multi-slice and
lumbar-only localizers are (`data.random_fov_mask`, not scored outside: better Dice on stacks).
Loss: focal (gamma 2) + Dice of the discs and of the spine, at 1 mm, as for the disc network. The head learns
at `HEAD_LR_FACTOR` x the rate of the network (it starts from zero, the network from trained weights).
Why the head alone on the frozen network was not enough: trained so (1000 steps, seed 23) it lifted the 1 mm
validation disc Dice from 0.9066 (the 2 mm logits interpolated) to 0.9081 only.
Seeded, resumable, logged like the other stages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as functional

from . import MODEL_DIR, data
from .fine import FINE_STAGE, DiscNetWithFine, FineHead, fine_logits
from .losses import DISC_DICE_SETS, dice_score, focal_dice_loss
from .model_cards import write_weights_and_card
from .models import recipe_stage
from .samples import (
    DISC_CLASSES,
    DISC_PATCH_MARGIN,
    SACRUM_CODE,
    SACRUM_FRACTION,
    SAMPLE_STREAMS,
    TRAIN_SEEDS,
    VAL_SEEDS,
    disc_patch_crop,
    pad_to,
    sample_stream_key,
    single_threaded_worker,
)
from .train import training_precision
from .training_loop import resume, run_training
from .vnet import VNet

FINE_STEPS = recipe_stage("discs_fine")["steps"]
PATCH_MULTIPLE = 8  # the disc V-Net's 3 halvings (infer._run pads to it too)
FINE_LR = 5e-4
HEAD_LR_FACTOR = 4.0
FINE_VALIDATE_EVERY = 250


BOX_SHARE = 0.75  # of the patches cut like the box the pipeline runs the network on (`box_patch_crop`)
BOX_MARGIN_2MM = (4, 10)  # range of the box's margin around the spine, per side (the pipeline's: 6, 12 mm)
BOX_SI_2MM = (48, 88)  # range of the box's length along S-I (the pipeline's box holds the whole spine)


def box_patch_crop(case: data.Case, rng: np.random.Generator) -> tuple[slice, ...]:
    """A patch shaped like the box the pipeline segments (infer.py: the located spine + a margin), cut to part
    of its length along S-I to keep the step's cost near a disc patch's; in the sacrum `SACRUM_FRACTION` of the
    time. Why: the V-Net's instance normalisation reads the whole input, so its output depends on what the box
    holds besides the spine; trained on 128 mm cubes around discs only, the network's surfaces moved by about a
    voxel when the box was grown by 12 mm (40 tuning phantoms)."""
    spine = data.spine_voxels(case).astype(int)
    lo = spine.min(axis=0) - rng.integers(*BOX_MARGIN_2MM, size=3)
    hi = spine.max(axis=0) + 1 + rng.integers(*BOX_MARGIN_2MM, size=3)
    length = int(rng.integers(*BOX_SI_2MM))
    sacrum = data.label_voxels(case, SACRUM_CODE)
    if rng.random() < SACRUM_FRACTION and len(sacrum):
        centre = int(np.median(sacrum[:, 2])) + int(rng.integers(-8, 9))
    else:
        centre = int(rng.integers(lo[2], max(hi[2], lo[2] + 1)))
    lo[2] = max(lo[2], centre - length // 2)
    hi[2] = min(hi[2], lo[2] + length)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, case.labels.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _with_context(crop: tuple[slice, ...], shape) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """`crop` grown by `DISC_PATCH_MARGIN` within `shape` (synthesis sees that context), and `crop`'s place in it."""
    m = DISC_PATCH_MARGIN
    big = tuple(slice(max(s.start - m, 0), min(s.stop + m, n)) for s, n in zip(crop, shape))
    inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(crop, big))
    return big, inner


NOT_SCORED = 255  # target code of the 1 mm voxels outside the field of view or in the padding


def fine_sample(case: data.Case, fine: tuple[np.ndarray, np.ndarray], rng: np.random.Generator, cut: bool = True):
    """(image 1 x box at 2 mm, 1 mm target codes 2 x box) of one patch, a disc-network patch (64^3) or a
    pipeline-like box (`BOX_SHARE`): the class of each 1 mm voxel, or `NOT_SCORED` outside the field of view where
    the patch is cut and in the padding to a multiple of 8 voxels (the pipeline pads the same way).
    `fine_fractions` makes the loss's one-hot fractions of them. Why codes: the fractions at 1 mm are 12x larger
    (float32 x 3 classes, ~27 MB per box), and making, padding and passing them from the sample worker cost more
    than synthesising the image."""
    if rng.random() < BOX_SHARE:
        big, inner = _with_context(box_patch_crop(case, rng), case.labels.shape)
    else:
        big = disc_patch_crop(case, rng, SACRUM_FRACTION)
        m = DISC_PATCH_MARGIN
        inner = tuple(slice(m, s.stop - s.start - m) for s in big)
    sub = data.Case(case.labels[big], case.tissue[big], None, {})
    image = data.synthesize_image(sub, rng)[inner]
    box = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(big, inner))
    target = data.fine_classes_in(*fine, box)
    if rng.random() < 0.5:  # left-right flip: canonical axis 0 is L-R, at both resolutions
        image, target = image[::-1], target[::-1]
    if cut:
        spine_lr = np.nonzero((target > 0).any(axis=(1, 2)))[0] / 2.0
        fov = data.random_fov_mask(image.shape, rng, center_lr=float(spine_lr.mean()) if len(spine_lr) else None)
        if fov is not None:
            image = image * fov
            fov1 = np.repeat(np.repeat(np.repeat(fov, 2, axis=0), 2, axis=1), 2, axis=2)
            target = np.where(fov1, target, np.uint8(NOT_SCORED))
    # Padding (to the network's multiple, or a patch at the edge of the phantom's grid) is not scored.
    size = tuple(max(int(np.ceil(n / PATCH_MULTIPLE) * PATCH_MULTIPLE), PATCH_MULTIPLE) for n in image.shape)
    image = pad_to(image, size)
    target = pad_to(target, tuple(2 * s for s in size), NOT_SCORED)
    return np.ascontiguousarray(image[None], dtype=np.float32), np.ascontiguousarray(target, dtype=np.uint8)


def fine_fractions(codes: torch.Tensor, n_classes: int = len(DISC_CLASSES)) -> torch.Tensor:
    """One-hot class fractions (N, classes, ...) float32 of target codes (N, ...): all zero (not scored by
    `focal_dice_loss`) where the code is `NOT_SCORED`."""
    classes = torch.arange(n_classes, dtype=codes.dtype).view(1, n_classes, *([1] * (codes.ndim - 1)))
    return (codes[:, None] == classes).float()


class _FineSamples(torch.utils.data.IterableDataset):
    def __init__(self, seeds: list[int], cache: Path, seed: int, start_step: int = 0):
        self.seeds, self.cache, self.seed, self.start_step = seeds, cache, seed, start_step

    def __iter__(self):
        rng = np.random.default_rng(sample_stream_key(self.seed, 1, self.start_step))
        loaded: dict[int, tuple] = {}  # every case is read once (~15 MB each with its 1 mm classes)
        while True:
            s = self.seeds[int(rng.integers(len(self.seeds)))]
            if s not in loaded:
                loaded[s] = (
                    data.load_case(self.cache / f"phantom_{s:06d}.npz"),
                    data.load_fine_classes(self.cache / f"phantom_fine_{s:06d}.npz"),
                )
            yield fine_sample(*loaded[s], rng)


def _fine_out(net: DiscNetWithFine, img: torch.Tensor, bf16: bool) -> torch.Tensor:
    """1 mm logits of a batch of 2 mm images."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = net(img).float()
    return fine_logits(out[:, :3], out[:, 3:])


def validate_fine(
    net: DiscNetWithFine, start: VNet, cache: Path, bf16: bool, base: dict[str, float] | None = None
) -> dict[str, float]:
    """Disc and spine Dice at 1 mm of the output network and, as the base, of the disc network it started from
    (2 mm logits interpolated), on 2 fixed uncut patches of each validation phantom (seeds 50001+).

    The base scores never change during a run (frozen network, fixed patches): pass the ones of the first call
    back as `base` and they are not recomputed (the start network's pass is a third of validation's time)."""
    net.eval()
    scores: dict[str, list[float]] = {"val_dice": [], "val_spine_dice": []}
    if base is None:
        scores.update(base_dice=[], base_spine_dice=[])
    with torch.no_grad():
        for k, s in enumerate(VAL_SEEDS):
            rng = np.random.default_rng(900 + k)
            case = data.load_case(cache / f"phantom_{s:06d}.npz")
            fine = data.load_fine_classes(cache / f"phantom_fine_{s:06d}.npz")
            for _ in range(2):
                img, target = fine_sample(case, fine, rng, cut=False)
                x = torch.from_numpy(img[None])
                truth = np.where(target == NOT_SCORED, 0, target)  # the padding counts as background
                outputs = [("val", _fine_out(net, x, bf16))]
                if base is None:
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        coarse = start(x).float()
                    outputs.append(
                        ("base", functional.interpolate(coarse, scale_factor=2, mode="trilinear", align_corners=False))
                    )
                for name, logits in outputs:
                    cls = logits[0].argmax(dim=0).numpy()
                    scores[f"{name}_dice"].append(dice_score(cls == 2, truth == 2))
                    scores[f"{name}_spine_dice"].append(dice_score(cls > 0, truth > 0))
    net.train()
    return {**{k: float(np.mean(v)) for k, v in scores.items()}, **(base or {})}


def train_fine(
    cache: Path,
    out_dir: Path,
    *,
    discs_from: Path = MODEL_DIR,
    steps: int | None = None,
    seed: int = 0,
    lr: float | None = None,
    threads: int = 2,
    precision: str = "auto",
    log=print,
) -> Path:
    from .models import load_model

    steps = steps or FINE_STEPS
    peak_lr = lr or FINE_LR
    bf16 = training_precision(precision) == "bf16"
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    start_net, discs_card = load_model("discs", discs_from)
    for p in start_net.parameters():
        p.requires_grad_(False)
    vnet, _ = load_model("discs", discs_from)
    data.build_fine_cache(list(VAL_SEEDS), cache)
    data.build_fine_cache(list(TRAIN_SEEDS), cache)
    net = DiscNetWithFine(vnet, FineHead(vnet.head.in_channels, len(DISC_CLASSES)))
    net.train()
    opt = torch.optim.Adam(
        [
            {"params": list(net.vnet.parameters()), "scale": 1.0},
            {"params": list(net.head.parameters()), "scale": HEAD_LR_FACTOR},
        ],
        lr=peak_lr,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    start, history = resume(out_dir / f"{FINE_STAGE}_checkpoint.safetensors", net, opt, FINE_STAGE, log)
    log(f"training {FINE_STAGE} from {discs_from / 'discs.safetensors'} ({'bf16' if bf16 else 'fp32'})")
    loader = torch.utils.data.DataLoader(
        _FineSamples(list(TRAIN_SEEDS), cache, seed, start_step=start),
        batch_size=None,
        num_workers=1,
        worker_init_fn=single_threaded_worker,
        prefetch_factor=4,
        persistent_workers=True,
    )

    def loss_of(batch) -> torch.Tensor:
        img, codes = (torch.as_tensor(x)[None] for x in batch)
        return focal_dice_loss(_fine_out(net, img, bf16), fine_fractions(codes), dice_sets=DISC_DICE_SETS)

    base: dict[str, float] = {}

    def validation() -> dict[str, float]:
        # The start network's scores never change in a run: computed at the first validation only.
        scores = validate_fine(net, start_net, cache, bf16, base or None)
        base.update({k: scores[k] for k in ("base_dice", "base_spine_dice")})
        return scores

    history = run_training(
        FINE_STAGE,
        net,
        opt,
        iter(loader),
        loss_of,
        validation,
        start=start,
        steps=steps,
        peak_lr=peak_lr,
        history=history,
        out_dir=out_dir,
        validate_every=FINE_VALIDATE_EVERY,
        log=log,
    )
    return export_fine(net, out_dir, history, discs_card=discs_card, seed=seed, steps=steps, peak_lr=peak_lr, bf16=bf16)


def export_fine(
    net: DiscNetWithFine,
    out_dir: Path,
    history: list,
    *,
    discs_card: dict,
    seed: int,
    steps: int,
    peak_lr: float,
    bf16: bool,
) -> Path:
    head = net.head
    card = {
        "stage": FINE_STAGE,
        "architecture": {
            "class": "DiscNetWithFine",
            "base_channels": net.vnet.head.in_channels,
            "levels": net.vnet.levels,
            "classes": head.n_classes,
            "head_channels": head.body[0].out_channels,
        },
        "outputs": [f"{c} at 2 mm" for c in DISC_CLASSES]
        + [f"{c}, 2 x 2 x 2 sub-voxel corrections (1 mm)" for c in DISC_CLASSES],
        "spacing_mm": 1.0,
        "input": "canonical grid at 2 mm (networks.canonical), intensities scaled by networks.data.normalise",
        "initialised_from": {k: discs_card.get(k) for k in ("training_seed", "steps", "validation", "sha256")},
        "training_data": {
            "phantom_seeds": f"{TRAIN_SEEDS.start}-{TRAIN_SEEDS.stop - 1}",
            "validation_seeds": f"{VAL_SEEDS.start}-{VAL_SEEDS.stop - 1}",
            "targets": "class of each voxel of the phantom's 1 mm grid (the 2 mm grid's sub-voxels)",
            "synthesis": f"{BOX_SHARE:.0%} boxes shaped like the pipeline's (the spine across + "
            f"{BOX_MARGIN_2MM[0]}-{BOX_MARGIN_2MM[1] - 1} voxels, {BOX_SI_2MM[0]}-{BOX_SI_2MM[1] - 1} voxels along S-I), "
            "the rest the disc network's patches; its synthesis (networks/train.py), L-R flips, about half the "
            "patches cut to part of their field of view (not scored outside)",
        },
        "training_seed": seed,
        "sample_streams": SAMPLE_STREAMS,
        "steps": steps,
        "peak_learning_rate": peak_lr,
        "head_learning_rate_factor": HEAD_LR_FACTOR,
        "training_precision": "bf16" if bf16 else "fp32",
        "validation": history[-1] if history else {},
    }
    return write_weights_and_card(out_dir, FINE_STAGE, net, card)
