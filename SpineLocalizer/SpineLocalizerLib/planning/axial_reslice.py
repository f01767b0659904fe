"""Reslice a (high-resolution) volume along each disc's axial slice group of a plan."""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from ..volume_io import Volume, to_sitk


def slice_group_grid(disc: dict[str, Any]) -> tuple[list[int], list[float], list[float], list[float]]:
    """(size, spacing, origin, direction) of a disc's slice stack: x = left, y = posterior, z = disc normal."""
    group = disc["slice_group"]
    nx, ny = (int(v) for v in group["matrix"])
    fx, fy = (float(v) for v in group["fov_mm"])
    nz = int(group["n_slices"])
    sx, sy, sz = fx / nx, fy / ny, group["thickness_mm"] + group["gap_mm"]
    x = np.asarray(group["x_axis_lps"], dtype=float)
    y = np.asarray(group["y_axis_lps"], dtype=float)
    n = np.asarray(disc["normal_lps"], dtype=float)
    y = y - n * (y @ n)
    y /= np.linalg.norm(y)
    x = np.cross(y, n)
    direction = np.stack([x, y, n], axis=1)
    center = np.asarray(disc["scan_center_lps"], dtype=float)
    origin = center - direction @ (np.array([(nx - 1) * sx, (ny - 1) * sy, (nz - 1) * sz]) / 2.0)
    return [nx, ny, nz], [sx, sy, sz], origin.tolist(), direction.ravel().tolist()


def reslice_disc(volume: Volume, disc: dict[str, Any], *, labels: bool = False) -> sitk.Image:
    """The disc's slice stack sampled from `volume` (linear for images, nearest neighbour for label maps)."""
    size, spacing, origin, direction = slice_group_grid(disc)
    image = to_sitk(volume)
    interp = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    return sitk.Resample(image, size, sitk.Transform(), interp, origin, spacing, direction, 0, image.GetPixelID())
