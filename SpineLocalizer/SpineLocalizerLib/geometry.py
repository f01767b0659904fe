"""Small rigid-geometry helpers shared by the phantom, the planner and the writers.

Every frame here is a 3x3 rotation whose columns are the local axes expressed in the parent frame, plus an
origin. Local axes follow the project convention (u, v, w) = (patient left, posterior, superior), so a frame
with identity rotation in LPS world coordinates is "upright".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rotation_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rotation matrix for a right-handed rotation of `angle_rad` about `axis` (Rodrigues)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1.0 - np.cos(angle_rad)) * (k @ k)


def rotation_from_euler_deg(about_u: float, about_v: float, about_w: float) -> np.ndarray:
    """Rotation applied as w, then v, then u (intrinsic-free: R = Ru @ Rv @ Rw)."""
    ru = rotation_about(np.array([1.0, 0, 0]), np.deg2rad(about_u))
    rv = rotation_about(np.array([0, 1.0, 0]), np.deg2rad(about_v))
    rw = rotation_about(np.array([0, 0, 1.0]), np.deg2rad(about_w))
    return ru @ rv @ rw


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("cannot normalise a zero vector")
    return v / n


def angle_between_deg(a: np.ndarray, b: np.ndarray, *, undirected: bool = False) -> float:
    """Angle between two vectors in degrees; `undirected` treats a and -a as the same line."""
    c = float(np.dot(unit(a), unit(b)))
    if undirected:
        c = abs(c)
    return float(np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0))))


@dataclass(frozen=True)
class Frame:
    """A rigid frame: `rotation` columns are the local (u, v, w) axes in the parent frame."""

    origin: np.ndarray
    rotation: np.ndarray

    def to_local(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points) - self.origin) @ self.rotation

    def to_parent(self, local_points: np.ndarray) -> np.ndarray:
        return np.asarray(local_points) @ self.rotation.T + self.origin

    @property
    def u(self) -> np.ndarray:
        return self.rotation[:, 0]

    @property
    def v(self) -> np.ndarray:
        return self.rotation[:, 1]

    @property
    def w(self) -> np.ndarray:
        return self.rotation[:, 2]

    def compose(self, child: Frame) -> Frame:
        """`child` is expressed in this frame; return it in this frame's parent."""
        return Frame(self.to_parent(child.origin), self.rotation @ child.rotation)


def half_rotation(rot: np.ndarray) -> np.ndarray:
    """The rotation whose square is `rot` (same axis, half the angle)."""
    angle = np.arccos(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))
    if angle < 1e-12:
        return np.eye(3)
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    return rotation_about(axis, angle / 2.0)
