"""One "Run AI planning" click: the networks, the label maps, then the scene, in that order.

Every step that takes time comes before the first change to the scene, and reports to `progress`
(SpineLocalizerLib/progress.py): a Cancel there (or an error) leaves the scene exactly as it was. The results land
in one subject-hierarchy folder per localizer (scene/folders.py); a re-run updates them in place.
"""

from __future__ import annotations

from typing import Any

from ..progress import Progress, Report, as_progress
from ..volume_io import Volume
from .folders import ROOT_FOLDER, plan_folder_name, put_in_folder
from .volumes import add_disc_segmentation

SEGMENTATION_NAME = "Discs"


def run_ai(
    scene,
    plan_logic,
    images: list[Volume],
    *,
    localizer_name: str = "",
    lumbar_count: int | None = None,
    overwrite_manual: bool = False,
    progress: Progress | Report | None = None,
    **plan_options: Any,
) -> tuple[dict[str, Any], str]:
    """Plan `images` (the sagittal localizer, optionally a coronal one) and show the plan in `scene` through
    `plan_logic` (a PlanSceneLogic). Returns the plan and the one-paragraph summary the module shows.

    Raises `progress.Cancelled` when the user stopped the run, ValueError when no plan could be made; in both
    cases the scene is untouched."""
    from ..networks.infer import discs_on
    from ..pipeline import plan_from_localizer

    step = as_progress(progress)
    # Shares measured on the demo localizer: the plan ~1.4-2.5 s, the 1 mm maps ~2 s (docs/results.md).
    plan, result = plan_from_localizer(images, lumbar_count=lumbar_count, progress=step.part(0.0, 0.5), **plan_options)
    step(0.5, "Drawing the disc segmentation at 1 mm")
    # The segmentation shown is the one `spine-localizer plan` writes: on the localizer's grid, drawn from the
    # output maps (sharper than the 2 mm grid the plan is computed on; same disc codes).
    shown = Volume(discs_on(result, images[0]), images[0].spacing, images[0].origin, images[0].direction)
    step(0.95, "Placing the plan in the scene")  # the last point to stop: nothing has changed yet
    report = plan_logic.load_plan(plan, overwrite_manual=overwrite_manual)
    segmentation = add_disc_segmentation(
        scene, shown, SEGMENTATION_NAME, names={d["value"]: d["label"] for d in plan["discs"]}
    )
    folder = (ROOT_FOLDER, plan_folder_name(localizer_name))
    for node in [*plan_logic.plan_nodes(), segmentation]:
        put_in_folder(scene, node, *folder)
    return plan, plan_summary(plan, report)


def plan_summary(plan: dict[str, Any], report: dict[str, str]) -> str:
    """What the module's status line says after a run: discs, count and its basis, quality, kept edits, doubts."""
    kept = [name for name, what in report.items() if what == "kept manual"]
    to_check = [d["label"] for d in plan["discs"] if d.get("needs_review")]
    doubts = "".join(f"\nCHECK PLAN: {d['reason']}" for d in plan["doubts"])
    return (
        f"{len(plan['discs'])} discs, {plan['lumbar_count']} lumbar vertebrae ({plan['naming']['count_basis']}), "
        f"quality factor {plan['quality_factor']:.2f}"
        + (f"; discs to check (red): {', '.join(to_check)}" if to_check else "")
        + (f"; kept manual: {', '.join(kept)}" if kept else "")
        + doubts
    )
