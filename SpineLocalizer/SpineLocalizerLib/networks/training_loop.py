"""The training loop every stage shares: cosine learning rate, progress line with ETA, validation and a
checkpoint every `validate_every` steps (the points a stopped run resumes from), the log as JSON lines."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from .checkpoints import load_checkpoint, save_checkpoint

# Steps between validations of the phantom stages, which are also their checkpoints. 300 rather than 150 halves
# the validation time (~2 min of a full training run on the 2-core EPYC) and a resume loses at most ~2 min of
# the disc network's steps.
VALIDATE_EVERY = 300
PROGRESS_EVERY = 25  # steps between updates of the progress line


def cosine_lr(peak_lr: float, step: int, steps: int) -> float:
    """Learning rate at `step` of `steps`: half a cosine from `peak_lr` down to 0."""
    return peak_lr * 0.5 * (1 + math.cos(math.pi * step / steps))


def resume(checkpoint: Path, net, opt, name: str, log=print) -> tuple[int, list]:
    """(step, validation history) of the checkpoint a stopped run left, loaded into `net` and `opt`; (0, [])
    without one. A checkpoint that does not fit the network (another width in the same folder) is refused."""
    if not checkpoint.exists():
        return 0, []
    try:
        start, history = load_checkpoint(checkpoint, net, opt)
    except RuntimeError as err:
        raise ValueError(
            f"{checkpoint} does not fit this {name} network ({err}); resume with the same settings or use another --out"
        ) from err
    log(f"resuming {name} from step {start}")
    return start, history


def run_training(
    name: str,
    net,
    opt: torch.optim.Optimizer,
    batches: Iterator,
    loss_of: Callable[[object], torch.Tensor],
    validate: Callable[[], dict],
    *,
    start: int,
    steps: int,
    peak_lr: float,
    history: list,
    out_dir: Path,
    validate_every: int = VALIDATE_EVERY,
    log=print,
) -> list:
    """Steps `start` .. `steps` of one stage; returns the validation history (one entry per validation).

    `loss_of(batch)` is the stage's loss on one batch; `validate()` its validation scores. Each parameter group
    learns at the cosine rate times its "scale" (1 unless the group sets one: a new head may learn faster than
    the trained network it sits on). Every `validate_every` steps and at the end: validation, one JSON line in
    `<name>_log.jsonl` and the checkpoint `<name>_checkpoint.safetensors` in `out_dir`.
    """
    checkpoint = out_dir / f"{name}_checkpoint.safetensors"
    t0, running = time.time(), None
    for step in range(start, steps):
        lr = cosine_lr(peak_lr, step, steps)
        for group in opt.param_groups:
            group["lr"] = lr * group.get("scale", 1.0)
        loss = loss_of(next(batches))
        opt.zero_grad()
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % PROGRESS_EVERY == 0:
            eta = (time.time() - t0) / (step + 1 - start) * (steps - step - 1)
            print(
                f"\r{name} step {step + 1}/{steps} loss {running:.4f} lr {lr:.2e} eta {eta / 60:.1f} min",
                end="",
                file=sys.stderr,
                flush=True,
            )
        if (step + 1) % validate_every == 0 or step + 1 == steps:
            entry = {"step": step + 1, "loss": running, "time_s": time.time() - t0, **validate()}
            history.append(entry)
            log(f"\n{json.dumps(entry)}")
            with open(out_dir / f"{name}_log.jsonl", "a") as fh:
                fh.write(json.dumps(entry) + "\n")
            save_checkpoint(checkpoint, net, opt, step + 1, history)
    return history
