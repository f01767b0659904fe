"""MRML logic on a real slicer-core scene: plan nodes, live table, manual edits kept, teaching, .mrb round trip."""

import copy
import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is a pinned dependency; install requirements.txt")

from SpineLocalizerLib.planning.plan import build_plan  # noqa: E402
from SpineLocalizerLib.scene import load_mrb, lps_to_ras, plane_geometry_lps, save_mrb, set_plane_lps  # noqa: E402
from SpineLocalizerLib.scene.plan import PlanSceneLogic  # noqa: E402
from SpineLocalizerLib.scene.teaching import TeachingSceneLogic  # noqa: E402
from SpineLocalizerLib.volume_io import read_volume  # noqa: E402


@pytest.fixture(scope="module")
def plan(phantoms):
    folder, truth = phantoms.get(32, lumbar_count=5)
    plan, _ = build_plan(read_volume(folder / truth["files"]["disc_labels"]), lumbar_count=5)
    return plan


def test_plan_nodes_carry_the_plan_geometry_in_ras(plan):
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    report = logic.load_plan(plan)
    assert set(report.values()) == {"created"}
    planes = logic.planes()
    assert len(planes) == len(plan["discs"]) + 2
    disc = plan["discs"][3]
    node = planes[f"{disc['label']} axial"]
    ras = [0.0] * 3
    node.GetCenterWorld(ras)
    assert np.allclose(ras, lps_to_ras(disc["scan_center_lps"]))
    assert np.allclose(node.GetSize()[:2], disc["slice_group"]["fov_mm"])
    band = scene.GetFirstNodeByName(plan["saturation_bands"][0]["name"])
    assert band.IsA("vtkMRMLMarkupsROINode") and band.GetSize()[2] == plan["saturation_bands"][0]["thickness_mm"]
    # The band sits where the plan puts it (not at the scene origin) with its thin axis along its normal.
    centre = [0.0] * 3
    band.GetCenterWorld(centre)
    assert np.allclose(centre, lps_to_ras(plan["saturation_bands"][0]["center_lps"]), atol=1e-3)
    to_world = band.GetObjectToWorldMatrix()
    thin_axis = [to_world.GetElement(r, 2) for r in range(3)]
    assert np.allclose(thin_axis, lps_to_ras(plan["saturation_bands"][0]["normal_lps"]), atol=1e-6)
    rows = logic.table_rows()
    assert len(rows) == len(planes) and {r["Source"] for r in rows} == {"ai"}
    assert scene.GetFirstNodeByName("Disc labels").GetNumberOfControlPoints() == len(plan["discs"])


def test_an_edit_updates_the_table_and_survives_a_rerun_until_reset(plan):
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    logic.load_plan(plan)
    disc = plan["discs"][2]
    name = f"{disc['label']} axial"
    node = logic.planes()[name]
    moved = np.asarray(disc["scan_center_lps"]) + [0.0, 0.0, 4.0]
    set_plane_lps(
        node, moved, disc["normal_lps"], disc["slice_group"]["x_axis_lps"], disc["slice_group"]["fov_mm"]
    )  # the user's drag
    row = {r["Plane"]: r for r in logic.table_rows()}[name]
    assert row["Source"] == "manual"
    assert row["Center LPS (mm)"] == " ".join(f"{x:.1f}" for x in moved)
    # Re-running the AI (here: a plan shifted by 2 mm) leaves the manual plane alone and updates the others.
    rerun = copy.deepcopy(plan)
    for d in rerun["discs"]:
        d["scan_center_lps"] = (np.asarray(d["scan_center_lps"]) + [2.0, 0, 0]).tolist()
    report = logic.load_plan(rerun)
    assert report[name] == "kept manual"
    assert all(v == "updated" for k, v in report.items() if k != name)
    assert np.allclose(plane_geometry_lps(node)["center"], moved)
    other = logic.planes()[f"{plan['discs'][0]['label']} axial"]
    assert np.allclose(plane_geometry_lps(other)["center"], rerun["discs"][0]["scan_center_lps"])
    assert node.GetDisplayNode().GetSelectedColor() != other.GetDisplayNode().GetSelectedColor()  # shown as edited
    logic.reset_to_ai(name)
    assert np.allclose(plane_geometry_lps(node)["center"], rerun["discs"][2]["scan_center_lps"])
    assert {r["Plane"]: r for r in logic.table_rows()}[name]["Source"] == "ai"
    assert node.GetDisplayNode().GetSelectedColor() == other.GetDisplayNode().GetSelectedColor()  # AI colour back
    logic.load_plan(plan, overwrite_manual=True)
    assert np.allclose(plane_geometry_lps(node)["center"], disc["scan_center_lps"])


