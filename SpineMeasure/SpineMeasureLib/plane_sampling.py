"""Label-map masks sampled on measurement planes: a crop of the label map around one point read at arbitrary world
points (linear interpolation, >= 0.5, which places edges with sub-voxel precision), and regular (u, v) grids on
a plane with the column extremes and line fits the landmark extractors use."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from SpineLocalizerLib.volume_io import Volume

STEP = 0.2  # mm between the samples of a measurement plane
# Heights along a disc's normal (disc, foramen) need label voxels at most this deep along it: axial slices 3-4 mm
# apart would put each endplate at the nearest slice and give the height to +-2 mm.
MAX_DEPTH_FOR_HEIGHTS_MM = 2.0


def voxel_depth_along(labels: Volume, direction) -> float:
    """The map's sampling distance along a world direction: its slice spacing along the slice normal, the voxel
    size of an isotropic map in every direction (the largest axis spacing, weighted by how much it points along)."""
    d = np.asarray(direction, dtype=float)
    return float(np.max(np.asarray(labels.spacing) * np.abs(np.asarray(labels.direction).T @ d)))


class LocalSampler:
    """Binary masks of a label map around one point, sampled at arbitrary world points (linear, >= 0.5)."""

    def __init__(self, labels: Volume, center, radius_mm: float = 70.0):
        self.labels = labels
        ijk = labels.world_to_index(np.asarray(center)[None])[0]
        r = radius_mm / np.asarray(labels.spacing)
        lo = np.maximum(np.floor(ijk - r).astype(int), 0)
        hi = np.minimum(np.ceil(ijk + r).astype(int) + 1, labels.array.shape)
        self.offset = lo
        self.crop = labels.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        self._cache: dict[tuple, np.ndarray] = {}

    def mask(self, codes: tuple[int, ...], points: np.ndarray) -> np.ndarray:
        key = tuple(sorted(codes))
        if key not in self._cache:
            self._cache[key] = np.isin(self.crop, key).astype(np.float32)
        ijk = self.labels.world_to_index(points) - self.offset
        vals = ndimage.map_coordinates(self._cache[key], ijk.T, order=1, mode="constant", cval=0.0)
        return vals >= 0.5

    def voxels(self, codes: tuple[int, ...]) -> np.ndarray:
        idx = np.argwhere(np.isin(self.crop, codes)) + self.offset
        return self.labels.index_to_world(idx)


class Plane2D:
    """A regular (u, v) grid on a plane: world = origin + u * e_u + v * e_v."""

    def __init__(self, origin, e_u, e_v, u_range, v_range, step=STEP, u_step=None):
        self.origin, self.e_u, self.e_v = (np.asarray(x, dtype=float) for x in (origin, e_u, e_v))
        u_step = u_step or step
        self.u = np.arange(u_range[0], u_range[1] + u_step / 2, u_step)
        self.v = np.arange(v_range[0], v_range[1] + step / 2, step)
        self.step = step
        uu, vv = np.meshgrid(self.u, self.v, indexing="ij")
        self.points = self.origin + uu.ravel()[:, None] * self.e_u + vv.ravel()[:, None] * self.e_v

    def sample(self, sampler: LocalSampler, codes) -> np.ndarray:
        return sampler.mask(tuple(codes), self.points).reshape(len(self.u), len(self.v))

    def world(self, u, v) -> np.ndarray:
        return self.origin + u * self.e_u + v * self.e_v


def column_max(mask: np.ndarray, plane: Plane2D) -> np.ndarray:
    """Per u column: the largest v inside the mask (NaN where the column is empty)."""
    vv = np.where(mask, plane.v[None, :], -np.inf).max(axis=1)
    return np.where(np.isfinite(vv), vv, np.nan)


def column_min(mask: np.ndarray, plane: Plane2D) -> np.ndarray:
    vv = np.where(mask, plane.v[None, :], np.inf).min(axis=1)
    return np.where(np.isfinite(vv), vv, np.nan)


def fit_line(us: np.ndarray, vs: np.ndarray):
    ok = np.isfinite(vs)
    if ok.sum() < 3:
        return None
    a, b = np.polyfit(us[ok], vs[ok], 1)
    u0, u1 = us[ok].min(), us[ok].max()
    return (u0, a * u0 + b), (u1, a * u1 + b)
