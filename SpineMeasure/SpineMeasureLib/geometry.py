"""The one geometry of every measurement: functions of landmark coordinates (LPS mm).

Automatic measurement extracts these landmarks from label maps; reader measurement takes them from the reader's
points and lines. Both then call the same functions, so the two ways in differ only in where the landmarks come
from. Definitions: shared/DOMAIN.md section 3 and docs/measurements.md.
"""

from __future__ import annotations

import numpy as np


def _v(p) -> np.ndarray:
    return np.asarray(p, dtype=float)


def distance(a, b) -> float:
    return float(np.linalg.norm(_v(a) - _v(b)))


def distance_along(a, b, direction) -> float:
    """Length of a-b projected on `direction` (e.g. a height measured along the disc normal)."""
    d = _v(direction) / np.linalg.norm(direction)
    return float(abs((_v(b) - _v(a)) @ d))


def line_angle_deg(a0, a1, b0, b1) -> float:
    """Angle between the lines a0-a1 and b0-b1 (undirected, 0..90 degrees)."""
    u, w = _v(a1) - _v(a0), _v(b1) - _v(b0)
    c = abs(u @ w) / (np.linalg.norm(u) * np.linalg.norm(w))
    return float(np.degrees(np.arccos(np.clip(c, 0.0, 1.0))))


def point_line_distance(p, a, b) -> float:
    """Perpendicular distance from p to the line through a and b."""
    p, a, b = _v(p), _v(a), _v(b)
    d = (b - a) / np.linalg.norm(b - a)
    r = p - a
    return float(np.linalg.norm(r - (r @ d) * d))


def polygon_area(points) -> float:
    """Area of a planar closed polygon given in 3D (vector area, independent of the plane's orientation)."""
    pts = _v(points)
    if len(pts) < 3:
        raise ValueError("a closed contour needs at least three points")
    c = pts.mean(axis=0)
    s = np.zeros(3)
    for p, q in zip(pts, np.roll(pts, -1, axis=0)):
        s += np.cross(p - c, q - c)
    return float(np.linalg.norm(s) / 2.0)


def plane_angle_deg(n1, n2) -> float:
    """Offset angle between two planes given by their normals (0..90 degrees)."""
    a, b = _v(n1), _v(n2)
    c = abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(c, 0.0, 1.0))))


def msu_class(apex, border_point, tip_left, tip_right, left_dir, posterior_dir) -> tuple[int, str, float]:
    """MSU size and zone of a herniation (Mysliwiec et al., Eur Spine J 2010).

    `apex`: most posterior point of the herniation; `border_point`: the posterior disc border at the apex's
    lateral position; `tip_left`/`tip_right`: medial edges of the facet joints (SAP tips) defining the
    intra-facet line; `left_dir`, `posterior_dir`: the patient's left and posterior in the axial plane.
    Size: reach of the apex behind the border / distance from the border to the intra-facet line at that
    position, both along `posterior_dir` (<= 0.5 -> 1, <= 1 -> 2, else 3). Zone: A between the quarter points of
    the intra-facet line (its central half), B from there to the facet edges, C lateral to them.
    Returns (size, zone, ratio).
    """
    apex, border = _v(apex), _v(border_point)
    tl, tr = _v(tip_left), _v(tip_right)
    left = _v(left_dir) / np.linalg.norm(left_dir)
    post = _v(posterior_dir) / np.linalg.norm(posterior_dir)
    frac = float(((apex - tr) @ left) / ((tl - tr) @ left))  # 0 at the right tip, 1 at the left tip
    line_point = tr + np.clip(frac, 0.0, 1.0) * (tl - tr)
    reach = float((apex - border) @ post)
    to_line = float((line_point - border) @ post)
    ratio = reach / to_line if to_line > 0 else float("inf")
    size = 1 if ratio <= 0.5 else (2 if ratio <= 1.0 else 3)
    zone = "A" if 0.25 <= frac <= 0.75 else ("B" if 0.0 <= frac <= 1.0 else "C")
    return size, zone, ratio