def test_edits_are_tracked_after_the_scene_is_closed_and_filled_again(plan):
    # File > Close Scene clears the scene; the next plan's nodes get the same IDs as the old ones.
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    logic.load_plan(plan)
    old_ids = {name: node.GetID() for name, node in logic.planes().items()}
    scene.Clear(0)
    logic.load_plan(plan)
    disc = plan["discs"][2]
    name = f"{disc['label']} axial"
    node = logic.planes()[name]
    assert node.GetID() == old_ids[name]  # the ID was reused
    moved = np.asarray(disc["scan_center_lps"]) + [0.0, 0.0, 3.0]
    set_plane_lps(node, moved, disc["normal_lps"], disc["slice_group"]["x_axis_lps"], disc["slice_group"]["fov_mm"])
    assert {r["Plane"]: r for r in logic.table_rows()}[name]["Source"] == "manual"
    assert logic.load_plan(plan)[name] == "kept manual"
    assert np.allclose(plane_geometry_lps(node)["center"], moved)
    logic.cleanup()
    assert all(not node.HasObserver("ModifiedEvent") for node in logic.planes().values())


@pytest.mark.parametrize("edit", ["resize", "rotate in plane"])
def test_resizing_or_rotating_a_plane_in_its_own_plane_is_an_edit(plan, edit):
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    logic.load_plan(plan)
    disc = plan["discs"][1]
    name = f"{disc['label']} axial"
    node = logic.planes()[name]
    group = disc["slice_group"]
    x_axis, fov = np.asarray(group["x_axis_lps"]), list(group["fov_mm"])
    if edit == "resize":
        fov = [fov[0] + 40.0, fov[1]]
    else:  # 20 degrees about the normal: the centre and the normal stay
        n = np.asarray(disc["normal_lps"])
        angle = np.radians(20.0)
        x_axis = x_axis * np.cos(angle) + np.cross(n, x_axis) * np.sin(angle)
    set_plane_lps(node, disc["scan_center_lps"], disc["normal_lps"], x_axis, fov)
    assert {r["Plane"]: r for r in logic.table_rows()}[name]["Source"] == "manual"
    assert logic.load_plan(plan)[name] == "kept manual"


def test_teaching_refuses_an_unplaced_plane_and_logs_nothing(plan):
    scene = slicer.vtkMRMLScene()
    disc = plan["discs"][4]
    unplaced = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", "trainee")
    teach = TeachingSceneLogic(scene)
    reference = {"center": disc["scan_center_lps"], "normal": disc["normal_lps"], "posterior": disc["posterior_lps"]}
    with pytest.raises(ValueError, match="place the L4-L5 plane first"):
        teach.check(unplaced, reference, trainee="novice", level="L4-L5", reference_name="AI")
    assert teach.table().GetTable().GetNumberOfRows() == 0


def test_a_second_trainee_plane_is_the_one_checked():
    from SpineLocalizerLib.scene.teaching import latest_trainee_plane, trainee_plane_name

    scene = slicer.vtkMRMLScene()
    assert latest_trainee_plane(scene, "novice") is None
    first = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", trainee_plane_name("novice"))
    second = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", trainee_plane_name("novice"))
    scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", trainee_plane_name("expert"))
    assert latest_trainee_plane(scene, "novice") is second is not first


