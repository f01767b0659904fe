"""What the planner shows besides its nodes: the scan-parameter table in a table layout, and the colour legend of
the planes (the same colours the plan logic gives them, so the legend cannot drift from what is drawn)."""

from __future__ import annotations

# Plane colours (RGB 0-1): an AI plane whose disc passes the quality threshold, one to check, an edited plane,
# the sagittal and coronal slabs.
AI_GOOD, AI_CHECK, MANUAL, SLAB = (0.35, 1.0, 0.35), (1.0, 0.3, 0.3), (1.0, 0.8, 0.2), (0.4, 0.7, 1.0)
LEGEND = (
    ("green", AI_GOOD, "AI plane"),
    ("red", AI_CHECK, "AI plane to check: its disc's quality is below the threshold"),
    ("yellow", MANUAL, "moved, tilted, rotated or resized by hand (kept when the AI runs again)"),
    ("blue", SLAB, "sagittal and coronal slabs"),
)


def colour_word(colour) -> str:
    """The legend's word for a plane colour ('' for a colour the planner does not use)."""
    for word, rgb, _ in LEGEND:
        if all(abs(a - b) < 1e-3 for a, b in zip(rgb, colour)):
            return word
    return ""


def legend_html() -> str:
    """The legend as rich text for the module panel: a coloured square and what it means, one line each."""
    rows = []
    for _, rgb, meaning in LEGEND:
        hex_colour = "#" + "".join(f"{round(255 * c):02x}" for c in rgb)
        rows.append(f'<span style="color:{hex_colour}">&#9632;</span> {meaning}')
    return "<br>".join(rows)


def show_table_layout(scene, table_node) -> None:
    """Switch to the four-up layout with a table view and show `table_node` in it.

    The layout node and the selection node are the scene's singletons in Slicer; the table view node exists once
    the layout has shown a table view, so it is also pointed at the table here where it exists (Slicer's
    application logic propagates the selection to a view created later)."""
    import slicer

    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    if layout is not None:
        layout.SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    selection = scene.GetFirstNodeByClass("vtkMRMLSelectionNode")
    if selection is not None:
        selection.SetActiveTableID(table_node.GetID())
    views = scene.GetNodesByClass("vtkMRMLTableViewNode")
    for i in range(views.GetNumberOfItems()):
        views.GetItemAsObject(i).SetTableNodeID(table_node.GetID())
