"""Where the planner's nodes sit in the Data module: one subject-hierarchy folder per planned localizer.

In Slicer the subject-hierarchy logic gives every data node an item as it is added; a bare MRML scene
(slicer-core, the tests) does not, so an item is made here where none exists.
"""

from __future__ import annotations

ROOT_FOLDER = "SpinePlanner"
AXIAL_FOLDER = "Axial images"


def plan_folder_name(localizer_name: str) -> str:
    return f"Plan of {localizer_name}" if localizer_name else "Plan"


def _hierarchy(scene):
    import slicer

    return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def folder_item(scene, *names: str) -> int:
    """The item of the folder `names[0]/names[1]/...` under the scene, made where missing."""
    sh = _hierarchy(scene)
    parent = sh.GetSceneItemID()
    for name in names:
        child = sh.GetItemChildWithName(parent, name)
        parent = child if child else sh.CreateFolderItem(parent, name)
    return parent


def put_in_folder(scene, node, *names: str) -> int:
    """Move `node` into the folder `names` (made where missing); returns the folder's item."""
    sh = _hierarchy(scene)
    folder = folder_item(scene, *names)
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(folder, node)
    if sh.GetItemParent(item) != folder:
        sh.SetItemParent(item, folder)
    return folder


def folder_path(scene, node) -> list[str]:
    """The names of the folders above `node`, outermost first ([] where it has no item or sits at the top)."""
    sh = _hierarchy(scene)
    item = sh.GetItemByDataNode(node)
    names: list[str] = []
    if not item:
        return names
    parent = sh.GetItemParent(item)
    while parent and parent != sh.GetSceneItemID():
        names.insert(0, sh.GetItemName(parent))
        parent = sh.GetItemParent(parent)
    return names
