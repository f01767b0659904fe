"""Reader worksheet and volume/slice helpers on a real slicer-core scene."""

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is a pinned dependency; install requirements.txt")

from SpineLocalizerLib.scene import set_plane_lps  # noqa: E402
from SpineLocalizerLib.scene.volumes import (  # noqa: E402
    add_volume,
    point_slice_at_plane,
    point_views_at_plane,
    volume_from_node,
)
from SpineLocalizerLib.volume_io import Volume  # noqa: E402
from SpineMeasureLib.landmark_mode import measure_landmarks  # noqa: E402
from SpineMeasureLib.scene.worksheet import create_worksheet, place_point, read_worksheet, set_contour  # noqa: E402


def test_worksheet_points_and_contours_give_reader_measurements():
    scene = slicer.vtkMRMLScene()
    sheet = create_worksheet(scene, "L4-L5", "R1")
    place_point(sheet["points"], "disc_superior", [1.0, 2.0, 5.0])
    place_point(sheet["points"], "disc_inferior", [1.0, 2.0, -4.0])
    place_point(sheet["points"], "sac_anterior", [0.0, 11.0, 0.0])
    place_point(sheet["points"], "sac_posterior", [0.0, 21.5, 0.0])
    set_contour(sheet["curves"]["dural_sac"], [[-5, 11, 0], [5, 11, 0], [5, 21, 0], [-5, 21, 0]])
    psoas = create_worksheet(scene, "L3", "R1")
    set_contour(psoas["curves"]["psoas_left"], [[30, 0, 0], [50, 0, 0], [50, 30, 0], [30, 30, 0]])
    landmarks = read_worksheet(scene, "R1")
    assert landmarks["levels"]["L4-L5"]["points"]["disc_superior"] == pytest.approx([1.0, 2.0, 5.0])
    rows = {(r.level, r.measurement): r for r in measure_landmarks(landmarks)}
    assert rows[("L4-L5", "disc_height_mm")].value == pytest.approx(9.0)
    assert rows[("L4-L5", "dural_sac_ap_mm")].value == pytest.approx(10.5)
    assert rows[("L4-L5", "canal_area_mm2")].value == pytest.approx(100.0)
    assert rows[("L3", "psoas_area_left_mm2")].value == pytest.approx(600.0)
    assert rows[("L4-L5", "disc_height_mm")].method == "reader:R1"
    assert read_worksheet(scene, "R2")["levels"] == {}  # readers do not see each other's points


def test_volume_round_trip_through_a_node_keeps_lps_geometry():
    scene = slicer.vtkMRMLScene()
    rng = np.random.default_rng(0)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))
    vol = Volume(
        rng.integers(0, 100, size=(7, 9, 11)).astype(np.int16), (0.8, 1.2, 3.0), np.array([10.0, -20.0, 30.0]), rot
    )
    back = volume_from_node(add_volume(scene, vol, "v"))
    assert np.array_equal(back.array, vol.array)
    assert (
        np.allclose(back.spacing, vol.spacing)
        and np.allclose(back.origin, vol.origin)
        and np.allclose(back.direction, vol.direction)
    )


def _view(slice_node):
    m = slice_node.GetSliceToRAS()
    cols = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(3)])
    return cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3]


@pytest.mark.parametrize(
    "role, normal_lps, x_axis_lps, screen_x_ras, screen_y_ras",
    [
        # An axial slice group tilted 11 deg, its plane's own x axis pointing to the patient's right: the view
        # still shows the patient's left on the right and anterior up (it showed them upside down).
        ("axial", [0.0, 0.2, 1.0], [-1.0, 0.0, 0.0], [-1, 0, 0], [0, 1, 0]),
        # A coronal slab whose plane axes run right-to-left: left on the right, head up (it was mirrored).
        ("coronal", [0.0, 1.0, 0.1], [-1.0, 0.0, 0.0], [-1, 0, 0], [0, 0, 1]),
        # The sagittal slab: anterior on the left, head up, as Slicer's sagittal view.
        ("sagittal", [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0, -1, 0], [0, 0, 1]),
    ],
)
def test_show_slices_shows_each_role_as_slicer_shows_that_view(
    role, normal_lps, x_axis_lps, screen_x_ras, screen_y_ras
):
    scene = slicer.vtkMRMLScene()
    plane = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", "p")
    plane.SetAttribute("SpinePlanner.role", role)
    set_plane_lps(plane, [5.0, 6.0, 7.0], normal_lps, x_axis_lps, (100, 100))
    slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    point_slice_at_plane(slice_node, plane)
    x, y, normal, centre = _view(slice_node)
    n_ras = np.array([-normal_lps[0], -normal_lps[1], normal_lps[2]]) / np.linalg.norm(normal_lps)
    assert abs(normal @ n_ras) == pytest.approx(1.0, abs=1e-6)  # the view lies in the plane
    assert np.allclose(centre, [-5.0, -6.0, 7.0])
    assert x @ screen_x_ras > 0.95 and y @ screen_y_ras > 0.95, (x, y)
    assert abs(x @ y) < 1e-9 and abs(x @ normal) < 1e-9  # an orthonormal frame, no shear