def test_teaching_scores_a_known_wrong_plane_and_logs_it(plan, tmp_path):
    scene = slicer.vtkMRMLScene()
    disc = plan["discs"][4]
    n, post = np.asarray(disc["normal_lps"]), np.asarray(disc["posterior_lps"])
    left = np.cross(post, n)
    tilt = np.deg2rad(6.0)
    wrong_n = np.cos(tilt) * n + np.sin(tilt) * post  # posterior edge lowered by 6 degrees
    trainee = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", "trainee")
    set_plane_lps(trainee, np.asarray(disc["scan_center_lps"]) + 7.0 * n, wrong_n, left, (200, 200))
    teach = TeachingSceneLogic(scene)
    score = teach.check(
        trainee,
        {"center": disc["scan_center_lps"], "normal": n, "posterior": post},
        trainee="novice",
        level=disc["label"],
        reference_name="AI",
    )
    assert score.offset_angle_deg == pytest.approx(6.0, abs=1e-3)
    assert score.center_distance_mm == pytest.approx(7.0, abs=1e-3)
    assert not score.passed
    assert "too steep" in score.advice and "too cranial by 7.0 mm" in score.advice
    good = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", "good")
    set_plane_lps(good, disc["scan_center_lps"], n, left, (200, 200))
    assert teach.check(
        good,
        {"center": disc["scan_center_lps"], "normal": n, "posterior": post},
        trainee="novice",
        level=disc["label"],
        reference_name="AI",
    ).passed
    teach.export_csv(tmp_path / "attempts.csv")
    text = (tmp_path / "attempts.csv").read_text()
    assert text.count("novice") == 2 and "too steep" in text


def test_scene_with_plan_round_trips_through_mrb(plan, tmp_path):
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    logic.load_plan(plan)
    path = tmp_path / "plan.mrb"
    save_mrb(scene, path)
    back = load_mrb(path, tmp_path / "cache")
    for name, node in logic.planes().items():
        other = back.GetFirstNodeByName(name)
        assert other is not None and other.GetAttribute("SpinePlanner.source") == "ai"
        a, b = plane_geometry_lps(node), plane_geometry_lps(other)
        assert np.allclose(a["center"], b["center"], atol=1e-4) and np.allclose(a["normal"], b["normal"], atol=1e-6)
    table = back.GetFirstNodeByName("Scan parameters")
    assert table.GetTable().GetNumberOfRows() == len(logic.planes())
    assert (
        json.loads(back.GetFirstNodeByName(f"{plan['discs'][0]['label']} axial").GetAttribute("SpinePlanner.ai"))[
            "size"
        ]
        == plan["discs"][0]["slice_group"]["fov_mm"]
    )


def test_axial_images_follow_the_edited_plane(plan, phantoms):
    from SpineLocalizerLib.scene.volumes import reslice_current_planes

    folder, truth = phantoms.get(32, lumbar_count=5)
    volume = read_volume(folder / truth["files"]["localizer"])
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    logic.load_plan(plan)
    disc = plan["discs"][1]
    name = f"{disc['label']} axial"
    tilted = np.asarray(disc["normal_lps"]) + 0.1 * np.asarray(disc["posterior_lps"])
    set_plane_lps(
        logic.planes()[name],
        disc["scan_center_lps"],
        tilted,
        disc["slice_group"]["x_axis_lps"],
        disc["slice_group"]["fov_mm"],
    )
    stacks = reslice_current_planes(logic, volume)
    assert set(stacks) == {f"{d['label']} axial" for d in plan["discs"]}
    stack = stacks[name]
    assert np.allclose(stack.direction[:, 2], tilted / np.linalg.norm(tilted), atol=1e-6)
    assert stack.array.shape[2] == disc["slice_group"]["n_slices"] and stack.array.any()


def test_running_again_updates_the_generated_nodes_instead_of_adding_copies():
    from SpineLocalizerLib.scene.volumes import add_disc_segmentation, add_rows_table, add_volume
    from SpineLocalizerLib.volume_io import Volume

    scene = slicer.vtkMRMLScene()
    users = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "L4-L5 axial images")  # the user's own node
    first = np.zeros((20, 20, 20), dtype=np.uint8)
    first[5:8, 5:15, 5:15] = 123  # L4-L5
    second = first.copy()
    second[12:15, 5:15, 5:15] = 122  # L3-L4 as well
    for labels, n_rows in ((first, 2), (second, 1)):
        volume = Volume(labels.astype(np.float32), (2.0, 2.0, 2.0), np.zeros(3), np.eye(3))
        add_volume(scene, volume, "L4-L5 axial images")
        seg = add_disc_segmentation(scene, Volume(labels, (2.0, 2.0, 2.0), np.zeros(3), np.eye(3)))
        add_rows_table(scene, [{"a": "1"}] * n_rows, "Scan parameters", ["a"])
    volumes = scene.GetNodesByClassByName("vtkMRMLScalarVolumeNode", "L4-L5 axial images")
    assert volumes.GetNumberOfItems() == 2 and scene.IsNodePresent(users)  # the user's, and one of ours
    assert scene.GetNodesByClassByName("vtkMRMLSegmentationNode", "Discs").GetNumberOfItems() == 1
    assert seg.GetSegmentation().GetNumberOfSegments() == 2  # the second run's discs only
    tables = scene.GetNodesByClassByName("vtkMRMLTableNode", "Scan parameters")
    assert tables.GetNumberOfItems() == 1 and tables.GetItemAsObject(0).GetTable().GetNumberOfRows() == 1


