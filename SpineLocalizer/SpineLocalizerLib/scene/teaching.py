"""MRML logic of the teaching mode: check a trainee's plane, log every attempt in a table that can be exported."""

from __future__ import annotations

import time
from pathlib import Path

from ..planning.teaching import PlaneScore, score_plane
from . import plane_geometry_lps, string_columns

TABLE_NAME = "Teaching attempts"
COLUMNS = ("Time", "Trainee", "Level", "Reference", "Offset angle (deg)", "Centre distance (mm)", "Passed", "Advice")


def trainee_plane_name(trainee: str) -> str:
    return f"{trainee} plane"


def latest_trainee_plane(scene, trainee: str):
    """The trainee's most recent plane (a second "New trainee plane" makes a second node of the same name; the
    first one found by name would be the old plane), or None."""
    nodes = scene.GetNodesByClassByName("vtkMRMLMarkupsPlaneNode", trainee_plane_name(trainee))
    count = nodes.GetNumberOfItems()
    return nodes.GetItemAsObject(count - 1) if count else None


HIDDEN = "SpinePlanner.hiddenForTeaching"  # on a plan node hidden from the trainee: its visibility before


def _plan_nodes_shown(scene) -> list:
    """Display nodes of the plan (planes, bands, disc points) that the planner made."""
    out = []
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.GetAttribute("SpinePlanner.managed") == "1" and node.IsA("vtkMRMLDisplayableNode"):
            out.append(node)
    return out


def hide_plan_from_trainee(scene) -> int:
    """Hide the AI's (or a loaded expert's) planes, bands and disc points while a trainee places a plane; what
    each showed before is kept on it, so `reveal_plan` gives back the reader's own choice (a plane the teacher
    had hidden stays hidden). Returns how many nodes were hidden."""
    hidden = 0
    for node in _plan_nodes_shown(scene):
        if node.GetDisplayNode() is None:  # Slicer's markups logic adds one on its own; a bare scene may not
            node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is None:
            continue
        if node.GetAttribute(HIDDEN) is None:
            node.SetAttribute(HIDDEN, "1" if display.GetVisibility() else "0")
        display.SetVisibility(False)
        hidden += 1
    return hidden


def reveal_plan(scene) -> None:
    """Show the plan again as it was before `hide_plan_from_trainee` (after a check: the trainee sees the answer)."""
    for node in _plan_nodes_shown(scene):
        before = node.GetAttribute(HIDDEN)
        if before is None or node.GetDisplayNode() is None:
            continue
        node.GetDisplayNode().SetVisibility(before == "1")
        node.RemoveAttribute(HIDDEN)


def reference_plane(level: str, last_plan: dict | None, expert_plan_path: str = "") -> tuple[dict, str]:
    """The plane a trainee's `level` plane is scored against and the reference's name: the expert's plan file
    where one is chosen, else the AI's last plan. ValueError says what is missing."""
    from ..json_files import read_json

    if expert_plan_path:
        data = read_json(expert_plan_path, "expert plan (plan.json)")
        discs, name = (data.get("discs", []) if isinstance(data, dict) else []), "expert"
    elif last_plan is not None:
        discs, name = last_plan["discs"], "AI"
    else:
        raise ValueError("Run the AI or choose an expert plan file as the reference.")
    ref = next((d for d in discs if d.get("label") == level), None)
    if ref is None:
        raise ValueError(f"The {name} reference has no {level} plane.")
    return {"center": ref["scan_center_lps"], "normal": ref["normal_lps"], "posterior": ref["posterior_lps"]}, name


class TeachingSceneLogic:
    def __init__(self, scene, *, max_angle_deg: float = 3.0, max_distance_mm: float = 5.0):
        self.scene = scene
        self.max_angle_deg = max_angle_deg
        self.max_distance_mm = max_distance_mm

    def table(self):
        node = self.scene.GetFirstNodeByName(TABLE_NAME)
        if node is None:
            node = self.scene.AddNewNodeByClass("vtkMRMLTableNode", TABLE_NAME)
            string_columns(node.GetTable(), COLUMNS)
        return node

    def check(self, trainee_plane, reference: dict, *, trainee: str, level: str, reference_name: str) -> PlaneScore:
        """`reference`: {'center', 'normal', 'posterior'} in LPS (an AI plan disc or an expert's plane). A plane
        the trainee has not placed yet is refused (ValueError) and not logged: it would score the origin."""
        if trainee_plane is None or not trainee_plane.GetIsPlaneValid():
            raise ValueError(f"place the {level} plane first (click in a view to put it down), then check it")
        geo = plane_geometry_lps(trainee_plane)
        score = score_plane(
            geo["center"],
            geo["normal"],
            reference["center"],
            reference["normal"],
            reference["posterior"],
            max_angle_deg=self.max_angle_deg,
            max_distance_mm=self.max_distance_mm,
        )
        table = self.table().GetTable()
        values = (
            time.strftime("%Y-%m-%d %H:%M:%S"),
            trainee,
            level,
            reference_name,
            f"{score.offset_angle_deg:.2f}",
            f"{score.center_distance_mm:.2f}",
            "yes" if score.passed else "no",
            score.advice,
        )
        for c, v in enumerate(values):
            table.GetColumn(c).InsertNextValue(v)
        table.Modified()
        self.table().Modified()
        return score

    def export_csv(self, path: str | Path) -> None:
        from slicer import vtkMRMLTableStorageNode

        storage = vtkMRMLTableStorageNode()
        self.scene.AddNode(storage)
        storage.SetFileName(str(path))
        if not storage.WriteData(self.table()):
            raise OSError(f"could not write {path}")
        self.scene.RemoveNode(storage)
