"""MRML logic: the only code that knows both slicer-core nodes and the pure core.

Slicer's scene is RAS; files and the core are LPS. Conversions happen here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_to_ras(v) -> np.ndarray:
    return LPS_TO_RAS @ np.asarray(v, dtype=float)


ras_to_lps = lps_to_ras  # the flip is its own inverse


def markups_logic(scene):
    from slicer import vtkSlicerMarkupsLogic

    logic = vtkSlicerMarkupsLogic()
    logic.SetMRMLScene(scene)
    return logic


def load_plan_markups(scene, folder: str | Path) -> dict[str, object]:
    """Load every .mrk.json of a plan folder into `scene`; returns node name -> node."""
    logic = markups_logic(scene)
    nodes = {}
    for path in sorted(Path(folder).glob("*.mrk.json")):
        node_id = logic.LoadMarkups(str(path))
        if not node_id:
            raise ValueError(f"{path}: Slicer could not load this markups file")
        node = scene.GetNodeByID(node_id)
        nodes[node.GetName()] = node
    return nodes


def plane_geometry_lps(node) -> dict[str, np.ndarray]:
    """Centre, normal, in-plane x axis (LPS) and size of a plane markup node."""
    center, normal = [0.0] * 3, [0.0] * 3
    node.GetCenterWorld(center)
    node.GetNormalWorld(normal)
    x, y, z = [0.0] * 3, [0.0] * 3, [0.0] * 3
    node.GetAxesWorld(x, y, z)
    return {
        "center": ras_to_lps(center),
        "normal": ras_to_lps(normal),
        "x_axis": ras_to_lps(x),
        "size": np.array(node.GetSize()[:2], dtype=float),
    }


def roi_geometry_lps(node) -> dict[str, np.ndarray]:
    """Centre, axes (columns, LPS) and size of an ROI markup node."""
    center = [0.0] * 3
    node.GetCenterWorld(center)
    m = node.GetObjectToWorldMatrix()
    axes_ras = np.array([[m.GetElement(r, c) for c in range(3)] for r in range(3)])
    return {"center": ras_to_lps(center), "axes": LPS_TO_RAS @ axes_ras, "size": np.array(node.GetSize(), dtype=float)}


def set_plane_lps(node, center, normal, x_axis, size) -> None:
    """Place a pointNormal plane node from LPS geometry (what a user's edit or the planner produces)."""
    n = np.asarray(normal, dtype=float) / np.linalg.norm(normal)
    x = np.asarray(x_axis, dtype=float)
    x = x - n * (x @ n)
    x /= np.linalg.norm(x)
    y = np.cross(n, x)
    node.SetPlaneType(node.PlaneTypePointNormal)
    node.SetSizeMode(node.SizeModeAbsolute)
    node.SetAxesWorld(list(lps_to_ras(x)), list(lps_to_ras(y)), list(lps_to_ras(n)))
    node.SetCenterWorld(*lps_to_ras(center))
    node.SetSize(float(size[0]), float(size[1]))
