"""The networks of a model folder loaded once per process (a batch of plans, a Slicer session): loading,
checking against the cards and exporting them costs far more than a plan."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import levels as level_classifier
from .fine import FINE_STAGE, load_output_net
from .model_cards import read_card
from .models import load_model
from .runtime import RUNTIME_ENV, InferenceNet


@dataclass
class LoadedNetworks:
    """The networks of one model folder, prepared for inference (`InferenceNet`)."""

    localize: InferenceNet
    discs: InferenceNet
    n_disc_classes: int
    output: InferenceNet | None
    levels: InferenceNet | None


# Networks kept for the life of the process (a batch of plans, a Slicer session): loading, checking and exporting
# them costs far more than a plan. Keyed by the folder, the settings (the forced runtime among them) and each
# weight file's size and time, so replaced weights are loaded again.
_LOADED: dict[tuple, LoadedNetworks] = {}
MAX_LOADED_FOLDERS = 2


def _weights_key(model_dir: Path, threads: int, fine_output: bool) -> tuple:
    files = sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.json"))
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return (str(model_dir.resolve()), threads, fine_output, os.environ.get(RUNTIME_ENV, ""), stamp)


def loaded_networks(model_dir: Path, threads: int = 2, fine_output: bool = True) -> LoadedNetworks:
    """The networks in `model_dir`, loaded (and checked against their cards) once per process. The caller
    sets torch's threads for the time it runs them (runtime.torch_threads), never for the whole process."""
    key = _weights_key(model_dir, threads, fine_output)
    if key in _LOADED:
        return _LOADED[key]
    disc_vnet, disc_card = load_model("discs", model_dir)
    output_module = load_output_net(model_dir) if fine_output else None
    level_net = None
    # The level classifier is optional (weights trained before it existed still run, with the shape prior).
    if (model_dir / "levels.safetensors").exists():
        # fp32: its log-probabilities are summed over the discs by the sequence matching, and it is cheap.
        level_module, level_card = load_model("levels", model_dir)
        level_net = InferenceNet(
            level_module,
            (2, 1) + level_classifier.PATCH_2MM,
            threads=threads,
            bf16=False,
            weights_sha256=level_card.get("sha256"),
        )
    localize_module, localize_card = load_model("localize", model_dir)
    nets = LoadedNetworks(
        localize=InferenceNet(localize_module, threads=threads, weights_sha256=localize_card.get("sha256")),
        discs=InferenceNet(disc_vnet, threads=threads, weights_sha256=disc_card.get("sha256")),
        n_disc_classes=disc_vnet.head.out_channels,
        output=None
        if output_module is None
        else InferenceNet(
            output_module, threads=threads, weights_sha256=read_card(model_dir, FINE_STAGE).get("sha256")
        ),
        levels=level_net,
    )
    while len(_LOADED) >= MAX_LOADED_FOLDERS:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = nets
    return nets
