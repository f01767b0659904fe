"""Sampling a volume on an oblique plane given in world LPS coordinates."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .volume_io import Volume


def sample_plane(
    volume: Volume,
    center: np.ndarray,
    row_dir: np.ndarray,
    col_dir: np.ndarray,
    size_mm: tuple[float, float],
    step_mm: float,
    *,
    order: int = 1,
) -> np.ndarray:
    """2D array (rows along `row_dir`, columns along `col_dir`) of the volume around `center`.

    `order` 0 is nearest neighbour (label maps), 1 linear. Points outside the volume read 0.
    """
    n_r = max(1, int(round(size_mm[0] / step_mm)))
    n_c = max(1, int(round(size_mm[1] / step_mm)))
    r = (np.arange(n_r) - (n_r - 1) / 2) * step_mm
    c = (np.arange(n_c) - (n_c - 1) / 2) * step_mm
    rr, cc = np.meshgrid(r, c, indexing="ij")
    pts = np.asarray(center) + rr[..., None] * np.asarray(row_dir) + cc[..., None] * np.asarray(col_dir)
    ijk = volume.world_to_index(pts.reshape(-1, 3)).T
    values = ndimage.map_coordinates(volume.array, ijk, order=order, mode="constant", cval=0)
    return values.reshape(n_r, n_c)
