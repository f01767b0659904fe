"""How well could a perfect network score on the resampling round trip? (No network is run.)

The pipeline resamples the localizer onto its working grid and the networks' probabilities back onto the
localizer's grid, where Dice is scored against the phantom's labels. This script replaces the network by the
phantom's own labels sampled on the working grid and scores them on that round trip, for three kinds of output:

- hard labels of the 2 mm grid (what a network trained on hard 2 mm targets reproduces at best),
- label fractions of the 2 mm grid (each 2 mm voxel's share of disc / spine, from 1 mm samples averaged 2x2x2),
- hard labels of a 1 mm grid (a network with a 1 mm output).

.venv/bin/python Testing/bench/grid_ceiling.py [N] [lps|localizer]   # tuning phantoms 60000.. (default 4)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from pipeline_evaluation import dice
from planning_evaluation import variation
from SpineLocalizerLib.labels import DISC_CODE_OFFSET
from SpineLocalizerLib.networks.canonical import CanonicalGrid, canonical_grid_for, from_canonical
from SpineLocalizerLib.phantom.anatomy import build_anatomy
from SpineLocalizerLib.phantom.generate import generate_case, spine_mask
from SpineLocalizerLib.phantom.model import evaluate_grid
from SpineLocalizerLib.phantom.params import sample_params
from SpineLocalizerLib.volume_io import read_volume

TUNING_SEED_BASE = 60000  # neither training (1-160, 50001-50016) nor evaluation (100000+)


def _disc(labels: np.ndarray) -> np.ndarray:
    return (labels >= DISC_CODE_OFFSET + 15) & (labels <= DISC_CODE_OFFSET + 25)


def _fine_grid(grid: CanonicalGrid, sub: int) -> CanonicalGrid:
    """The grid `sub` times finer covering the same voxels (sub-voxel centres of each coarse voxel)."""
    spacing = grid.spacing / sub
    offset = grid.direction @ np.full(3, (sub - 1) / 2 * spacing)
    return CanonicalGrid(
        origin=grid.origin - offset,
        size=tuple(n * sub for n in grid.size),
        spacing=spacing,
        direction=grid.direction,
    )


def round_trip_scores(i: int, grid_axes: str = "lps") -> dict:
    params = sample_params(TUNING_SEED_BASE + i, **variation(i))
    stack = i % 2 == 1  # as the evaluation: every other case a multi-slice sagittal localizer
    role = "sagittal_stack" if stack else "localizer"
    with tempfile.TemporaryDirectory() as tmp:
        truth = generate_case(params, Path(tmp), highres=False, stacks=stack, overview=False)
        image = read_volume(Path(tmp) / truth["files"][role])
        labels = read_volume(Path(tmp) / truth["files"][f"{role}_labels" if stack else "localizer_labels"]).array
    disc_true, spine_true = _disc(labels), spine_mask(labels) > 0
    grid = canonical_grid_for(image, align=grid_axes == "localizer")
    anatomy = build_anatomy(params)
    fine = _fine_grid(grid, 2)
    lab1, _ = evaluate_grid(anatomy, fine.origin, (fine.spacing,) * 3, fine.direction, fine.size, block=(2, 2, 2))
    lab2, _ = evaluate_grid(anatomy, grid.origin, (grid.spacing,) * 3, grid.direction, grid.size, block=(2, 2, 2))

    def block_mean(mask: np.ndarray) -> np.ndarray:
        n = grid.size
        return mask.reshape(n[0], 2, n[1], 2, n[2], 2).mean(axis=(1, 3, 5)).astype(np.float32)

    outputs = {
        "hard 2 mm": (grid, _disc(lab2).astype(np.float32), (spine_mask(lab2) > 0).astype(np.float32)),
        "fractions 2 mm": (grid, block_mean(_disc(lab1)), block_mean(spine_mask(lab1) > 0)),
        "hard 1 mm": (fine, _disc(lab1).astype(np.float32), (spine_mask(lab1) > 0).astype(np.float32)),
    }
    row = {"case": i, "input": role, "spacing": tuple(round(s, 2) for s in image.spacing)}
    for name, (g, disc_p, spine_p) in outputs.items():
        row[name] = (
            dice(from_canonical(disc_p, g, image, labels=False) >= 0.5, disc_true),
            dice(from_canonical(spine_p, g, image, labels=False) >= 0.5, spine_true),
        )
    return row


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    axes = sys.argv[2] if len(sys.argv) > 2 else "lps"
    print(
        f"disc / spine Dice of perfect outputs after the round trip ({axes} grid), tuning phantoms {TUNING_SEED_BASE}+"
    )
    for i in range(n):
        r = round_trip_scores(i, axes)
        cells = "  ".join(f"{k}: {r[k][0]:.3f} / {r[k][1]:.3f}" for k in ("hard 2 mm", "fractions 2 mm", "hard 1 mm"))
        print(f"{r['case']:3d} {r['input']:15s} {r['spacing']}  {cells}", flush=True)


if __name__ == "__main__":
    main()
