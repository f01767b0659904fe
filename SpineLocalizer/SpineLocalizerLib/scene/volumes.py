"""MRML logic: volumes and segmentations from core `Volume`s (LPS) into a scene (RAS), and a scene bundle of a
whole case (image, segmentation, plan, tables) that opens in 3D Slicer as a ready plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..labels import CODE_TO_VERTEBRA, DISC_CODE_OFFSET, is_disc_code
from ..volume_io import Volume
from . import LPS_TO_RAS


def _image_data(array: np.ndarray):
    import vtk
    from vtk.util import numpy_support

    img = vtk.vtkImageData()
    img.SetDimensions(*array.shape)
    flat = np.ascontiguousarray(array.transpose(2, 1, 0)).ravel()  # VTK runs i fastest
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(flat, deep=True))
    return img


def _ijk_to_ras(volume: Volume):
    import vtk

    m = np.eye(4)
    m[:3, :3] = LPS_TO_RAS @ volume.direction @ np.diag(volume.spacing)
    m[:3, 3] = LPS_TO_RAS @ volume.origin
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r, c]))
    return out


GENERATED = "SpinePlanner.generated"  # attribute of nodes this code made: the ones a re-run may replace


def generated_node(scene, cls: str, name: str):
    """The node of `cls` named `name` that an earlier run made (updated in place, so each click does not add
    another copy), or a new one. A node of the same name that the user made is never reused."""
    nodes = scene.GetNodesByClassByName(cls, name)
    for i in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(i)
        if node.GetAttribute(GENERATED) == "1" and node.IsA(cls) and node.GetClassName() == cls:
            return node
    node = scene.AddNewNodeByClass(cls, name)
    node.SetAttribute(GENERATED, "1")
    return node


def add_volume(scene, volume: Volume, name: str, *, labelmap: bool = False):
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = generated_node(scene, cls, name)
    node.SetIJKToRASMatrix(_ijk_to_ras(volume))
    node.SetAndObserveImageData(_image_data(volume.array))
    node.CreateDefaultDisplayNodes()
    return node


def add_disc_segmentation(scene, discs: Volume, name: str = "Discs", names: dict[int, str] | None = None):
    """One segment per disc code, named by level (e.g. 'L4-L5'; 'disc below T11' when the level is not given)."""
    import slicer

    label_node = add_volume(scene, discs, name + " labelmap", labelmap=True)
    seg = generated_node(scene, "vtkMRMLSegmentationNode", name)
    seg.GetSegmentation().RemoveAllSegments()  # a re-run replaces the discs of the previous one
    seg.CreateDefaultDisplayNodes()
    if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(label_node, seg):
        raise RuntimeError("could not convert the disc label map into a segmentation")
    segmentation = seg.GetSegmentation()
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        code = segment.GetLabelValue()
        if is_disc_code(code):
            upper = CODE_TO_VERTEBRA.get(code - DISC_CODE_OFFSET, "?")
            segment.SetName((names or {}).get(code, f"disc below {upper}"))
    remove_with_display(scene, label_node)  # its display node left behind, every click added one
    return seg


def remove_with_display(scene, node) -> None:
    """Remove `node` and its display nodes (a bare scene.RemoveNode leaves them behind)."""
    displays = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    for each in [node, *displays]:
        if each is not None and scene.IsNodePresent(each):
            scene.RemoveNode(each)


def add_rows_table(scene, rows: list[dict[str, Any]], name: str, columns: list[str]):
    from . import string_columns

    node = generated_node(scene, "vtkMRMLTableNode", name)
    table = node.GetTable()
    table.Initialize()  # a re-run replaces the rows (and columns) of the previous one
    arrays = string_columns(table, columns)
    for r in rows:
        for arr, col in zip(arrays, columns):
            value = r.get(col)
            arr.InsertNextValue("" if value is None else (", ".join(value) if isinstance(value, list) else str(value)))
    table.Modified()
    return node


def build_case_scene(
    image: Volume, plan: dict, discs: Volume | None, measurements: list[dict] | None, cache_dir: str | Path
):
    """A scene holding the localizer, disc segmentation, plan nodes, scan and measurement tables."""
    from . import new_scene
    from .plan import PlanSceneLogic

    scene = new_scene(cache_dir)
    add_volume(scene, image, "Localizer")
    if discs is not None:
        add_disc_segmentation(scene, discs, names={d["value"]: d["label"] for d in plan["discs"]})
    logic = PlanSceneLogic(scene)
    logic.load_plan(plan)
    if measurements:
        add_rows_table(
            scene,
            measurements,
            "Measurements",
            ["level", "measurement", "value", "unit", "method", "flags", "status", "reason"],
        )
    return scene, logic


def volume_from_node(node) -> Volume:
    """A core Volume (LPS, (i, j, k) array) from a scalar or label volume node, where the scene shows it: a
    linear transform above the node (a registration, a manual alignment) is part of its geometry; a warping one
    cannot be a grid's geometry and is refused (harden it first: Data module, right-click > Harden transform)."""
    import vtk
    from vtk.util import numpy_support

    image = node.GetImageData()
    if image is None:
        raise ValueError(f"volume '{node.GetName()}' has no image data")
    dims = image.GetDimensions()
    array = (
        numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
        .reshape(dims[2], dims[1], dims[0])
        .transpose(2, 1, 0)
    )
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise ValueError(
                f"volume '{node.GetName()}' is under the non-linear transform '{parent.GetName()}': harden the "
                "transform (Data module: right-click the volume > Harden transform) and run again"
            )
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        ijk_to_ras = np.array([[to_world.GetElement(r, c) for c in range(4)] for r in range(4)]) @ ijk_to_ras
    axes = LPS_TO_RAS @ ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    return Volume(array.copy(), tuple(float(s) for s in spacing), LPS_TO_RAS @ ijk_to_ras[:3, 3], axes / spacing)


