"""Reader agreement in the scene (SpineMeasureLib/scene/agreement_plots.py) on a real slicer-core scene: a summary
table with the statistics of agreement.py, a Bland-Altman chart per measurement whose series are the points, the
bias and the limits, and a second comparison that updates the nodes instead of adding copies."""

from __future__ import annotations

import numpy as np
import pytest
from SpineMeasureLib.agreement import bland_altman

slicer = pytest.importorskip("slicer", reason="slicer-core is a pinned dependency; install requirements.txt")
from SpineMeasureLib.scene.agreement_plots import add_agreement  # noqa: E402

LEVELS = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]


def _rows(values, measurement="disc_height_mm"):
    return [{"level": lv, "measurement": measurement, "value": v} for lv, v in zip(LEVELS, values)]


def _column(table_node, name):
    table = table_node.GetTable()
    col = table.GetColumnByName(name)
    assert col is not None, name
    return [col.GetValue(i) for i in range(table.GetNumberOfRows())]


def test_two_readers_become_a_summary_table_and_a_bland_altman_chart():
    a = [8.0, 9.5, 10.0, 11.0, 9.0]
    b = [8.4, 9.1, 10.8, 11.5, 9.9]
    rows_a = (
        _rows(a)
        + _rows([20.0, 18.0], "canal_area_mm2")
        + [{"level": "L1-L2", "measurement": "facet_angle_left_deg", "value": "not measurable"}]
    )
    rows_b = _rows(b) + _rows([21.0, 18.5], "canal_area_mm2")
    scene = slicer.vtkMRMLScene()
    out = add_agreement(scene, rows_a, rows_b, "R1", "R2")
    assert sorted(out["charts"]) == ["canal_area_mm2", "disc_height_mm"]  # the text value pairs with nothing
    expected = bland_altman(np.array(a), np.array(b))
    summary = dict(zip(_column(out["summary"], "measurement"), _column(out["summary"], "bias")))
    assert float(summary["disc_height_mm"]) == pytest.approx(expected["bias"], abs=1e-9)
    chart = out["charts"]["disc_height_mm"]
    assert chart.GetNumberOfPlotSeriesNodes() == 4  # points, bias, lower and upper limits
    points = out["points"]["disc_height_mm"]
    means, diffs = _column(points, "mean"), _column(points, "difference")
    assert means == sorted(means) and len(means) == 5
    assert sorted(diffs) == pytest.approx(sorted(np.subtract(b, a)))
    assert _column(points, "loa_high")[0] == pytest.approx(expected["loa_high"])
    first = chart.GetNthPlotSeriesNode(0)
    assert first.GetYColumnName() == "difference" and first.GetLabelColumnName() == "level"
    assert "R2 - R1" in chart.GetYAxisTitle()


def test_comparing_again_updates_the_nodes_and_one_pair_draws_no_limits():
    scene = slicer.vtkMRMLScene()
    add_agreement(scene, _rows([8.0, 9.0, 10.0]), _rows([8.5, 9.0, 10.5]), "R1", "AI")
    counts = {
        c: scene.GetNumberOfNodesByClass(c)
        for c in ("vtkMRMLPlotChartNode", "vtkMRMLPlotSeriesNode", "vtkMRMLTableNode")
    }
    out = add_agreement(scene, _rows([8.0, 9.0, 10.0]), _rows([9.0, 9.5, 10.0]), "R1", "AI")
    assert {c: scene.GetNumberOfNodesByClass(c) for c in counts} == counts
    assert float(_column(out["summary"], "bias")[0]) == pytest.approx(0.5)
    single = add_agreement(scene, _rows([8.0]), _rows([8.5]), "R1", "R3")
    assert single["charts"]["disc_height_mm"].GetNumberOfPlotSeriesNodes() == 2  # points and bias only
    with pytest.raises(ValueError, match="share no numeric"):
        add_agreement(scene, _rows([8.0]), _rows([9.0], "canal_area_mm2"), "R1", "R2")
