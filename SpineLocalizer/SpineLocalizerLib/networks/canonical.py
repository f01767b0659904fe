"""Resampling any localizer onto the networks' canonical grid: LPS axes, 2 mm voxels, sides a multiple of 16."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..volume_io import Volume, to_sitk

MAX_EXTENT_MM = 480.0
MIN_EXTENT_MM = 256.0
MULTIPLE = 16  # 2 mm grid halved to 4 mm must still divide by 8 for the V-Net


@dataclass(frozen=True)
class CanonicalGrid:
    origin: np.ndarray
    size: tuple[int, int, int]
    spacing: float = 2.0

    def index_to_world(self, ijk) -> np.ndarray:
        return self.origin + np.asarray(ijk, dtype=float) * self.spacing

    def as_volume(self, array: np.ndarray) -> Volume:
        return Volume(array, (self.spacing,) * 3, self.origin.copy(), np.eye(3))


def canonical_grid_for(volume: Volume, spacing: float = 2.0) -> CanonicalGrid:
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    corners *= np.array(volume.array.shape) - 1
    world = volume.index_to_world(corners)
    lo, hi = world.min(axis=0), world.max(axis=0)
    center = 0.5 * (lo + hi)
    # At least the training field of view on every axis: a multi-slice localizer covering a 60 mm slab must still
    # reach the networks as a full-size volume (zeros outside the slab), as in training.
    extent = np.clip(hi - lo + spacing, MIN_EXTENT_MM, MAX_EXTENT_MM)
    size = tuple(int(np.ceil(e / spacing / MULTIPLE) * MULTIPLE) for e in extent)
    origin = center - (np.array(size) - 1) * spacing / 2.0
    return CanonicalGrid(origin=origin, size=size, spacing=spacing)


def to_canonical(
    volume: Volume, grid: CanonicalGrid | None = None, *, labels: bool = False
) -> tuple[np.ndarray, CanonicalGrid]:
    grid = grid or canonical_grid_for(volume)
    image = to_sitk(
        Volume(
            volume.array.astype(np.float32) if not labels else volume.array.astype(np.int16),
            volume.spacing,
            volume.origin,
            volume.direction,
        )
    )
    out = sitk.Resample(
        image,
        [int(n) for n in grid.size],
        sitk.Transform(),
        sitk.sitkNearestNeighbor if labels else sitk.sitkLinear,
        [float(v) for v in grid.origin],
        [grid.spacing] * 3,
        [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
        0,
    )
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0), grid


def from_canonical(array: np.ndarray, grid: CanonicalGrid, target: Volume, *, labels: bool = True) -> np.ndarray:
    """Resample a canonical-grid array onto `target`'s grid (nearest neighbour for label maps)."""
    src = to_sitk(grid.as_volume(array.astype(np.int16) if labels else array.astype(np.float32)))
    ref = to_sitk(Volume(np.zeros(target.array.shape, dtype=np.uint8), target.spacing, target.origin, target.direction))
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor if labels else sitk.sitkLinear, 0)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)
