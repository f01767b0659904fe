"""The module's "Run AI planning" on a real slicer-core scene: progress, Cancel, folders, colours, table layout."""

import json

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer", reason="slicer-core is a pinned dependency; install requirements.txt")

from SpineLocalizerLib.progress import Cancelled, Progress  # noqa: E402
from SpineLocalizerLib.scene import plane_geometry_lps, set_plane_lps  # noqa: E402
from SpineLocalizerLib.scene.ai_run import run_ai  # noqa: E402
from SpineLocalizerLib.scene.folders import folder_path  # noqa: E402
from SpineLocalizerLib.scene.layout import AI_CHECK, AI_GOOD, LEGEND, legend_html, show_table_layout  # noqa: E402
from SpineLocalizerLib.scene.plan import PlanSceneLogic  # noqa: E402
from SpineLocalizerLib.scene.teaching import reference_plane  # noqa: E402
from SpineLocalizerLib.scene.volumes import add_axial_images  # noqa: E402
from SpineLocalizerLib.volume_io import read_volume  # noqa: E402

SEED = 100003  # an evaluation seed: never trained on


@pytest.fixture(scope="module")
def localizer(phantoms):
    folder, truth = phantoms.get(SEED, lumbar_count=5)
    return read_volume(folder / truth["files"]["localizer"])


class Recorder:
    """A progress report that keeps every step and answers stop at the step named `stop_at`."""

    def __init__(self, stop_at: str | None = None):
        self.steps: list[tuple[float, str]] = []
        self.stop_at = stop_at

    def __call__(self, fraction, text):
        self.steps.append((fraction, text))
        return text != self.stop_at


def _scene_state(scene) -> list[tuple]:
    """Every node's class, name and (for planes) geometry: what a cancelled run must leave as it was."""
    state = []
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        geo = ()
        if node.IsA("vtkMRMLMarkupsPlaneNode"):
            geo = tuple(np.round(np.concatenate(list(plane_geometry_lps(node).values())), 5))
        state.append((node.GetClassName(), node.GetName(), node.GetAttribute("SpinePlanner.source"), geo))
    return state


def test_progress_parts_never_go_back_and_a_false_answer_stops():
    seen = Recorder()
    p = Progress(seen)
    p(0.2, "one")
    sub = p.part(0.5, 1.0)
    sub(0.0, "two")
    sub(1.5, "clamped")
    assert [f for f, _ in seen.steps] == [0.2, 0.5, 1.0]
    stop = Progress(Recorder(stop_at="Drawing"))
    with pytest.raises(Cancelled, match="drawing"):
        stop(0.3, "Drawing")
    Progress(None)(0.5, "nobody listens")  # no report: nothing to do, no error


def test_ai_run_reports_progress_files_the_results_and_reruns_in_place(localizer):
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    seen = Recorder()
    plan, message = run_ai(scene, logic, [localizer], localizer_name="Phantom localizer", progress=seen)
    fractions = [f for f, _ in seen.steps]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0, seen.steps
    texts = [t for _, t in seen.steps]
    for step in ("Loading the networks", "Finding the spine", "Segmenting and naming the discs", "Computing the plan"):
        assert step in texts
    assert texts[-1] == "Placing the plan in the scene" and fractions[-1] == pytest.approx(0.95)
    assert f"{len(plan['discs'])} discs" in message

    # Everything of the run sits in one folder per localizer, the segmentation with the plan.
    nodes = [*logic.plan_nodes(), scene.GetFirstNodeByName("Discs")]
    assert {tuple(folder_path(scene, n)) for n in nodes} == {("SpinePlanner", "Plan of Phantom localizer")}

    # Per-disc colour and quality: red exactly where the plan says a disc needs review.
    rows = {r["Plane"]: r for r in logic.table_rows()}
    for disc in plan["discs"]:
        node = logic.planes()[f"{disc['label']} axial"]
        colour = node.GetDisplayNode().GetSelectedColor()
        assert np.allclose(colour, AI_CHECK if disc["needs_review"] else AI_GOOD)
        row = rows[f"{disc['label']} axial"]
        assert row["Quality"] == f"{disc['quality']:.2f}"
        assert row["Shown as"] == ("red (AI, check)" if disc["needs_review"] else "green (AI)")
    assert rows["sagittal"]["Shown as"] == "blue (AI)"

    # A second run updates the same nodes: no copies, one folder.
    before = sorted((n.GetClassName(), n.GetName()) for n in [*logic.plan_nodes()])
    n_nodes = scene.GetNumberOfNodes()
    run_ai(scene, logic, [localizer], localizer_name="Phantom localizer")
    assert scene.GetNumberOfNodes() == n_nodes
    assert sorted((n.GetClassName(), n.GetName()) for n in logic.plan_nodes()) == before
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    ids = vtk.vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), ids)
    assert ids.GetNumberOfIds() == 1


