"""Sagittal and coronal slabs, vertebra mid-planes and saturation bands from the measured discs.

LVP fits the scan directions by least squares to disc key points on the best sagittal and coronal display
images. Here the key points are the disc centroids:
- on the coronal view (x against z) a line x = c z + e gives the spine's lateral course; the sagittal plane
  contains it and the AP axis, so its normal is (1, 0, -c), normalised (pointing left);
- on the sagittal view (y against z) a line y = a z + b gives the spine's AP course; the coronal plane contains it
  and the sagittal normal, so the two slabs are exactly perpendicular.
Each slab is centred on the discs' extent in its plane and made large enough to cover all discs with the
protocol margin. The saturation band is parallel to the coronal plane, anterior to the most anterior disc point
by the protocol distance (LVP).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .disc_geometry import DiscMeasure
from .protocol import slab_extent_mm

SUPERIOR = np.array([0.0, 0.0, 1.0])


def plane_axes(normal: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-plane (x, y) axes of a plane: y is `up` projected into the plane, x = y x normal (right-handed x, y, n)."""
    y = up - normal * (up @ normal)
    y /= np.linalg.norm(y)
    x = np.cross(y, normal)
    return x, y


def _fit_slope(z: np.ndarray, values: np.ndarray) -> float:
    if len(z) < 2 or np.ptp(z) < 1e-6:
        return 0.0
    slope, _ = np.polyfit(z, values, 1)
    return float(slope)


def _slab(center_hint, normal, up, points, group: dict[str, Any], margin: float) -> dict[str, Any]:
    x, y = plane_axes(normal, up)
    rel = points - center_hint
    px, py = rel @ x, rel @ y
    mid = center_hint + x * 0.5 * (px.min() + px.max()) + y * 0.5 * (py.min() + py.max())
    fov = [
        max(float(group["fov_mm"][0]), float(np.ptp(px)) + 2 * margin),
        max(float(group["fov_mm"][1]), float(np.ptp(py)) + 2 * margin),
    ]
    return {
        "center_lps": mid.tolist(),
        "normal_lps": normal.tolist(),
        "x_axis_lps": x.tolist(),
        "y_axis_lps": y.tolist(),
        "fov_mm": fov,
        "n_slices": int(group["n_slices"]),
        "thickness_mm": float(group["thickness_mm"]),
        "gap_mm": float(group["gap_mm"]),
        "slab_thickness_mm": slab_extent_mm(group),
        "matrix": list(group["matrix"]),
        "phase_direction": group["phase_direction"],
    }


def plan_slabs(discs: list[DiscMeasure], protocol: dict[str, Any]) -> dict[str, Any]:
    centroids = np.stack([d.centroid for d in discs])
    edges = np.stack([d.posterior_edge for d in discs] + [d.anterior_edge for d in discs])
    z = centroids[:, 2]
    c = _fit_slope(z, centroids[:, 0])
    a = _fit_slope(z, centroids[:, 1])
    n_sag = np.array([1.0, 0.0, -c])
    n_sag /= np.linalg.norm(n_sag)
    spine_sag = np.array([0.0, a, 1.0])
    n_cor = np.cross(n_sag, spine_sag)
    n_cor /= np.linalg.norm(n_cor)
    if n_cor[1] < 0:
        n_cor = -n_cor
    margin = float(protocol.get("slab_margin_mm", 20.0))
    everything = np.vstack([centroids, edges])
    sagittal = _slab(centroids.mean(axis=0), n_sag, SUPERIOR, everything, protocol["sagittal"], margin)
    # The coronal slab is centred between the disc centres and their posterior edges, so it spans the bodies
    # and the canal.
    cor_center = 0.5 * (centroids.mean(axis=0) + np.stack([d.posterior_edge for d in discs]).mean(axis=0))
    coronal = _slab(cor_center, n_cor, SUPERIOR, everything, protocol["coronal"], margin)
    cor_off = (cor_center - np.asarray(coronal["center_lps"])) @ n_cor
    coronal["center_lps"] = (np.asarray(coronal["center_lps"]) + cor_off * n_cor).tolist()
    band = saturation_band(discs, n_cor, sagittal, protocol)
    return {"sagittal": sagittal, "coronal": coronal, "saturation_bands": [band]}


def saturation_band(discs: list[DiscMeasure], n_cor: np.ndarray, sagittal: dict, protocol: dict) -> dict[str, Any]:
    all_points = np.vstack([d.points for d in discs])
    depth = all_points @ n_cor  # larger is more posterior
    anterior_point = all_points[int(np.argmin(depth))]
    cfg = protocol["saturation_band"]
    thickness = float(cfg["thickness_mm"])
    x, y = plane_axes(n_cor, SUPERIOR)
    # Along the coronal plane the band spans the sagittal FOV in height and the coronal FOV in width.
    sag_center = np.asarray(sagittal["center_lps"])
    center = anterior_point - n_cor * (float(cfg["distance_mm"]) + thickness / 2)
    center = center + y * ((sag_center - center) @ y) + x * ((sag_center - center) @ x)
    width = float(cfg.get("width_mm", protocol["coronal"]["fov_mm"][0]))
    height = float(cfg.get("height_mm", sagittal["fov_mm"][1]))
    return {
        "name": "anterior saturation band",
        "center_lps": center.tolist(),
        "normal_lps": (-n_cor).tolist(),
        "x_axis_lps": x.tolist(),
        "y_axis_lps": y.tolist(),
        "size_mm": [width, height, thickness],
        "thickness_mm": thickness,
        "distance_mm": float(cfg["distance_mm"]),
        "anterior_disc_point_lps": anterior_point.tolist(),
    }


def vertebra_planes(discs: list[DiscMeasure]) -> list[dict[str, Any]]:
    """Mid-vertebral planes between consecutive discs (used e.g. for psoas area)."""
    out = []
    for upper, lower in zip(discs[:-1], discs[1:]):
        up_name, low_name = upper.label.split("-"), lower.label.split("-")
        if up_name[1] != low_name[0]:
            continue  # a level is missing between them: no vertebra can be placed honestly
        normal = upper.normal + lower.normal
        normal /= np.linalg.norm(normal)
        out.append(
            {
                "label": up_name[1],
                "center_lps": (0.5 * (upper.centroid + lower.centroid)).tolist(),
                "normal_lps": normal.tolist(),
                "from_discs": [upper.label, lower.label],
            }
        )
    return out
