"""MRML logic: agreement of two readers (or a reader and the AI) as Slicer tables and plot charts.

Inside Slicer there is no matplotlib, and a picture loaded as a volume cannot be read off; a plot chart node is
live (hover shows each level's values) and the table sorts. Per measurement: one table of (level, mean, difference)
and one chart with the points, the bias and the 95 % limits of agreement (Bland & Altman, Lancet 1986); one summary
table of bias, limits, mean absolute difference and ICC(2,1) (agreement.py) for all measurements. Re-running a
comparison updates the nodes it made before (same names) instead of adding copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from SpineLocalizerLib.scene import string_columns
from SpineLocalizerLib.scene.volumes import add_rows_table, generated_node

from ..agreement import agreement_table, pair_rows

SUMMARY_COLUMNS = ["measurement", "n", "bias", "sd", "loa_low", "loa_high", "mad", "icc_2_1"]


def _points_table(scene, name: str, levels: list[str], mean: np.ndarray, diff: np.ndarray, lines: dict):
    """Table of the points (level, mean, difference) and, in the same rows, the bias and limits at each mean so
    that each horizontal line is a series of the table (a chart plots table columns)."""
    import vtk

    node = generated_node(scene, "vtkMRMLTableNode", name)
    table = node.GetTable()
    table.Initialize()
    (level_col,) = string_columns(table, ["level"])
    numeric = {}
    for col in ("mean", "difference", *lines):
        arr = vtk.vtkDoubleArray()
        arr.SetName(col)
        table.AddColumn(arr)
        numeric[col] = arr
    for i in np.argsort(mean):
        level_col.InsertNextValue(levels[i])
        numeric["mean"].InsertNextValue(float(mean[i]))
        numeric["difference"].InsertNextValue(float(diff[i]))
        for col, value in lines.items():
            numeric[col].InsertNextValue(float(value))
    table.Modified()
    return node


def _series(scene, name: str, table_node, y: str, *, scatter: bool, colour: tuple[float, float, float]):
    import slicer

    s = generated_node(scene, "vtkMRMLPlotSeriesNode", name)
    s.SetAndObserveTableNodeID(table_node.GetID())
    s.SetXColumnName("mean")
    s.SetYColumnName(y)
    s.SetLabelColumnName("level")
    s.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    if scatter:
        s.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
        s.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
    else:
        s.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        s.SetLineStyle(
            slicer.vtkMRMLPlotSeriesNode.LineStyleSolid if y == "bias" else slicer.vtkMRMLPlotSeriesNode.LineStyleDash
        )
    s.SetColor(*colour)
    return s


def add_agreement(
    scene, rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], label_a: str, label_b: str
) -> dict:
    """Summary table + one Bland-Altman chart per measurement the two sets share (difference = B - A).
    Returns {"summary": table node, "charts": {measurement: chart node}, "points": {measurement: table node}}."""
    summary = agreement_table(rows_a, rows_b)
    if not summary:
        raise ValueError(f"{label_a} and {label_b} share no numeric (level, measurement) pair: nothing to compare")
    title = f"Agreement {label_b} vs {label_a}"
    out: dict = {"summary": add_rows_table(scene, summary, title, SUMMARY_COLUMNS), "charts": {}, "points": {}}
    stats = {t["measurement"]: t for t in summary}
    for measurement, items in pair_rows(rows_a, rows_b).items():
        levels = [x[0] for x in items]
        a = np.array([x[1] for x in items])
        b = np.array([x[2] for x in items])
        t = stats[measurement]
        lines = {"bias": t["bias"]}
        if np.isfinite(t["sd"]):  # one pair has no spread: no limits to draw
            lines.update({"loa_low": t["loa_low"], "loa_high": t["loa_high"]})
        points = _points_table(scene, f"{title}: {measurement}", levels, (a + b) / 2, b - a, lines)
        chart = generated_node(scene, "vtkMRMLPlotChartNode", f"{title}: {measurement} (Bland-Altman)")
        chart.RemoveAllPlotSeriesNodeIDs()
        chart.AddAndObservePlotSeriesNodeID(
            _series(
                scene, f"{title}: {measurement} points", points, "difference", scatter=True, colour=(0.1, 0.4, 0.8)
            ).GetID()
        )
        for col in lines:
            colour = (0.0, 0.0, 0.0) if col == "bias" else (0.8, 0.1, 0.1)
            chart.AddAndObservePlotSeriesNodeID(
                _series(scene, f"{title}: {measurement} {col}", points, col, scatter=False, colour=colour).GetID()
            )
        chart.SetTitle(f"{measurement}: bias {t['bias']:.2f}, ICC {t['icc_2_1']:.2f}")
        chart.SetXAxisTitle(f"mean of {label_a} and {label_b}")
        chart.SetYAxisTitle(f"{label_b} - {label_a}")
        out["charts"][measurement] = chart
        out["points"][measurement] = points
    return out
