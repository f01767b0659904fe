"""Model cards: every shipped `<stage>.safetensors` has a `<stage>.json` card that says what the weights are and
how they were trained, with the sha256 of the weights. Written here when a stage is exported, checked here
whenever weights are loaded (a damaged or swapped file is refused, never half-used)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from . import ModelError


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_weights_and_card(out_dir: Path, stage: str, net, card: dict) -> Path:
    """`<stage>.safetensors` (the network's state) and its card (`card` + the weights' sha256) in `out_dir`."""
    weights = Path(out_dir) / f"{stage}.safetensors"
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(weights))
    card = dict(card, sha256=sha256_of(weights))
    (Path(out_dir) / f"{stage}.json").write_text(json.dumps(card, indent=1))
    return weights


def card_exists(model_dir: Path, stage: str) -> bool:
    return (Path(model_dir) / f"{stage}.safetensors").exists() and (Path(model_dir) / f"{stage}.json").exists()


def read_card(model_dir: Path, stage: str) -> dict:
    """The card of `stage` in `model_dir` (not checked against the weights: for what a run starts from)."""
    return json.loads((Path(model_dir) / f"{stage}.json").read_text())


def checked_weights(model_dir: Path, stage: str) -> tuple[dict, dict]:
    """(state dict, card) of `stage` in `model_dir`, after checking the weights against the card's sha256."""
    weights = Path(model_dir) / f"{stage}.safetensors"
    if not card_exists(model_dir, stage):
        raise ModelError(
            f"model '{stage}' not found in {model_dir}: train it with `spine-localizer train --stage {stage}`"
        )
    card = read_card(model_dir, stage)
    digest = sha256_of(weights)
    if digest != card.get("sha256"):
        raise ModelError(
            f"{weights}: checksum {digest[:12]} does not match its card ({str(card.get('sha256'))[:12]}); "
            "the file is damaged: restore it from the release or retrain the stage"
        )
    return load_file(str(weights)), card