def test_teaching_hides_the_plan_from_the_trainee_until_the_check_and_restores_the_teacher_s_choice(plan):
    from SpineLocalizerLib.scene.teaching import hide_plan_from_trainee, reveal_plan, trainee_plane_name

    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    logic.load_plan(plan)
    planes = logic.planes()
    band = scene.GetFirstNodeByName(plan["saturation_bands"][0]["name"])
    teacher_hid = planes["coronal"]
    teacher_hid.GetDisplayNode().SetVisibility(False)  # the teacher had hidden the coronal slab
    assert hide_plan_from_trainee(scene) >= len(planes) + 1
    assert not any(n.GetDisplayNode().GetVisibility() for n in planes.values())
    assert not band.GetDisplayNode().GetVisibility()
    trainee = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", trainee_plane_name("novice"))
    trainee.CreateDefaultDisplayNodes()
    hide_plan_from_trainee(scene)  # a second "New trainee plane" hides nothing of the trainee's own
    assert trainee.GetDisplayNode().GetVisibility()
    reveal_plan(scene)
    assert planes["sagittal"].GetDisplayNode().GetVisibility() and band.GetDisplayNode().GetVisibility()
    assert not teacher_hid.GetDisplayNode().GetVisibility()  # still the teacher's choice


def test_a_plan_reopened_from_an_mrb_is_live_and_its_bands_are_edits_too(plan, tmp_path):
    scene = slicer.vtkMRMLScene()
    PlanSceneLogic(scene).load_plan(plan)
    path = tmp_path / "plan.mrb"
    save_mrb(scene, path)
    back = load_mrb(path, tmp_path / "cache")
    logic = PlanSceneLogic(back)  # a fresh module on the reopened scene: no AI run
    assert logic.adopt_scene() == len(plan["discs"]) + 2 + len(plan["saturation_bands"])
    assert logic.quality == plan["quality"]
    disc = plan["discs"][2]
    name = f"{disc['label']} axial"
    moved = np.asarray(disc["scan_center_lps"]) + [0.0, 0.0, 4.0]
    set_plane_lps(
        logic.planes()[name],
        moved,
        disc["normal_lps"],
        disc["slice_group"]["x_axis_lps"],
        disc["slice_group"]["fov_mm"],
    )
    assert {r["Plane"]: r for r in logic.table_rows()}[name]["Source"] == "manual"
    # A saturation band dragged 10 mm is an edit: kept by a re-run, restored by "Reset to AI".
    band_plan = plan["saturation_bands"][0]
    band = back.GetFirstNodeByName(band_plan["name"])
    m = band.GetObjectToNodeMatrix()
    m.SetElement(0, 3, m.GetElement(0, 3) + 10.0)
    band.SetAndObserveObjectToNodeMatrix(m)
    assert band.GetAttribute("SpinePlanner.source") == "manual"
    assert logic.load_plan(plan)[band_plan["name"]] == "kept manual"
    logic.reset_to_ai(band_plan["name"])
    assert band.GetAttribute("SpinePlanner.source") == "ai"
    c = [0.0] * 3
    band.GetCenterWorld(c)
    assert np.allclose(c, lps_to_ras(band_plan["center_lps"]), atol=1e-4)


def test_adopting_a_scene_without_a_plan_adds_nothing():
    scene = slicer.vtkMRMLScene()
    before = scene.GetNumberOfNodes()
    assert PlanSceneLogic(scene).adopt_scene() == 0 and scene.GetNumberOfNodes() == before
