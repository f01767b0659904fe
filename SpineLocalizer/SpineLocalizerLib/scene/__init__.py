"""MRML logic: the only code that knows both slicer-core nodes and the pure core.

Slicer's scene is RAS; files and the core are LPS. Conversions happen here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_to_ras(v) -> np.ndarray:
    return LPS_TO_RAS @ np.asarray(v, dtype=float)


ras_to_lps = lps_to_ras  # the flip is its own inverse


def markups_logic(scene):
    from slicer import vtkSlicerMarkupsLogic

    logic = vtkSlicerMarkupsLogic()
    logic.SetMRMLScene(scene)
    return logic


def load_plan_markups(scene, folder: str | Path) -> dict[str, object]:
    """Load every .mrk.json of a plan folder into `scene`; returns node name -> node."""
    logic = markups_logic(scene)
    nodes = {}
    for path in sorted(Path(folder).glob("*.mrk.json")):
        node_id = logic.LoadMarkups(str(path))
        if not node_id:
            raise ValueError(f"{path}: Slicer could not load this markups file")
        node = scene.GetNodeByID(node_id)
        nodes[node.GetName()] = node
    return nodes


def plane_geometry_lps(node) -> dict[str, np.ndarray]:
    """Centre, normal, in-plane x axis (LPS) and size of a plane markup node."""
    center, normal = [0.0] * 3, [0.0] * 3
    node.GetCenterWorld(center)
    node.GetNormalWorld(normal)
    x, y, z = [0.0] * 3, [0.0] * 3, [0.0] * 3
    node.GetAxesWorld(x, y, z)
    return {
        "center": ras_to_lps(center),
        "normal": ras_to_lps(normal),
        "x_axis": ras_to_lps(x),
        "size": np.array(node.GetSize()[:2], dtype=float),
    }


def roi_geometry_lps(node) -> dict[str, np.ndarray]:
    """Centre, axes (columns, LPS) and size of an ROI markup node."""
    center = [0.0] * 3
    node.GetCenterWorld(center)
    m = node.GetObjectToWorldMatrix()
    axes_ras = np.array([[m.GetElement(r, c) for c in range(3)] for r in range(3)])
    return {"center": ras_to_lps(center), "axes": LPS_TO_RAS @ axes_ras, "size": np.array(node.GetSize(), dtype=float)}


def set_plane_lps(node, center, normal, x_axis, size) -> None:
    """Place a pointNormal plane node from LPS geometry (what a user's edit or the planner produces)."""
    n = np.asarray(normal, dtype=float) / np.linalg.norm(normal)
    x = np.asarray(x_axis, dtype=float)
    x = x - n * (x @ n)
    x /= np.linalg.norm(x)
    y = np.cross(n, x)
    node.SetPlaneType(node.PlaneTypePointNormal)
    node.SetSizeMode(node.SizeModeAbsolute)
    node.SetAxesWorld(list(lps_to_ras(x)), list(lps_to_ras(y)), list(lps_to_ras(n)))
    node.SetCenterWorld(*lps_to_ras(center))
    node.SetSize(float(size[0]), float(size[1]))


def new_scene(cache_dir: str | Path):
    """A scene that can also read `.mrb` bundles headless (they unpack into `cache_dir`)."""
    from slicer import vtkCacheManager, vtkDataIOManager, vtkMRMLScene

    scene = vtkMRMLScene()
    cache = vtkCacheManager()
    cache.SetRemoteCacheDirectory(str(cache_dir))
    io = vtkDataIOManager()
    io.SetCacheManager(cache)
    scene.SetCacheManager(cache)
    scene.SetDataIOManager(io)
    register_storage_classes(scene)
    return scene


# Headless, markups and tables have no default storage registered by module logics; name them explicitly.
_STORAGE_BY_CLASS = (
    ("vtkMRMLMarkupsPlaneNode", "vtkMRMLMarkupsPlaneJsonStorageNode"),
    ("vtkMRMLMarkupsROINode", "vtkMRMLMarkupsROIJsonStorageNode"),
    ("vtkMRMLMarkupsNode", "vtkMRMLMarkupsJsonStorageNode"),
    ("vtkMRMLTableNode", "vtkMRMLTableStorageNode"),
    ("vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode"),
    ("vtkMRMLVolumeNode", "vtkMRMLVolumeArchetypeStorageNode"),
)


def register_storage_classes(scene) -> None:
    """Let `scene` create the storage nodes named in a .mrml file (Slicer's module logics do this in the app)."""
    import slicer

    for _, storage_class in _STORAGE_BY_CLASS:
        if not scene.GetClassNameByTag(getattr(slicer, storage_class)().GetNodeTagName()):
            scene.RegisterNodeClass(getattr(slicer, storage_class)())


def _attach_storage(scene, node):
    import slicer

    storage = node.CreateDefaultStorageNode()
    if storage is None:
        for node_class, storage_class in _STORAGE_BY_CLASS:
            if node.IsA(node_class):
                storage = getattr(slicer, storage_class)()
                break
    if storage is not None and storage.GetScene() is None:
        scene.AddNode(storage)
    if storage is not None:
        node.SetAndObserveStorageNodeID(storage.GetID())
    return storage


def save_mrb(scene, path: str | Path) -> None:
    """Write the scene as a Slicer data bundle (`.mrb`: a zip of the .mrml scene and a Data folder).

    Every storable node is written through its (default) storage node into Data/, as Slicer's "Save" does; the
    bundle is staged in a temporary folder and moved into place only when complete.
    """
    import shutil
    import tempfile
    import zipfile

    path = Path(path)
    stem = path.stem
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / stem
        data = bundle / "Data"
        data.mkdir(parents=True)
        used: set[str] = set()
        for i in range(scene.GetNumberOfNodes()):
            node = scene.GetNthNode(i)
            if not node.IsA("vtkMRMLStorableNode"):
                continue
            storage = node.GetStorageNode() or _attach_storage(scene, node)
            if storage is None:
                continue
            base = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in node.GetName()) or node.GetID()
            while base in used:
                base += "_"
            used.add(base)
            target = data / f"{base}.{storage.GetDefaultWriteFileExtension()}"
            storage.SetFileName(str(target))
            if not storage.WriteData(node):
                raise OSError(f"could not write {node.GetName()} into the scene bundle")
        scene.SetRootDirectory(str(bundle))
        scene.SetURL(str(bundle / f"{stem}.mrml"))
        if not scene.Commit():
            raise OSError(f"could not write the scene file for {path}")
        partial = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(bundle.rglob("*")):
                z.write(f, f.relative_to(Path(tmp)))
        shutil.move(partial, path)


def load_mrb(path: str | Path, cache_dir: str | Path):
    scene = new_scene(cache_dir)
    if not scene.ReadFromMRB(str(path)):
        raise ValueError(f"{path}: could not be read as a Slicer scene bundle (.mrb)")
    return scene


def string_columns(table, names) -> list:
    """Add one vtkStringArray column per name to a vtkTable; returns the arrays in order."""
    import vtk

    arrays = []
    for name in names:
        arr = vtk.vtkStringArray()
        arr.SetName(name)
        table.AddColumn(arr)
        arrays.append(arr)
    return arrays
