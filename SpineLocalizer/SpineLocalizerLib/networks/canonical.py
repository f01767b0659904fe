"""Resampling any localizer onto the networks' canonical grid: 2 mm voxels, sides a multiple of 16, axes along
L, P, S (the default) or along the localizer's own axes when those are within `ALIGN_MAX_DEG` of L, P, S
(`canonical_grid_for(align=True)`, `spine-localizer plan --grid-axes localizer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations

import numpy as np
import SimpleITK as sitk

from ..volume_io import Volume, to_sitk

MAX_EXTENT_MM = 480.0
MIN_EXTENT_MM = 256.0
MULTIPLE = 16  # 2 mm grid halved to 4 mm must still divide by 8 for the V-Net
# The networks are trained with the spine tilted up to ~10 degrees from the grid axes (phantom pose); a localizer
# tilted further than this from L, P, S is resampled onto L, P, S axes even with `align`.
ALIGN_MAX_DEG = 20.0


@dataclass(frozen=True)
class CanonicalGrid:
    origin: np.ndarray
    size: tuple[int, int, int]
    spacing: float = 2.0
    # Columns: the LPS world direction of grid axes i, j, k (each within ALIGN_MAX_DEG of L, P, S respectively).
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def index_to_world(self, ijk) -> np.ndarray:
        return self.origin + (np.asarray(ijk, dtype=float) * self.spacing) @ self.direction.T

    def world_to_index(self, xyz) -> np.ndarray:
        return (np.asarray(xyz, dtype=float) - self.origin) @ self.direction / self.spacing

    def as_volume(self, array: np.ndarray) -> Volume:
        return Volume(array, (self.spacing,) * 3, self.origin.copy(), self.direction.copy())


def localizer_axes(direction: np.ndarray) -> np.ndarray | None:
    """The volume's axes reordered and signed to point along L, P, S (columns), or None when one of them is
    more than ALIGN_MAX_DEG away from its world axis (an oblique localizer)."""
    d = np.asarray(direction, dtype=float)
    best = max(permutations(range(3)), key=lambda perm: sum(abs(d[ax, perm[ax]]) for ax in range(3)))
    axes = np.stack([d[:, best[ax]] * np.sign(d[ax, best[ax]]) for ax in range(3)], axis=1)
    if np.min(np.diag(axes)) < np.cos(np.radians(ALIGN_MAX_DEG)):
        return None
    return axes


def canonical_grid_for(volume: Volume, spacing: float = 2.0, align: bool = False) -> CanonicalGrid:
    """The canonical grid around `volume`: L, P, S axes, or with `align` the volume's own axes (reordered to
    L, P, S) with one grid point on a voxel centre.

    Why `align`: a 2 mm localizer then reaches the networks without interpolation and their labels come back
    onto its voxels exactly; on a localizer tilted a few degrees, two linear resamplings (image in, labels out)
    between rotated grids cost the disc Dice several points even with perfect labels (4 tuning phantoms: hard
    2 mm labels 0.913-0.941 on L, P, S axes, 1.000 on the localizer's axes). Why not by default: the networks
    then see the spine tilted by the localizer's tilt on top of the patient's, and on the held-out phantoms
    the lumbar count went wrong in three cases and right in one (docs/experiments.md).
    """
    axes = localizer_axes(volume.direction) if align else None
    direction = np.eye(3) if axes is None else axes
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    corners *= np.array(volume.array.shape) - 1
    local = volume.index_to_world(corners) @ direction  # coordinates along the grid axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    center = 0.5 * (lo + hi)
    # At least the training field of view on every axis: a multi-slice localizer covering a 60 mm slab must still
    # reach the networks as a full-size volume (zeros outside the slab), as in training.
    extent = np.clip(hi - lo + spacing, MIN_EXTENT_MM, MAX_EXTENT_MM)
    nx, ny, nz = (int(np.ceil(e / spacing / MULTIPLE) * MULTIPLE) for e in extent)
    size = (nx, ny, nz)
    origin = direction @ (center - (np.array(size) - 1) * spacing / 2.0)
    if axes is not None:
        # Move the origin (by less than one input voxel per axis) onto the nearest voxel centre.
        k = volume.world_to_index(origin)
        origin = origin + (np.asarray(volume.direction) * np.asarray(volume.spacing)) @ (np.round(k) - k)
    return CanonicalGrid(origin=origin, size=size, spacing=spacing, direction=direction)


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
        [float(v) for v in grid.direction.ravel()],
        0,
    )
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0), grid


def from_canonical(
    array: np.ndarray, grid: CanonicalGrid, target: Volume, *, labels: bool = True, outside: float = 0.0
) -> np.ndarray:
    """Resample a canonical-grid array onto `target`'s grid (nearest neighbour for label maps); `outside` where
    the target reaches beyond the array."""
    src = to_sitk(grid.as_volume(array.astype(np.int16) if labels else array.astype(np.float32)))
    ref = to_sitk(Volume(np.zeros(target.array.shape, dtype=np.uint8), target.spacing, target.origin, target.direction))
    out = sitk.Resample(
        src, ref, sitk.Transform(), sitk.sitkNearestNeighbor if labels else sitk.sitkLinear, float(outside)
    )
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)
