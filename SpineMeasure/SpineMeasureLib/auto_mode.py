"""Automatic measurement from a label map in the planned planes: every lumbar disc level (disc_landmarks.py), the
psoas in each mid-vertebral plane, and the offset angle against a reference plan.

Planes come from a plan (`plan.json` of SpineLocalizer: disc mid-planes with their left / posterior / normal axes,
and mid-vertebral planes). Label codes: the project's (docs/phantom.md). Definitions: docs/measurements.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from SpineLocalizerLib.labels import LUMBAR_REGION, STRUCTURE_CODES
from SpineLocalizerLib.volume_io import Volume

from . import geometry
from .catalogue import Thresholds
from .disc_landmarks import mask_centroid, measure_disc
from .plane_sampling import LocalSampler, Plane2D
from .results import Row, make_row, not_measurable


def measure_vertebra(
    labels: Volume, vert: dict[str, Any], left_hint, thresholds: Thresholds, method: str = "auto"
) -> list[Row]:
    """Psoas areas in the mid-vertebral plane."""
    level = vert["label"]
    normal = np.asarray(vert["normal_lps"], dtype=float)
    left = np.asarray(left_hint, dtype=float)
    left = left - normal * (left @ normal)
    left /= np.linalg.norm(left)
    post = np.cross(normal, left)
    center = np.asarray(vert["center_lps"], dtype=float)
    sampler = LocalSampler(labels, center, 125.0)
    plane = Plane2D(center, left, post, (-115.0, 115.0), (-85.0, 45.0), step=0.5)
    rows, areas = [], {}
    for side in ("left", "right"):
        m = plane.sample(sampler, (STRUCTURE_CODES[f"psoas_{side}"],))
        if not m.any():
            rows.append(
                not_measurable(level, f"psoas_area_{side}_mm2", method, f"no {side} psoas in the mid-vertebral plane")
            )
            continue
        areas[side] = float(m.sum()) * plane.step**2
        rows.append(
            make_row(
                level,
                f"psoas_area_{side}_mm2",
                areas[side],
                method,
                {"psoas_centroid": plane.world(*mask_centroid(m, plane))},
                thresholds,
            )
        )
    if len(areas) == 2:
        rows.append(make_row(level, "psoas_asymmetry_mm2", areas["left"] - areas["right"], method, {}, thresholds))
    return rows


def measure_plan(
    labels: Volume,
    plan: Mapping[str, Any],
    thresholds: Thresholds | None = None,
    reference_plan: dict | None = None,
    *,
    all_levels: bool = False,
) -> list[Row]:
    """Rows of every lumbar disc level of the plan (every level with `all_levels`: imported maps of any region)
    and of the psoas at each lumbar vertebra."""
    thresholds = thresholds or Thresholds()
    rows: list[Row] = []
    lumbar = [d for d in plan["discs"] if all_levels or d["label"].split("-")[0] in LUMBAR_REGION]
    ref = {d["label"]: d for d in (reference_plan or {}).get("discs", [])}
    for disc in lumbar:
        rows += measure_disc(labels, disc, thresholds)
        if disc["label"] in ref:
            angle = geometry.plane_angle_deg(disc["normal_lps"], ref[disc["label"]]["normal_lps"])
            rows.append(
                make_row(
                    disc["label"],
                    "offset_angle_deg",
                    angle,
                    "auto",
                    {"normal": disc["normal_lps"], "reference_normal": ref[disc["label"]]["normal_lps"]},
                    thresholds,
                )
            )
    left_hint = np.mean([d["left_lps"] for d in lumbar], axis=0) if lumbar else np.array([1.0, 0, 0])
    for vert in plan.get("vertebrae", []):
        if vert["label"].startswith("L"):
            rows += measure_vertebra(labels, vert, left_hint, thresholds)
    return rows
