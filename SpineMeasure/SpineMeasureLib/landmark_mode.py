"""Measurements from a reader's landmarks (fully manual, human-machine, ground-truth annotation).

Landmark file (JSON, LPS mm; docs/measurements.md):

    {"reader": "R1", "coordinate_system": "LPS",
     "levels": {"L4-L5": {"points": {"disc_superior": [x, y, z], ...},
                          "contours": {"dural_sac": [[x, y, z], ...], ...},
                          "normal": [x, y, z]},
                "L4": {"contours": {"psoas_left": [...], "psoas_right": [...]}}}}

Each measurement below is computed when its landmarks are present; otherwise the row says which are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from SpineLocalizerLib.json_files import read_json

from . import geometry
from .catalogue import Thresholds
from .results import Row, make_row, not_measurable

SIDES = ("left", "right")


def _spec() -> list[tuple[str, list[str], list[str], Any]]:
    """(measurement, point names, contour names, function(points, contours, level) -> (value, landmarks))."""

    def height(p, c, lvl):
        if "normal" in lvl:
            return geometry.distance_along(p["disc_superior"], p["disc_inferior"], lvl["normal"])
        return geometry.distance(p["disc_superior"], p["disc_inferior"])

    spec: list[tuple[str, list[str], list[str], Any]] = [
        ("disc_height_mm", ["disc_superior", "disc_inferior"], [], height),
        (
            "canal_diameter_mm",
            ["disc_posterior_mid", "spinous_mid"],
            [],
            lambda p, c, lvl: geometry.distance(p["disc_posterior_mid"], p["spinous_mid"]),
        ),
        (
            "dural_sac_ap_mm",
            ["sac_anterior", "sac_posterior"],
            [],
            lambda p, c, lvl: geometry.distance(p["sac_anterior"], p["sac_posterior"]),
        ),
        ("canal_area_mm2", [], ["dural_sac"], lambda p, c, lvl: geometry.polygon_area(c["dural_sac"])),
        (
            "herniation_ratio",
            [],
            ["herniation", "canal"],
            lambda p, c, lvl: geometry.polygon_area(c["herniation"]) / geometry.polygon_area(c["canal"]),
        ),
    ]
    for s in SIDES:
        spec += [
            (
                f"foraminal_height_{s}_mm",
                [f"upper_pedicle_inferior_{s}", f"lower_pedicle_superior_{s}"],
                [],
                lambda p, c, lvl, s=s: geometry.distance(
                    p[f"upper_pedicle_inferior_{s}"], p[f"lower_pedicle_superior_{s}"]
                ),
            ),
            (
                f"facet_angle_{s}_deg",
                ["midline_anterior", "midline_posterior", f"facet_{s}_anterior", f"facet_{s}_posterior"],
                [],
                lambda p, c, lvl, s=s: geometry.line_angle_deg(
                    p["midline_anterior"], p["midline_posterior"], p[f"facet_{s}_anterior"], p[f"facet_{s}_posterior"]
                ),
            ),
            (
                f"lateral_recess_depth_{s}_mm",
                [f"sap_tip_{s}", f"floor_{s}_a", f"floor_{s}_b"],
                [],
                lambda p, c, lvl, s=s: geometry.point_line_distance(
                    p[f"sap_tip_{s}"], p[f"floor_{s}_a"], p[f"floor_{s}_b"]
                ),
            ),
            (
                f"lateral_recess_angle_{s}_deg",
                [f"floor_{s}_a", f"floor_{s}_b", f"roof_{s}_a", f"roof_{s}_b"],
                [],
                lambda p, c, lvl, s=s: geometry.line_angle_deg(
                    p[f"floor_{s}_a"], p[f"floor_{s}_b"], p[f"roof_{s}_a"], p[f"roof_{s}_b"]
                ),
            ),
            (f"psoas_area_{s}_mm2", [], [f"psoas_{s}"], lambda p, c, lvl, s=s: geometry.polygon_area(c[f"psoas_{s}"])),
        ]
    return spec


def load_landmarks(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    data = read_json(path, "landmark file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a landmark file is a JSON object with 'levels' (docs/measurements.md)")
    if data.get("coordinate_system", "LPS") != "LPS":
        raise ValueError(
            f"{path}: landmarks must be in LPS (got {data.get('coordinate_system')!r}); export them from Slicer as LPS"
        )
    if not isinstance(data.get("levels"), dict):
        raise ValueError(f"{path}: needs a 'levels' object mapping level names to points/contours")
    return data


def measure_landmarks(data: dict[str, Any], thresholds: Thresholds | None = None) -> list[Row]:
    thresholds = thresholds or Thresholds()
    method = f"reader:{data.get('reader', 'unknown')}"
    rows: list[Row] = []
    for level, lvl in data["levels"].items():
        points = {k: np.asarray(v, dtype=float) for k, v in lvl.get("points", {}).items()}
        contours = {k: np.asarray(v, dtype=float) for k, v in lvl.get("contours", {}).items()}
        for name, need_p, need_c, fn in _spec():
            present = [n for n in need_p if n in points] + [n for n in need_c if n in contours]
            if not present:
                continue  # nothing of this measurement was annotated at this level
            missing = [n for n in need_p if n not in points] + [n for n in need_c if n not in contours]
            if missing:
                rows.append(not_measurable(level, name, method, f"missing landmarks: {', '.join(missing)}"))
                continue
            used = {n: points[n] for n in need_p} | {n: contours[n] for n in need_c}
            rows.append(make_row(level, name, float(fn(points, contours, lvl)), method, used, thresholds))
        rows += _derived(level, rows, method, thresholds, points)
    return rows


def _derived(level: str, rows: list[Row], method: str, thresholds: Thresholds, points) -> list[Row]:
    """Tropism, psoas asymmetry and MSU class from values or points already at this level."""
    have = {r.measurement: r for r in rows if r.level == level and r.status == "ok"}
    out = []
    if "facet_angle_left_deg" in have and "facet_angle_right_deg" in have:
        v = abs(have["facet_angle_left_deg"].value - have["facet_angle_right_deg"].value)
        out.append(make_row(level, "facet_tropism_deg", v, method, {}, thresholds))
    if "psoas_area_left_mm2" in have and "psoas_area_right_mm2" in have:
        v = have["psoas_area_left_mm2"].value - have["psoas_area_right_mm2"].value
        out.append(make_row(level, "psoas_asymmetry_mm2", v, method, {}, thresholds))
    need = ["herniation_apex", "herniation_border", "sap_tip_left", "sap_tip_right"]
    if "herniation_apex" in points:
        if all(n in points for n in need):
            apex, border, tl, tr = (points[n] for n in need)
            left = tl - tr
            post = (apex - border) - left * ((apex - border) @ left) / (left @ left)
            size, zone, _ = geometry.msu_class(apex, border, tl, tr, left, post)
            out.append(make_row(level, "msu_class", f"{size}-{zone}", method, {n: points[n] for n in need}, thresholds))
        else:
            missing = [n for n in need if n not in points]
            out.append(not_measurable(level, "msu_class", method, f"missing landmarks: {', '.join(missing)}"))
    return out
