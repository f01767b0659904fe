"""MRML logic of the reader worksheet: named markups a reader places, read back as landmarks (LPS).

One fiducial list per level and reader holds the named points (labels = landmark names of
docs/measurements.md); closed curves hold the contours. Reading the worksheet gives the landmark dictionary of
`landmark_mode`, so reader and automatic measurements share one geometry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from SpineLocalizerLib.scene import lps_to_ras, ras_to_lps

DISC_POINTS = (
    "disc_superior",
    "disc_inferior",
    "disc_posterior_mid",
    "spinous_mid",
    "sac_anterior",
    "sac_posterior",
    "midline_anterior",
    "midline_posterior",
    *(
        f"{name}_{side}"
        for side in ("left", "right")
        for name in ("upper_pedicle_inferior", "lower_pedicle_superior", "facet", "sap_tip", "floor", "roof")
    ),
)
DISC_CONTOURS = ("dural_sac", "herniation", "canal")
VERTEBRA_CONTOURS = ("psoas_left", "psoas_right")
ATTR = "SpinePlanner.worksheet"


def _expand(names):
    out = []
    for n in names:
        if n.startswith(("facet_", "floor_", "roof_")):
            stem, side = n.split("_", 1)
            suffixes = ("anterior", "posterior") if stem == "facet" else ("a", "b")
            out += [f"{stem}_{side}_{s}" for s in suffixes]
        else:
            out.append(n)
    return out


def create_worksheet(scene, level: str, reader: str) -> dict[str, Any]:
    """Create (or return) the markups a reader fills in for `level` ('L4-L5' disc or 'L3' vertebra)."""
    is_disc = "-" in level
    name = f"{level} points ({reader})"
    points = scene.GetFirstNodeByName(name)
    if points is None and is_disc:
        points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        points.SetAttribute(ATTR, f"{level}|{reader}")
        for label in _expand(DISC_POINTS):
            i = points.AddControlPoint(0.0, 0.0, 0.0, label)
            points.UnsetNthControlPointPosition(i)  # to be placed by the reader
    curves = {}
    for c in DISC_CONTOURS if is_disc else VERTEBRA_CONTOURS:
        cname = f"{level} {c} ({reader})"
        node = scene.GetFirstNodeByName(cname) or scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", cname)
        node.SetAttribute(ATTR, f"{level}|{reader}|{c}")
        curves[c] = node
    return {"points": points, "curves": curves}


def read_worksheet(scene, reader: str) -> dict[str, Any]:
    """Landmark dictionary (landmark_mode format, LPS) of everything `reader` has placed."""
    levels: dict[str, dict] = {}
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        tag = node.GetAttribute(ATTR) if hasattr(node, "GetAttribute") else None
        if not tag:
            continue
        parts = tag.split("|")
        if parts[1] != reader:
            continue
        entry = levels.setdefault(parts[0], {"points": {}, "contours": {}})
        if len(parts) == 2:
            for k in range(node.GetNumberOfControlPoints()):
                if node.GetNthControlPointPositionStatus(k) != node.PositionDefined:
                    continue
                ras = [0.0] * 3
                node.GetNthControlPointPositionWorld(k, ras)
                entry["points"][node.GetNthControlPointLabel(k)] = ras_to_lps(ras).tolist()
        elif node.GetNumberOfControlPoints() >= 3:
            pts = []
            for k in range(node.GetNumberOfControlPoints()):
                ras = [0.0] * 3
                node.GetNthControlPointPositionWorld(k, ras)
                pts.append(ras_to_lps(ras).tolist())
            entry["contours"][parts[2]] = pts
    return {"reader": reader, "coordinate_system": "LPS", "levels": levels}


def place_point(points_node, label: str, lps) -> None:
    """Set a named worksheet point (what the reader's click does; used by tests and scripted workflows)."""
    for k in range(points_node.GetNumberOfControlPoints()):
        if points_node.GetNthControlPointLabel(k) == label:
            points_node.SetNthControlPointPositionWorld(k, *lps_to_ras(lps))
            return
    raise KeyError(f"no worksheet point named {label!r}")


def set_contour(curve_node, points_lps) -> None:
    curve_node.RemoveAllControlPoints()
    for p in np.asarray(points_lps, dtype=float):
        curve_node.AddControlPoint(*lps_to_ras(p))
