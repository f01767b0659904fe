"""Primitive solids of the phantom, each defined in its own local (u, v, w) frame.

Every shape answers `contains(local_points) -> bool mask` and gives a local bounding box, so the model can
cull points cheaply before testing them. Shapes are plain data: the anatomy module decides where they go.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def truncated_ellipse(u: np.ndarray, v: np.ndarray, a_u, a_v, p) -> np.ndarray:
    """Vertebral/disc footprint: ellipse with half-axes (a_u, a_v), cut flat at v = p (posterior border)."""
    return ((u / a_u) ** 2 + (v / a_v) ** 2 <= 1.0) & (v <= p)


def truncated_ellipse_depth(u: np.ndarray, v: np.ndarray, a_u, a_v, p) -> np.ndarray:
    """Approximate inward distance (mm) to the footprint border; negative outside."""
    r = np.sqrt((u / a_u) ** 2 + (v / a_v) ** 2)
    radial = (1.0 - r) * np.minimum(a_u, a_v)
    return np.minimum(radial, p - v)


@dataclass(frozen=True)
class DiscWedge:
    """An intervertebral disc: footprint x slab |w| <= h(u, v)/2 with planar, mirror-symmetric endplates.

    `slope_u`, `slope_v` are d(half height)/du and /dv, so both endplates are planes tilted by the same angle
    in opposite senses: the mid-plane w = 0 is an exact symmetry plane, and PCA of the disc recovers its
    normal exactly in the continuum.
    """

    a_u: float
    a_v: float
    p: float
    half_height: float
    slope_u: float
    slope_v: float

    def half_height_at(self, u, v):
        return self.half_height + self.slope_u * u + self.slope_v * v

    def in_slab(self, pts: np.ndarray) -> np.ndarray:
        u, v, w = pts[:, 0], pts[:, 1], pts[:, 2]
        return np.abs(w) <= self.half_height_at(u, v)

    def contains(self, pts: np.ndarray) -> np.ndarray:
        return self.in_slab(pts) & truncated_ellipse(pts[:, 0], pts[:, 1], self.a_u, self.a_v, self.p)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        h = self.half_height + abs(self.slope_u) * self.a_u + abs(self.slope_v) * self.a_v + 1.0
        return np.array([-self.a_u, -self.a_v, -h]), np.array([self.a_u, self.p, h])


@dataclass(frozen=True)
class Prism:
    """A convex polygon in two local axes, extruded along the third between `lo` and `hi`.

    `axes` names the polygon's axes and the extrusion axis as indices, e.g. (0, 1, 2): polygon in (u, v),
    extruded along w.
    """

    polygon: tuple[tuple[float, float], ...]
    lo: float
    hi: float
    axes: tuple[int, int, int] = (0, 1, 2)

    def contains(self, pts: np.ndarray) -> np.ndarray:
        a, b, c = (pts[:, i] for i in self.axes)
        inside = (c >= self.lo) & (c <= self.hi)
        poly = np.asarray(self.polygon, dtype=float)
        # Orientation-independent convex test: all edge cross products share the sign of the polygon's area.
        area_sign = np.sign(_signed_area(poly))
        for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
            cross = (x1 - x0) * (b - y0) - (y1 - y0) * (a - x0)
            inside &= cross * area_sign >= 0
        return inside

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        poly = np.asarray(self.polygon, dtype=float)
        lo, hi = np.zeros(3), np.zeros(3)
        lo[self.axes[0]], hi[self.axes[0]] = poly[:, 0].min(), poly[:, 0].max()
        lo[self.axes[1]], hi[self.axes[1]] = poly[:, 1].min(), poly[:, 1].max()
        lo[self.axes[2]], hi[self.axes[2]] = self.lo, self.hi
        return lo, hi


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


@dataclass(frozen=True)
class Capsule:
    """All points within `radius` of the segment a-b (nerve roots, rods of bone)."""

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius: float

    def contains(self, pts: np.ndarray) -> np.ndarray:
        a, b = np.asarray(self.a), np.asarray(self.b)
        ab = b - a
        t = np.clip(((pts - a) @ ab) / float(ab @ ab), 0.0, 1.0)
        closest = a + t[:, None] * ab
        return np.sum((pts - closest) ** 2, axis=1) <= self.radius**2

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.asarray(self.a), np.asarray(self.b)
        return np.minimum(a, b) - self.radius, np.maximum(a, b) + self.radius


@dataclass(frozen=True)
class EllipticRod:
    """Elliptic cylinder along local axis `axis` from `lo` to `hi`, centred at `center` in the other two."""

    center: tuple[float, float]
    radii: tuple[float, float]
    lo: float
    hi: float
    axis: int

    def contains(self, pts: np.ndarray) -> np.ndarray:
        others = [i for i in range(3) if i != self.axis]
        a = (pts[:, others[0]] - self.center[0]) / self.radii[0]
        b = (pts[:, others[1]] - self.center[1]) / self.radii[1]
        c = pts[:, self.axis]
        return (a * a + b * b <= 1.0) & (c >= self.lo) & (c <= self.hi)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        others = [i for i in range(3) if i != self.axis]
        lo, hi = np.zeros(3), np.zeros(3)
        for k, i in enumerate(others):
            lo[i], hi[i] = self.center[k] - self.radii[k], self.center[k] + self.radii[k]
        lo[self.axis], hi[self.axis] = self.lo, self.hi
        return lo, hi


@dataclass(frozen=True)
class HalfEllipsoid:
    """Ellipsoid centred at `center` with `radii`, kept only where local v >= `v_min` (a herniation)."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    v_min: float

    def contains(self, pts: np.ndarray) -> np.ndarray:
        q = (pts - np.asarray(self.center)) / np.asarray(self.radii)
        return (np.sum(q * q, axis=1) <= 1.0) & (pts[:, 1] >= self.v_min)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        c, r = np.asarray(self.center), np.asarray(self.radii)
        lo = c - r
        lo[1] = max(lo[1], self.v_min)
        return lo, c + r
