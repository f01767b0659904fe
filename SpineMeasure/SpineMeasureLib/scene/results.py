"""MRML logic: measurement rows as a table node and their landmarks as markups a reader can inspect."""

from __future__ import annotations

from dataclasses import asdict

from SpineLocalizerLib.scene import lps_to_ras
from SpineLocalizerLib.scene.folders import ROOT_FOLDER, put_in_folder
from SpineLocalizerLib.scene.volumes import GENERATED, add_rows_table, remove_with_display

from ..results import Row

COLUMNS = ["level", "measurement", "value", "unit", "method", "source", "flags", "status", "reason"]


RESULTS = "SpinePlanner.results"  # on the markups of a results set: the set's (table's) name


def _drop_earlier_markups(scene, name: str) -> None:
    """The line and point markups an earlier call made for the results set `name` (a re-measure replaces them;
    each click added another copy before). Markups a reader made are never touched."""
    old = []
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.GetAttribute(RESULTS) == name and node.GetAttribute(GENERATED) == "1":
            old.append(node)
    for node in old:
        remove_with_display(scene, node)


def _new_markups(scene, cls: str, node_name: str, results: str):
    node = scene.AddNewNodeByClass(cls, node_name)
    node.SetAttribute(GENERATED, "1")
    node.SetAttribute(RESULTS, results)
    node.SetLocked(True)
    return node


def add_results(scene, rows: list[Row], name: str) -> dict:
    """A table of every row, one line markup per two-point measurement and a point list per level, together in
    the folder SpinePlanner/`name`; a second call with the same `name` replaces what the first made."""
    table = add_rows_table(scene, [asdict(r) for r in rows], name, COLUMNS)
    _drop_earlier_markups(scene, name)
    lines, points = [], {}
    for r in rows:
        if r.status != "ok" or not r.landmarks:
            continue
        coords = {k: v for k, v in r.landmarks.items() if isinstance(v, list) and len(v) == 3}
        if len(coords) == 2:
            line = _new_markups(scene, "vtkMRMLMarkupsLineNode", f"{r.level} {r.measurement} ({r.method})", name)
            for p in coords.values():
                line.AddControlPoint(*lps_to_ras(p))
            lines.append(line)
        else:
            node = points.get(r.level)
            if node is None:
                node = _new_markups(scene, "vtkMRMLMarkupsFiducialNode", f"{r.level} landmarks ({r.method})", name)
                points[r.level] = node
            for label, p in coords.items():
                i = node.AddControlPoint(*lps_to_ras(p))
                node.SetNthControlPointLabel(i, f"{r.measurement}: {label}")
    for node in [table, *lines, *points.values()]:
        put_in_folder(scene, node, ROOT_FOLDER, name)
    return {"table": table, "lines": lines, "points": points}