@pytest.mark.parametrize("stop_at", ["Segmenting and naming the discs", "Placing the plan in the scene"])
def test_cancel_leaves_the_scene_and_an_edit_as_they_were(localizer, stop_at):
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    plan, _ = run_ai(scene, logic, [localizer], localizer_name="Phantom localizer")
    disc = plan["discs"][2]
    name = f"{disc['label']} axial"
    g = disc["slice_group"]
    set_plane_lps(
        logic.planes()[name],
        np.asarray(disc["scan_center_lps"]) + [0, 0, 3.0],
        disc["normal_lps"],
        g["x_axis_lps"],
        g["fov_mm"],
    )
    state = _scene_state(scene)
    table = json.dumps(logic.table_rows())
    seen = Recorder(stop_at=stop_at)
    with pytest.raises(Cancelled):
        run_ai(scene, logic, [localizer], localizer_name="Phantom localizer", overwrite_manual=True, progress=seen)
    assert seen.steps[-1][1] == stop_at
    assert _scene_state(scene) == state  # the edited plane too, although the cancelled run would overwrite it
    assert json.dumps(logic.table_rows()) == table


def test_table_layout_and_legend(localizer):
    scene = slicer.vtkMRMLScene()
    layout = scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    selection = scene.AddNewNodeByClass("vtkMRMLSelectionNode")
    view = scene.AddNewNodeByClass("vtkMRMLTableViewNode")
    table = PlanSceneLogic(scene).table()
    show_table_layout(scene, table)
    assert layout.GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView
    assert selection.GetActiveTableID() == view.GetTableNodeID() == table.GetID()
    html = legend_html()
    assert html.count("<br>") == len(LEGEND) - 1
    for _word, rgb, meaning in LEGEND:
        assert meaning in html and "#" + "".join(f"{round(255 * c):02x}" for c in rgb) in html


def test_axial_images_go_to_the_plan_folder_and_are_replaced(localizer, tmp_path):
    scene = slicer.vtkMRMLScene()
    logic = PlanSceneLogic(scene)
    plan, _ = run_ai(scene, logic, [localizer], localizer_name="L1")
    first = add_axial_images(scene, logic, localizer)
    assert len(first) == len(plan["discs"])
    assert {tuple(folder_path(scene, n)) for n in first} == {("SpinePlanner", "Plan of L1", "Axial images")}
    n_nodes = scene.GetNumberOfNodes()
    assert [n.GetID() for n in add_axial_images(scene, logic, localizer)] == [n.GetID() for n in first]
    assert scene.GetNumberOfNodes() == n_nodes


def test_teaching_reference_from_the_ai_or_an_expert_file(tmp_path):
    disc = {"label": "L4-L5", "scan_center_lps": [1, 2, 3], "normal_lps": [0, 0, 1], "posterior_lps": [0, 1, 0]}
    ref, name = reference_plane("L4-L5", {"discs": [disc]})
    assert name == "AI" and ref == {"center": [1, 2, 3], "normal": [0, 0, 1], "posterior": [0, 1, 0]}
    expert = tmp_path / "expert.json"
    expert.write_text(json.dumps({"discs": [dict(disc, scan_center_lps=[9, 9, 9])]}))
    ref, name = reference_plane("L4-L5", {"discs": [disc]}, str(expert))  # the expert file wins
    assert name == "expert" and ref["center"] == [9, 9, 9]
    with pytest.raises(ValueError, match="expert reference has no L5-S1"):
        reference_plane("L5-S1", None, str(expert))
    with pytest.raises(ValueError, match="Run the AI"):
        reference_plane("L4-L5", None)
    expert.write_text("[1, 2]")  # valid JSON, not a plan
    with pytest.raises(ValueError, match="no L4-L5"):
        reference_plane("L4-L5", None, str(expert))