@pytest.mark.parametrize("role", ["axial", "sagittal", "coronal"])
def test_show_slices_moves_all_three_views_to_the_plane(role):
    """The view of the plane's role lies in it; the two others contain its normal (the plane is a line across
    them) and pass through its centre, each still near its own orientation."""
    scene = slicer.vtkMRMLScene()
    plane = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", "p")
    plane.SetAttribute("SpinePlanner.role", role)
    normal_lps = {"axial": [0.0, 0.25, 1.0], "sagittal": [1.0, 0.1, 0.0], "coronal": [0.0, 1.0, 0.15]}[role]
    x_lps = {"axial": [1.0, 0.0, 0.0], "sagittal": [0.0, 1.0, 0.0], "coronal": [1.0, 0.0, 0.0]}[role]
    set_plane_lps(plane, [5.0, 6.0, 7.0], normal_lps, x_lps, (100, 100))
    views = {r: scene.AddNewNodeByClass("vtkMRMLSliceNode") for r in ("axial", "sagittal", "coronal")}
    point_views_at_plane(views, plane)
    n_ras = np.array([-normal_lps[0], -normal_lps[1], normal_lps[2]]) / np.linalg.norm(normal_lps)
    presets = {"axial": [0, 0, 1], "sagittal": [-1, 0, 0], "coronal": [0, 1, 0]}
    for r, node in views.items():
        x, y, normal, centre = _view(node)
        assert np.allclose(centre, [-5.0, -6.0, 7.0])
        assert abs(x @ y) < 1e-9 and abs(x @ normal) < 1e-9
        if r == role:
            assert abs(normal @ n_ras) == pytest.approx(1.0, abs=1e-6)
        else:
            assert abs(normal @ n_ras) < 1e-9  # the plane's normal lies in this view
            assert abs(normal @ np.asarray(presets[r], dtype=float)) > 0.95  # still this view's orientation


def test_results_become_a_table_and_inspectable_markups():
    from SpineMeasureLib.catalogue import Thresholds
    from SpineMeasureLib.results import make_row
    from SpineMeasureLib.scene.results import add_results

    scene = slicer.vtkMRMLScene()
    rows = [
        make_row(
            "L4-L5",
            "canal_diameter_mm",
            12.0,
            "auto",
            {"disc_posterior_mid": [0, 10, 0], "posterior_arch": [0, 22, 0]},
            Thresholds(),
        ),
        make_row(
            "L4-L5",
            "lateral_recess_depth_left_mm",
            2.5,
            "auto",
            {"sap_tip_left": [10, 14, 0], "floor_left_a": [5, 10, 0], "floor_left_b": [15, 10, 0]},
            Thresholds(),
        ),
    ]
    out = add_results(scene, rows, "Measurements (auto)")
    assert out["table"].GetTable().GetNumberOfRows() == 2
    line = out["lines"][0]
    assert line.GetLineLengthWorld() == pytest.approx(12.0)
    assert out["points"]["L4-L5"].GetNumberOfControlPoints() == 3
    table = out["table"].GetTable()
    flags = table.GetColumnByName("flags")
    assert flags is not None, "the table has no flags column"
    assert "lateral recess stenosis" in flags.GetValue(1)

    # Measuring again replaces the table and markups of the first time (no copies), a reader's own markups stay,
    # and every result sits in its folder.
    from SpineLocalizerLib.scene.folders import folder_path

    own = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", line.GetName())
    n_nodes = scene.GetNumberOfNodes()
    again = add_results(scene, rows[:1], "Measurements (auto)")
    assert again["table"] is out["table"] and again["table"].GetTable().GetNumberOfRows() == 1
    assert scene.GetNumberOfNodes() == n_nodes - 1  # the second call has no point list (only the line)
    assert scene.IsNodePresent(own) and not scene.IsNodePresent(line)
    assert {tuple(folder_path(scene, n)) for n in [again["table"], *again["lines"]]} == {
        ("SpinePlanner", "Measurements (auto)")
    }


def test_a_linear_transform_above_a_volume_is_part_of_its_geometry_and_a_warp_is_refused():
    import vtk

    scene = slicer.vtkMRMLScene()
    vol = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), (1.0, 1.0, 2.0), np.array([1.0, 2.0, 3.0]), np.eye(3))
    node = add_volume(scene, vol, "localizer")
    moved = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "alignment")
    m = vtk.vtkMatrix4x4()
    c, s = np.cos(np.radians(10.0)), np.sin(np.radians(10.0))
    for r, row in enumerate([[c, -s, 0, 10.0], [s, c, 0, 0.0], [0, 0, 1, -4.0]]):
        for col, v in enumerate(row):
            m.SetElement(r, col, v)
    moved.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(moved.GetID())
    back = volume_from_node(node)
    # The origin, LPS (1, 2, 3) = RAS (-1, -2, 3), goes through the RAS transform and back to LPS.
    ras = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ [-1.0, -2.0, 3.0] + [10.0, 0.0, -4.0]
    assert np.allclose(back.origin, [-ras[0], -ras[1], ras[2]])
    assert np.allclose(back.spacing, vol.spacing) and np.allclose(np.linalg.det(back.direction), 1.0)
    assert np.array_equal(back.array, vol.array)
    warp = scene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    tps = vtk.vtkThinPlateSplineTransform()
    src, dst = vtk.vtkPoints(), vtk.vtkPoints()
    for p in ([0, 0, 0], [50, 0, 0], [0, 50, 0], [0, 0, 50]):
        src.InsertNextPoint(*p)
        dst.InsertNextPoint(p[0] + 3.0, p[1], p[2])
    tps.SetSourceLandmarks(src)
    tps.SetTargetLandmarks(dst)
    warp.SetAndObserveTransformToParent(tps)
    node.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(ValueError, match="Harden transform"):
        volume_from_node(node)
