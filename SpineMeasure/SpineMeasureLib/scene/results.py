"""MRML logic: measurement rows as a table node and their landmarks as markups a reader can inspect."""

from __future__ import annotations

from dataclasses import asdict

from SpineLocalizerLib.scene import lps_to_ras
from SpineLocalizerLib.scene.volumes import add_rows_table

from ..results import Row

COLUMNS = ["level", "measurement", "value", "unit", "method", "source", "flags", "status", "reason"]


def add_results(scene, rows: list[Row], name: str) -> dict:
    """A table of every row, one line markup per two-point measurement and a point list per level."""
    table = add_rows_table(scene, [asdict(r) for r in rows], name, COLUMNS)
    lines, points = [], {}
    for r in rows:
        if r.status != "ok" or not r.landmarks:
            continue
        coords = {k: v for k, v in r.landmarks.items() if isinstance(v, list) and len(v) == 3}
        if len(coords) == 2:
            line = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", f"{r.level} {r.measurement} ({r.method})")
            for p in coords.values():
                line.AddControlPoint(*lps_to_ras(p))
            line.SetLocked(True)
            lines.append(line)
        else:
            node = points.get(r.level)
            if node is None:
                node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{r.level} landmarks ({r.method})")
                node.SetLocked(True)
                points[r.level] = node
            for label, p in coords.items():
                i = node.AddControlPoint(*lps_to_ras(p))
                node.SetNthControlPointLabel(i, f"{r.measurement}: {label}")
    return {"table": table, "lines": lines, "points": points}
