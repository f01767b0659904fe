"""The disc and spine label maps written out (`discs.nii.gz`, `spine.nii.gz`, the Dice of the evaluation): drawn
from log-odds on canonical grids, resampled linearly onto the input's grid and averaged there.

Two things make them sharper than the 2 mm probabilities they used to come from (docs/experiments.md):
- Log-odds instead of probabilities (`fine.class_margins`): linearly resampled probabilities near 0 and 1 put
  a surface half-way between two voxels whatever the network's confidence on either side; log-odds put it where
  that confidence places it. 40 tuning phantoms: disc Dice 0.911 -> 0.924, spine 0.941 -> 0.942.
- A second pass of the disc network on the spine's box sampled half a voxel further along each axis
  (`SHIFT_VOX`): the two grids together sample the surfaces twice as densely, and their log-odds are averaged
  on the input's grid.
Neither touches the naming or the plan: those read the first pass's probabilities on the canonical grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..volume_io import Volume
from .canonical import CanonicalGrid, from_canonical
from .fine import class_margins, fine_grid, fine_margins

OUTSIDE_MARGIN = -20.0  # log-odds outside the arrays: certainly neither disc nor spine
SHIFT_VOX = 0.5


@dataclass(frozen=True)
class OutputMap:
    grid: CanonicalGrid  # covers `disc` and `spine` exactly
    disc: np.ndarray  # log-odds of disc vs the rest
    spine: np.ndarray  # log-odds of vertebral body or disc vs background


def box_grid(grid: CanonicalGrid, box: tuple[slice, ...], shift_vox: float = 0.0) -> CanonicalGrid:
    """The grid of `box`, its points moved by `shift_vox` voxels along each of the grid's axes."""
    start = np.array([s.start for s in box], dtype=float) + shift_vox
    size = tuple(s.stop - s.start for s in box)
    return CanonicalGrid(origin=grid.index_to_world(start), size=size, spacing=grid.spacing, direction=grid.direction)


def draw_output_maps(
    segment: Callable[[np.ndarray], np.ndarray],
    image_on: Callable[[CanonicalGrid], np.ndarray],
    grid: CanonicalGrid,
    box: tuple[slice, ...],
    first_logits: np.ndarray | None,
    *,
    fine: bool = False,
    shifted: bool = True,
) -> list[OutputMap]:
    """Log-odds maps of the box: `segment` (the disc network, or the output network when `fine`) on the box
    and, with `shifted`, on the box sampled `SHIFT_VOX` further (`image_on` resamples the input onto a grid).
    `first_logits`: the unshifted pass when it has been run already (the naming network's)."""
    maps = []
    for k, shift in enumerate((0.0, SHIFT_VOX) if shifted else (0.0,)):
        g = box_grid(grid, box, shift)
        logits = first_logits if k == 0 and first_logits is not None else segment(image_on(g))
        if fine:
            disc, spine = fine_margins(logits)
            g = fine_grid(g, tuple(slice(0, n) for n in g.size))
        else:
            disc, spine = class_margins(logits[:3])
        maps.append(OutputMap(g, disc.astype(np.float32), spine.astype(np.float32)))
        # The pass's logits (~75 MB on a lumbar localizer) go before the next pass runs, not after it.
        del logits, disc, spine
    return maps


def margin_on(maps: list[OutputMap], which: str, target: Volume) -> np.ndarray:
    """The mean of the maps' `which` ("disc" or "spine") log-odds, each resampled linearly onto `target`."""
    total = np.zeros(target.array.shape, dtype=np.float32)
    for m in maps:
        total += from_canonical(getattr(m, which), m.grid, target, labels=False, outside=OUTSIDE_MARGIN)
    return total / len(maps)