# Slicer's own frame of each slice view (RAS; vtkMRMLSliceNode's Axial / Sagittal / Coronal presets): screen x,
# screen y, normal. Radiological convention: patient left on the screen's right in axial and coronal views,
# anterior up in axial, superior up in sagittal and coronal, anterior on the left in sagittal.
VIEW_FRAMES_RAS = {
    "axial": ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "sagittal": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0), (-1.0, 0.0, 0.0)),
    "coronal": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
}


def oblique_view_frame(normal_ras, role: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(screen x, screen y, normal) in RAS of a slice view through a plane of normal `normal_ras`, as close as
    the plane allows to Slicer's own view of that role: the normal turned towards the preset's, screen x the
    preset's x projected into the plane (its y where x is nearly the normal), y completing the frame the preset's
    way up. A plane drawn with its own axes instead shows axial groups upside down and coronal slabs mirrored."""
    px, py, pn = (np.asarray(v) for v in VIEW_FRAMES_RAS[role])
    n = np.asarray(normal_ras, dtype=float)
    n = n / np.linalg.norm(n)
    if n @ pn < 0:
        n = -n
    x = px - (px @ n) * n
    if np.linalg.norm(x) < 0.3:  # a plane almost perpendicular to the preset's x: keep its y upright instead
        y = py - (py @ n) * n
        y /= np.linalg.norm(y)
        x = np.cross(y, n) if np.cross(y, n) @ px >= 0 else -np.cross(y, n)
    x /= np.linalg.norm(x)
    y = np.cross(n, x)
    if y @ py < 0:
        y = -y
    return x, y, n


def _plane_role(plane_node) -> str:
    role = plane_node.GetAttribute("SpinePlanner.role")
    return role if role in VIEW_FRAMES_RAS else "axial"  # a plane without a role is shown as an axial one


def point_slice_at_plane(slice_node, plane_node) -> None:
    """Show a plane in a slice view ("Show slices"): the view lies in the plane, centred on it, oriented as
    Slicer shows that role (`oblique_view_frame`)."""
    n, c = [0.0] * 3, [0.0] * 3
    plane_node.GetNormalWorld(n)
    plane_node.GetCenterWorld(c)
    _set_view(slice_node, *oblique_view_frame(n, _plane_role(plane_node)), c)


def point_views_at_plane(slice_nodes: dict[str, Any], plane_node) -> None:
    """ "Show slices" in all three views (`slice_nodes`: role -> slice node, Slicer's Red axial, Yellow sagittal,
    Green coronal): the view of the plane's role lies in the plane; the other two cut it at right angles through
    its centre, each as near its own preset as that allows, so the plane shows as a line across the disc (its
    tilt) in both."""
    n, c = [0.0] * 3, [0.0] * 3
    plane_node.GetNormalWorld(n)
    plane_node.GetCenterWorld(c)
    n = np.asarray(n, dtype=float) / np.linalg.norm(n)
    own = _plane_role(plane_node)
    for role, slice_node in slice_nodes.items():
        if role == own:
            _set_view(slice_node, *oblique_view_frame(n, role), c)
            continue
        preset = np.asarray(VIEW_FRAMES_RAS[role][2])
        across = preset - (preset @ n) * n  # the preset's normal turned until the view contains the plane's normal
        if np.linalg.norm(across) < 1e-3:  # the plane is this view's own orientation: nothing to cut across
            across = np.asarray(VIEW_FRAMES_RAS[role][0]) - (np.asarray(VIEW_FRAMES_RAS[role][0]) @ n) * n
        _set_view(slice_node, *oblique_view_frame(across / np.linalg.norm(across), role), c)


def _set_view(slice_node, x, y, normal, centre) -> None:
    import vtk

    c = centre
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        m.SetElement(r, 0, x[r])
        m.SetElement(r, 1, y[r])
        m.SetElement(r, 2, normal[r])
        m.SetElement(r, 3, c[r])
    slice_node.GetSliceToRAS().DeepCopy(m)
    slice_node.UpdateMatrices()


def reslice_current_planes(plan_logic, volume: Volume) -> dict[str, Volume]:
    """Axial stacks along the current (possibly edited) axial planes of the scene."""
    import SimpleITK as sitk

    from ..planning.axial_reslice import reslice_disc
    from ..volume_io import from_sitk

    out = {}
    for name, geo in plan_logic.current_plan_planes().items():
        node = plan_logic.planes()[name]
        if node.GetAttribute("SpinePlanner.role") != "axial":
            continue
        proto = geo["protocol"]
        n_x = int(round(geo["size"][0] / 0.6))
        disc = {
            "normal_lps": geo["normal"],
            "scan_center_lps": geo["center"],
            "slice_group": {
                "matrix": [n_x, int(round(geo["size"][1] / 0.6))],
                "fov_mm": geo["size"],
                "n_slices": proto.get("n_slices", 5),
                "thickness_mm": proto.get("thickness_mm", 3.5),
                "gap_mm": proto.get("gap_mm", 0.0),
                "x_axis_lps": geo["x_axis"],
                "y_axis_lps": np.cross(geo["normal"], geo["x_axis"]).tolist(),
            },
        }
        image = reslice_disc(volume, disc)
        out[name] = from_sitk(image) if isinstance(image, sitk.Image) else image
    return out


def add_axial_images(scene, plan_logic, volume: Volume) -> list:
    """The axial stacks along the current planes as volumes ('<plane> images', replaced by a re-run), in the
    plan's folder under 'Axial images'."""
    from .folders import AXIAL_FOLDER, folder_path, put_in_folder

    folder = [*folder_path(scene, plan_logic.table()), AXIAL_FOLDER]
    nodes = []
    for name, vol in reslice_current_planes(plan_logic, volume).items():
        node = add_volume(scene, vol, f"{name} images")
        put_in_folder(scene, node, *folder)
        nodes.append(node)
    return nodes
