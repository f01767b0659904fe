"""Slicer markups files (`.mrk.json`, LPS) for scan planes (pointNormal planes) and saturation bands (ROIs).

Written as plain JSON so the pure core needs no Slicer; `Testing/test_markups_slicer.py` loads them with
slicer-core's `vtkSlicerMarkupsLogic.LoadMarkups` and checks centre, normal, axes and size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"


def _display(color) -> dict:
    return {
        "visibility": True,
        "opacity": 1.0,
        "color": list(color),
        "selectedColor": list(color),
        "propertiesLabelVisibility": True,
        "pointLabelsVisibility": False,
        "handlesInteractive": True,
        "translationHandleVisibility": True,
        "rotationHandleVisibility": True,
        "scaleHandleVisibility": False,
    }


def _axes(x_axis, normal) -> np.ndarray:
    n = np.asarray(normal, dtype=float)
    n /= np.linalg.norm(n)
    x = np.asarray(x_axis, dtype=float)
    x = x - n * (x @ n)
    x /= np.linalg.norm(x)
    y = np.cross(n, x)
    return np.stack([x, y, n], axis=1)  # columns x, y, z


def _matrix4(rot: np.ndarray, center) -> list[float]:
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = center
    return [float(v) for v in m.ravel()]


def _markup(kind: str, name: str, center, rot: np.ndarray, color, description: str, fields: dict) -> dict:
    """The fields every markups node shares, one control point at the centre, and the type's own `fields`."""
    c = [float(v) for v in center]
    orientation = [float(v) for v in rot.ravel()]
    node = {
        "type": kind,
        "name": name,
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "locked": False,
        "fixedNumberOfControlPoints": False,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": 1,
        **fields,
        "controlPoints": [
            {
                "id": "1",
                "label": name,
                "description": description,
                "position": c,
                "orientation": orientation,
                "selected": True,
                "locked": False,
                "visibility": True,
                "positionStatus": "defined",
            }
        ],
        "measurements": [],
        "display": _display(color),
    }
    return {"@schema": SCHEMA, "markups": [node]}


def plane_markup(name: str, center, normal, x_axis, size_mm, *, color=(0.4, 1.0, 1.0), description: str = "") -> dict:
    rot = _axes(x_axis, normal)
    c = [float(v) for v in center]
    fields = {
        "planeType": "pointNormal",
        "sizeMode": "absolute",
        "autoScalingFactor": 1.0,
        "center": c,
        "normal": [float(v) for v in rot[:, 2]],
        # Slicer converts these matrices to RAS by flipping their first two rows only; writing objectToBase as that
        # flip and baseToNode as the LPS axes yields exactly the LPS axes after loading.
        "objectToBase": _matrix4(np.diag([-1.0, -1.0, 1.0]), [0.0, 0.0, 0.0]),
        "baseToNode": _matrix4(rot, c),
        "orientation": [float(v) for v in rot.ravel()],
        "size": [float(size_mm[0]), float(size_mm[1]), 0.0],
        "planeBounds": [-size_mm[0] / 2, size_mm[0] / 2, -size_mm[1] / 2, size_mm[1] / 2],
    }
    return _markup("Plane", name, c, rot, color, description, fields)


def roi_markup(name: str, center, normal, x_axis, size_mm, *, color=(1.0, 0.85, 0.2), description: str = "") -> dict:
    """An oriented box; its local z axis is `normal`, so size_mm[2] is the thin (band) thickness."""
    rot = _axes(x_axis, normal)
    fields = {
        "roiType": "Box",
        "center": [float(v) for v in center],
        "orientation": [float(v) for v in rot.ravel()],
        "size": [float(s) for s in size_mm],
        "insideOut": False,
    }
    return _markup("ROI", name, center, rot, color, description, fields)


def write_json(path: str | Path, content: dict) -> None:
    Path(path).write_text(json.dumps(content, indent=2))


def safe_file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
