"""MRML logic of SpineLocalizer: the plan as editable markups, a live scan-parameter table, manual edits kept.

Every node this logic creates carries attributes under `SpinePlanner.`: its role (axial / sagittal / coronal /
band), level, source (`ai` or `manual`) and the AI geometry (LPS JSON), so a re-run of the AI can update AI
planes, leave manual edits alone, and "Reset to AI" can restore a plane.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import lps_to_ras, plane_geometry_lps, ras_to_lps, roi_geometry_lps, set_plane_lps, string_columns
from .layout import AI_CHECK, AI_GOOD, MANUAL, SLAB, colour_word

ATTR = "SpinePlanner."
TABLE_NAME = "Scan parameters"
COLUMNS = (
    "Plane",
    "Source",
    "Center LPS (mm)",
    "Normal LPS",
    "Angle to axial (deg)",
    "Slices",
    "Thickness (mm)",
    "Quality",
    "Shown as",
)


def _fmt(v) -> str:
    return " ".join(f"{x:.1f}" for x in v)


def _geometry(node) -> dict[str, np.ndarray]:
    """What an edit changes: a plane's centre, normal, in-plane axis and size; a band's centre, axes and size."""
    return roi_geometry_lps(node) if node.IsA("vtkMRMLMarkupsROINode") else plane_geometry_lps(node)


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-4) for k in a)


class PlanSceneLogic:
    """Creates and keeps in sync the plan nodes of one scene."""

    def __init__(self, scene):
        self.scene = scene
        # Observed nodes by the node itself, not by ID: a closed and refilled scene reuses the IDs.
        self._observed: list[tuple[Any, int]] = []
        self._last: dict[str, dict] = {}
        self._updating = False
        self.quality = None

    # ------------------------------------------------------------------------------------------ nodes

    def _node(self, cls: str, name: str):
        for node in self._plan_nodes():
            if node.GetName() == name and node.IsA(cls):
                return node, False
        node = self.scene.AddNewNodeByClass(cls, name)
        node.SetAttribute(ATTR + "managed", "1")
        return node, True

    def plan_nodes(self) -> list:
        """Every node of the plan in the scene: planes, bands, disc points, the table."""
        return self._plan_nodes()

    def _plan_nodes(self) -> list:
        out = []
        for i in range(self.scene.GetNumberOfNodes()):
            n = self.scene.GetNthNode(i)
            if n.GetAttribute(ATTR + "managed") == "1":
                out.append(n)
        return out

    def planes(self) -> dict[str, Any]:
        return {n.GetName(): n for n in self._plan_nodes() if n.IsA("vtkMRMLMarkupsPlaneNode")}

    def table(self):
        return self._node("vtkMRMLTableNode", TABLE_NAME)[0]

    # ------------------------------------------------------------------------------------------ loading

    def load_plan(self, plan: dict[str, Any], *, overwrite_manual: bool = False) -> dict[str, str]:
        """Create or update every plane and band; returns name -> what happened ('created', 'updated', 'kept manual')."""
        self.quality = plan["quality"]
        # Kept in the scene, so a plan reopened from a scene or .mrb has its quality back (`adopt_scene`).
        self.table().SetAttribute(ATTR + "quality", json.dumps(self.quality))
        report = {}
        self._updating = True
        try:
            for disc in plan["discs"]:
                g = disc["slice_group"]
                # Each disc's plane shows its own quality (a plan-wide colour hid which disc to check).
                review = disc.get("needs_review", plan["quality"]["needs_review"])
                colour = AI_CHECK if review else AI_GOOD
                quality = disc.get("quality", plan["quality"]["quality_factor"])
                report[f"{disc['label']} axial"] = self._place_plane(
                    f"{disc['label']} axial",
                    "axial",
                    disc["label"],
                    disc["scan_center_lps"],
                    disc["normal_lps"],
                    g["x_axis_lps"],
                    g["fov_mm"],
                    {"n_slices": g["n_slices"], "thickness_mm": g["thickness_mm"], "gap_mm": g["gap_mm"]},
                    colour,
                    overwrite_manual,
                    quality,
                )
            for key in ("sagittal", "coronal"):
                slab = plan[key]
                report[key] = self._place_plane(
                    key,
                    key,
                    "",
                    slab["center_lps"],
                    slab["normal_lps"],
                    slab["x_axis_lps"],
                    slab["fov_mm"],
                    {"n_slices": slab["n_slices"], "thickness_mm": slab["thickness_mm"], "gap_mm": slab["gap_mm"]},
                    SLAB,
                    overwrite_manual,
                    plan["quality"]["quality_factor"],
                )
            for band in plan["saturation_bands"]:
                report[band["name"]] = self._place_band(band, overwrite_manual)
            self._disc_fiducials(plan)
        finally:
            self._updating = False
        self.update_table()
        return report

    def _place_plane(
        self, name, role, level, center, normal, x_axis, fov, protocol, colour, overwrite_manual, quality
    ) -> str:
        node, created = self._node("vtkMRMLMarkupsPlaneNode", name)
        ai = {
            "center": list(map(float, center)),
            "normal": list(map(float, normal)),
            "x_axis": list(map(float, x_axis)),
            "size": list(map(float, fov)),
        }
        node.SetAttribute(ATTR + "role", role)
        node.SetAttribute(ATTR + "level", level)
        node.SetAttribute(ATTR + "ai", json.dumps(ai))
        node.SetAttribute(ATTR + "protocol", json.dumps(protocol))
        node.SetAttribute(ATTR + "quality", f"{float(quality):.4f}")
        # Kept with the node so a reset restores it and the legend reads it, also for an edited plane.
        node.SetAttribute(ATTR + "ai_colour", json.dumps(list(map(float, colour))))
        if not created and node.GetAttribute(ATTR + "source") == "manual" and not overwrite_manual:
            return "kept manual"
        set_plane_lps(node, center, normal, x_axis, fov)
        node.SetAttribute(ATTR + "source", "ai")
        display = node.GetDisplayNode()
        if display is None:
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
        if display is not None:
            display.SetSelectedColor(*colour)
            display.SetColor(*colour)
            display.SetHandlesInteractive(True)
            display.SetTranslationHandleVisibility(True)
            display.SetRotationHandleVisibility(True)
        self._observe(node)
        self._last[name] = plane_geometry_lps(node)
        return "created" if created else "updated"

    def _place_band(self, band: dict, overwrite_manual: bool) -> str:
        node, created = self._node("vtkMRMLMarkupsROINode", band["name"])
        if not created and node.GetAttribute(ATTR + "source") == "manual" and not overwrite_manual:
            return "kept manual"
        n = np.asarray(band["normal_lps"], dtype=float)
        x = np.asarray(band["x_axis_lps"], dtype=float)
        y = np.cross(n, x)
        import vtk

        m = vtk.vtkMatrix4x4()
        for col, axis in enumerate((x, y, n)):
            for row, val in enumerate(lps_to_ras(axis)):
                m.SetElement(row, col, float(val))
        for row, val in enumerate(lps_to_ras(band["center_lps"])):
            m.SetElement(row, 3, float(val))
        # Size first, then the pose: SetCenter after the pose would move the band back to the origin.
        node.SetSize(*[float(s) for s in band["size_mm"]])
        node.SetAndObserveObjectToNodeMatrix(m)
        node.SetAttribute(ATTR + "role", "band")
        node.SetAttribute(ATTR + "source", "ai")
        node.SetAttribute(ATTR + "ai", json.dumps(band))
        self._observe(node)
        self._last[band["name"]] = _geometry(node)
        return "created" if created else "updated"

    def adopt_scene(self) -> int:
        """Make the plan nodes already in the scene live (a scene or .mrb reopened, or a re-created module):
        edits of their planes and bands are tracked again and the table rebuilt, without running the AI.
        Returns how many nodes are tracked."""
        nodes = [n for n in self._plan_nodes() if n.IsA("vtkMRMLMarkupsPlaneNode") or n.IsA("vtkMRMLMarkupsROINode")]
        if not nodes:
            return 0  # no plan in the scene: nothing made, not even the table
        quality = self.table().GetAttribute(ATTR + "quality")
        if quality:
            self.quality = json.loads(quality)
        for node in nodes:
            self._observe(node)
            self._last[node.GetName()] = _geometry(node)
        self.update_table()
        return len(nodes)

    def _disc_fiducials(self, plan: dict) -> None:
        node, _ = self._node("vtkMRMLMarkupsFiducialNode", "Disc labels")
        node.RemoveAllControlPoints()
        for disc in plan["discs"]:
            i = node.AddControlPoint(*lps_to_ras(disc["centroid_lps"]))
            node.SetNthControlPointLabel(i, disc["label"])
        node.SetLocked(True)

    # ------------------------------------------------------------------------------------------ edits

    def _observe(self, node) -> None:
        self._forget_removed()
        if any(seen is node for seen, _ in self._observed):
            return
        tag = node.AddObserver("ModifiedEvent", self._on_modified)
        self._observed.append((node, tag))

    def _forget_removed(self) -> None:
        """Stop observing nodes no longer in the scene (a closed scene, a deleted plane)."""
        keep = []
        for node, tag in self._observed:
            if node.GetScene() is self.scene and self.scene.IsNodePresent(node):
                keep.append((node, tag))
            else:
                node.RemoveObserver(tag)
                self._last.pop(node.GetName(), None)
        self._observed = keep

    def cleanup(self) -> None:
        """Remove every observer this logic added (the module calls it when it is closed)."""
        for node, tag in self._observed:
            node.RemoveObserver(tag)
        self._observed = []
        self._last.clear()

    def _on_modified(self, node, _event=None) -> None:
        if self._updating:
            return
        name = node.GetName()
        geo = _geometry(node)  # moved, tilted, rotated in its own plane or resized
        last = self._last.get(name)
        if last is not None and _same(geo, last):
            return  # a display change, not a geometry change
        self._last[name] = geo
        if node.GetAttribute(ATTR + "source") != "manual":
            node.SetAttribute(ATTR + "source", "manual")
            display = node.GetDisplayNode()
            if display is not None:
                display.SetSelectedColor(*MANUAL)
        self.update_table()

    def reset_to_ai(self, name: str) -> None:
        band = next((n for n in self._plan_nodes() if n.GetName() == name and n.IsA("vtkMRMLMarkupsROINode")), None)
        if band is not None:
            self._updating = True
            try:
                self._place_band(json.loads(band.GetAttribute(ATTR + "ai")), overwrite_manual=True)
            finally:
                self._updating = False
            return
        node = self.planes()[name]
        ai = json.loads(node.GetAttribute(ATTR + "ai"))
        self._updating = True
        try:
            set_plane_lps(node, ai["center"], ai["normal"], ai["x_axis"], ai["size"])
            node.SetAttribute(ATTR + "source", "ai")
            colour = node.GetAttribute(ATTR + "ai_colour")
            display = node.GetDisplayNode()
            if colour and display is not None:  # back to the AI's colour: it no longer shows as edited
                display.SetSelectedColor(*json.loads(colour))
            self._last[name] = plane_geometry_lps(node)
        finally:
            self._updating = False
        self.update_table()

    def current_plan_planes(self) -> dict[str, dict]:
        """Name -> current (possibly edited) geometry in LPS, e.g. for reslicing along edited planes."""
        out = {}
        for name, node in self.planes().items():
            geo = plane_geometry_lps(node)
            out[name] = {
                **{k: v.tolist() for k, v in geo.items()},
                "source": node.GetAttribute(ATTR + "source"),
                "protocol": json.loads(node.GetAttribute(ATTR + "protocol") or "{}"),
                "quality": node.GetAttribute(ATTR + "quality"),
                "ai_colour": json.loads(node.GetAttribute(ATTR + "ai_colour") or "[]"),
            }
        return out

    # ------------------------------------------------------------------------------------------ table

    def update_table(self) -> None:
        table_node = self.table()
        t = table_node.GetTable()
        t.Initialize()
        cols = string_columns(t, COLUMNS)
        qf = "" if self.quality is None else f"{self.quality['quality_factor']:.2f}"
        for name, geo in self.current_plan_planes().items():
            quality = f"{float(geo['quality']):.2f}" if geo["quality"] else qf
            manual = geo["source"] == "manual"
            shown = colour_word(MANUAL if manual else geo["ai_colour"])
            angle = float(np.degrees(np.arccos(np.clip(abs(geo["normal"][2]), -1, 1))))
            values = (
                name,
                geo["source"] or "ai",
                _fmt(geo["center"]),
                " ".join(f"{x:.3f}" for x in geo["normal"]),
                f"{angle:.1f}",
                str(geo["protocol"].get("n_slices", "")),
                str(geo["protocol"].get("thickness_mm", "")),
                quality,
                f"{shown} ({'edited' if manual else 'AI, check' if shown == 'red' else 'AI'})" if shown else "",
            )
            for arr, v in zip(cols, values):
                arr.InsertNextValue(v)
        t.Modified()
        table_node.Modified()

    def table_rows(self) -> list[dict[str, str]]:
        t = self.table().GetTable()
        return [
            {t.GetColumnName(c): t.GetValue(r, c).ToString() for c in range(t.GetNumberOfColumns())}
            for r in range(t.GetNumberOfRows())
        ]


def node_center_lps(node) -> np.ndarray:
    c = [0.0] * 3
    node.GetCenterWorld(c)
    return ras_to_lps(c)
