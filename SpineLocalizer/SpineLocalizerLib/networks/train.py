"""Training of the phantom stages (seeded, resumable, logged) and their export as safetensors with a card.

- `localize` (alias `labels`): one V-Net at 4 mm over the whole field of view with 2 + 9 output channels:
  spine / background logits (LVP module 1) and one heatmap per disc level (module 3). The two tasks share the
  encoder, which halves the CPU time of running them separately.
- `discs`: one V-Net at 2 mm on the spine's bounding box: background / vertebral body / disc logits (module 2;
  the body class gives the spine mask at 2 mm where the 4 mm localization is coarse).
- `levels`: a small classifier (networks/levels.py) of 96 mm patches around each disc: thoracic, lumbar,
  lumbosacral or not a disc; cross-entropy, batches of 16. It feeds the lumbar count of module 3.
Samples: networks/samples.py; losses: networks/losses.py (focal + soft Dice; heatmaps: weighted MSE against the
Gaussian heatmaps, peak 256 as in LVP); the loop: networks/training_loop.py; cards: networks/model_cards.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as functional

from . import data, levels
from .compiled import TrainingForward, wants_compile
from .losses import DISC_DICE_SETS, focal_dice_loss, heatmap_loss
from .model_cards import read_card, write_weights_and_card
from .models import STAGES, StageConfig, make_net
from .samples import (
    DISC_CLASSES,
    DISC_PATCH_2MM,
    LOCALIZE_CROP_4MM,
    SACRUM_FRACTION,
    SAMPLE_STREAMS,
    TRAIN_SEEDS,
    VAL_SEEDS,
    Samples,
    single_threaded_worker,
)
from .stage_validation import validate
from .training_loop import resume, run_training
from .vnet import VNet

# Disc-stage targets (train --targets): what each one means, as the weights' card records it.
DISC_TARGETS = {
    "hard": "class of each voxel of the phantom's 2 mm grid",
    "soft": "class fractions on a grid shifted by a random sub-voxel offset (image resampled the same way); "
    "about half the patches cut to part of their field of view, not scored outside it",
    "cut": "class of each voxel of the phantom's 2 mm grid; about half the patches cut to part of their field of "
    "view, not scored outside it",
}
DEFAULT_DISC_TARGETS = "hard"

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
        init_arch = read_card(Path(init_from), stage).get("architecture", {})
        cfg = replace(cfg, base_channels=init_arch.get("base_channels", cfg.base_channels))
    steps = steps or cfg.steps
    peak_lr = lr or cfg.lr  # a lower peak keeps a fine-tune closer to the weights it starts from
    torch.manual_seed(seed)
    torch.set_num_threads(threads or cfg.threads)
    # The user's data are checked before anything slow (the phantom cache) starts.
    if not 0.0 < user_share <= 1.0:
        raise ValueError(f"user_share must be in (0, 1], got {user_share!r}")
    user = data.user_cases(user_folder) if user_folder else []
    if user_folder and not user:
        raise ValueError(f"{user_folder}: no <case>_image.nii.gz + <case>_labels.nii.gz pairs found")
    if stage == "levels" and user:
        empty = [k for k, case in enumerate(user) if not case.level_targets]
        if empty:
            raise ValueError(
                f"{len(empty)} of the {len(user)} user label maps give no disc position for the levels stage: "
                "label the discs or at least two adjacent vertebral bodies (VerSe codes)"
            )
    paths = data.build_cache(list(TRAIN_SEEDS), cache)
    val_paths = data.build_cache(list(VAL_SEEDS), cache)
    net = make_net(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=peak_lr)
    out_dir.mkdir(parents=True, exist_ok=True)
    start, history = resume(out_dir / f"{stage}_checkpoint.safetensors", net, opt, stage, log)
    if not start and init_from is not None:
        # Fine-tuning (e.g. on a user's own data) starts from existing weights with a fresh optimizer.
        from .models import load_model

        state = load_model(stage, init_from)[0].state_dict()
        net.load_state_dict(levels.adapt_head(state, net) if stage == "levels" else adapt_head(state, net))
        log(f"starting {stage} from the weights in {init_from}")
    forward = TrainingForward(net, compiled, log)
    log(f"training {stage} in {precision}" + (" (torch.compile)" if compiled else ""))
    loader = torch.utils.data.DataLoader(
        Samples(stage, paths, seed, user, user_share, sacrum_share, targets, start_step=start),
        batch_size=LEVEL_BATCH if stage == "levels" else None,
        num_workers=1,
        worker_init_fn=single_threaded_worker,
        prefetch_factor=4,
        persistent_workers=True,
    )

    def loss_of(batch) -> torch.Tensor:
        if stage == "levels":
            img, target = batch
        else:
            img, *target = (torch.as_tensor(x)[None] for x in batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = forward(img)
        out = out.float()  # losses in fp32
        if stage == "localize":
            spine, heat = target
            return focal_dice_loss(out[:, :2], spine) + heatmap_loss(out[:, 2:], heat, competition)
        if stage == "levels":
            return functional.cross_entropy(out, target)
        return focal_dice_loss(out, target[0], dice_sets=DISC_DICE_SETS)

    history = run_training(
        stage,
        net,
        opt,
        iter(loader),
        loss_of,
        lambda: validate(stage, net, val_paths),
        start=start,
        steps=steps,
        peak_lr=peak_lr,
        history=history,
        out_dir=out_dir,
        log=log,
    )
    start_card = None
    if init_from is not None:
        start_card = read_card(Path(init_from), stage)
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
    vnet = {"class": "VNet", "in_channels": 1, "out_channels": cfg.out_channels}
    vnet.update(base_channels=cfg.base_channels, levels=cfg.levels)
    outputs = {
        "localize": ["background", "spine"] + [f"heatmap {lv}" for lv in data.LEVELS],
        "discs": list(DISC_CLASSES),
        "levels": list(levels.CLASSES),
    }[stage]
    card = {
        "stage": stage,
        "architecture": {"class": "LevelNet", "in_channels": 1, "classes": list(levels.CLASSES)}
        if stage == "levels"
        else vnet,
        "outputs": outputs,
        "spacing_mm": cfg.spacing_mm,
        "input": "canonical grid (networks.canonical), intensities scaled by networks.data.normalise; sides multiple of 8"
        if stage != "levels"
        else "48^3 patch of the canonical grid centred on a disc candidate, normalised on its own",
        "input_size_trained": list(
            {"localize": LOCALIZE_CROP_4MM, "discs": DISC_PATCH_2MM, "levels": levels.PATCH_2MM}[stage]
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
    }
    return write_weights_and_card(out_dir, stage, net, card)
