"""Plan markups files open in Slicer's own markups reader (slicer-core) with the right geometry, LPS <-> RAS."""

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is a pinned dependency; install requirements.txt")

from SpineLocalizerLib.scene import load_plan_markups, lps_to_ras, plane_geometry_lps, roi_geometry_lps, set_plane_lps  # noqa: E402


@pytest.fixture(scope="module")
def plan_folder(cli_plan):
    return cli_plan


def test_plane_and_band_files_load_in_slicer_with_plan_geometry(plan_folder):
    folder, plan = plan_folder
    scene = slicer.vtkMRMLScene()
    nodes = load_plan_markups(scene, folder)
    assert len(nodes) == len(plan["discs"]) + 3
    for disc in plan["discs"]:
        node = nodes[f"{disc['label']} axial"]
        assert node.IsA("vtkMRMLMarkupsPlaneNode")
        geo = plane_geometry_lps(node)
        assert np.allclose(geo["center"], disc["scan_center_lps"], atol=1e-6)
        assert np.allclose(geo["normal"], disc["normal_lps"], atol=1e-6)
        assert np.allclose(geo["x_axis"], disc["slice_group"]["x_axis_lps"], atol=1e-6)
        assert np.allclose(geo["size"], disc["slice_group"]["fov_mm"])
        # In the RAS scene the same point has its first two coordinates negated.
        ras = [0.0] * 3
        node.GetCenterWorld(ras)
        assert np.allclose(ras, lps_to_ras(disc["scan_center_lps"]))
    for key in ("sagittal", "coronal"):
        geo = plane_geometry_lps(nodes[key])
        assert np.allclose(geo["center"], plan[key]["center_lps"], atol=1e-6)
        assert np.allclose(geo["normal"], plan[key]["normal_lps"], atol=1e-6)
        assert np.allclose(geo["size"], plan[key]["fov_mm"])
    band = plan["saturation_bands"][0]
    roi = roi_geometry_lps(nodes[band["name"]])
    assert np.allclose(roi["center"], band["center_lps"], atol=1e-6)
    assert np.allclose(roi["axes"][:, 2], band["normal_lps"], atol=1e-6)  # thin axis along the band normal
    assert np.allclose(roi["size"], band["size_mm"])
    assert roi["size"][2] == band["thickness_mm"]


def test_a_plane_set_in_the_scene_is_written_back_in_lps(plan_folder, tmp_path):
    _, plan = plan_folder
    disc = plan["discs"][2]
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", "edited")
    moved = np.asarray(disc["scan_center_lps"]) + np.array([3.0, -2.0, 1.5])  # a user's drag, in LPS
    set_plane_lps(node, moved, disc["normal_lps"], disc["slice_group"]["x_axis_lps"], (150.0, 120.0))
    storage = slicer.vtkMRMLMarkupsPlaneJsonStorageNode()
    scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    path = tmp_path / "edited.mrk.json"
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    written = json.loads(path.read_text())["markups"][0]
    assert written["coordinateSystem"] == "LPS"
    assert np.allclose(written["center"], moved, atol=1e-6)
    assert np.allclose(written["normal"], disc["normal_lps"], atol=1e-6)
    # ... and reading the file back gives the same LPS plane.
    scene2 = slicer.vtkMRMLScene()
    from SpineLocalizerLib.scene import markups_logic

    back = scene2.GetNodeByID(markups_logic(scene2).LoadMarkups(str(path)))
    geo = plane_geometry_lps(back)
    assert np.allclose(geo["center"], moved, atol=1e-6)
    assert np.allclose(geo["normal"], disc["normal_lps"], atol=1e-6)
