"""MRML logic of "Measure automatically": from a label map node, or from a plain image node with the structure
network, in the scene's (possibly edited) plan planes when a plan is loaded; the rows go into a table and the
network's segmentation into a label map node the reader can check and correct (and measure again from). A plane
the reader dragged is measured where it now is, and its offset angle from the planner's plane is a row."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from SpineLocalizerLib.labels import DISC_CODE_OFFSET, VERTEBRA_CODES
from SpineLocalizerLib.scene import plane_geometry_lps
from SpineLocalizerLib.scene.folders import ROOT_FOLDER, put_in_folder
from SpineLocalizerLib.scene.plan import ATTR, PlanSceneLogic
from SpineLocalizerLib.scene.volumes import add_volume, volume_from_node

from ..catalogue import Thresholds
from .results import add_results

SEGMENTATION_NAME = "Structures (network)"


def plan_from_scene(scene) -> dict[str, Any] | None:
    """The scene's axial plan planes as a plan (disc entries in their current, possibly dragged, geometry) with a
    mid-plane between each two neighbouring discs for the psoas; None when no plan is loaded."""
    discs = []
    for node in PlanSceneLogic(scene).planes().values():
        level = node.GetAttribute(ATTR + "level") or ""
        if node.GetAttribute(ATTR + "role") != "axial" or level.split("-")[0] not in VERTEBRA_CODES:
            continue
        geo = plane_geometry_lps(node)
        ai = json.loads(node.GetAttribute(ATTR + "ai") or "{}")
        normal = geo["normal"] * (1.0 if geo["normal"][2] >= 0 else -1.0)
        left = geo["x_axis"] - normal * (geo["x_axis"] @ normal)
        left = left / np.linalg.norm(left) * (1.0 if left[0] >= 0 else -1.0)
        discs.append(
            {
                "label": level,
                "value": DISC_CODE_OFFSET + VERTEBRA_CODES[level.split("-")[0]],
                "centroid_lps": geo["center"].tolist(),
                "normal_lps": normal.tolist(),
                "left_lps": left.tolist(),
                "posterior_lps": np.cross(normal, left).tolist(),
                "ai_normal_lps": ai.get("normal"),  # where the planner put it: the reference of an edited plane
            }
        )
    if not discs:
        return None
    discs.sort(key=lambda d: -d["centroid_lps"][2])
    vertebrae = []
    for upper, lower in zip(discs, discs[1:]):
        name = upper["label"].split("-")[1]
        if name == lower["label"].split("-")[0]:
            n = np.asarray(upper["normal_lps"]) + np.asarray(lower["normal_lps"])
            centre = (np.asarray(upper["centroid_lps"]) + np.asarray(lower["centroid_lps"])) / 2
            vertebrae.append(
                {"label": name, "center_lps": centre.tolist(), "normal_lps": (n / np.linalg.norm(n)).tolist()}
            )
    return {"discs": discs, "vertebrae": vertebrae, "source": "scene plan"}


def measure_in_scene(scene, *, image_node=None, label_node=None, level: str | None = None, model_dir=None) -> dict:
    """Rows (table + markups) from `label_node`, else from `image_node` by the structure network. Returns
    {"rows", "table", "segmentation" (the network's label map node or None), "notes"}."""
    from ..measure_sources import measure_image, measure_label_map

    plan = plan_from_scene(scene)
    thresholds = Thresholds()
    # Each level's offset angle against the planner's own plane: 0 until the reader drags it.
    reference = {
        "discs": [
            {"label": d["label"], "normal_lps": d["ai_normal_lps"]}
            for d in (plan or {"discs": []})["discs"]
            if d["ai_normal_lps"]
        ]
    }
    if label_node is not None:
        labels = volume_from_node(label_node)
        if not labels.array.any():
            raise ValueError(f"the label map '{label_node.GetName()}' is empty; nothing can be measured")
        measured = measure_label_map(
            labels, convention=None, instances=None, plan=None, lumbar_count=None, thresholds=thresholds, reference=None
        )
        segmentation = None
        name = "Measurements (label map)"
    elif image_node is not None:
        measured = measure_image(
            volume_from_node(image_node),
            plan=plan,
            level=level,
            thresholds=thresholds,
            reference=reference,
            model_dir=model_dir,
        )
        segmentation = add_volume(scene, measured.labels, SEGMENTATION_NAME, labelmap=True)
        name = "Measurements (network)"
    else:
        raise ValueError("Select the image to measure (or a label map of it).")
    nodes = add_results(scene, measured.rows, name)
    if segmentation is not None:  # the network's label map beside the values it gave, for a reader to check
        put_in_folder(scene, segmentation, ROOT_FOLDER, name)
    return {"rows": measured.rows, "table": nodes["table"], "segmentation": segmentation, "notes": measured.notes}
