"""From localizer images to a plan with the networks: the one path both `spine-localizer plan` and the Slicer
module take, so both refuse the same inputs and report the same doubts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .networks import MODEL_DIR
from .planning.doubts import attach_doubts
from .planning.plan import build_plan
from .volume_io import Volume


def plan_from_localizer(
    images: list[Volume],
    *,
    protocol: dict[str, Any] | None = None,
    lumbar_count: int | None = None,
    model_dir: Path = MODEL_DIR,
    grid_axes: str = "lps",
    input_info: dict[str, Any] | None = None,
):
    """(plan, pipeline result) for one sagittal localizer (optionally with a coronal one as `images[1]`).

    Raises ValueError ("no confident plan: ...") when fewer than two discs were labelled: a plan with slabs and
    slice groups cannot be built from less, and a technologist must plan by hand.
    """
    import numpy as np

    from .networks.infer import run_pipeline

    result = run_pipeline(images, lumbar_count=lumbar_count, model_dir=model_dir, grid_axes=grid_axes)
    n_discs = len(np.unique(result.discs_canonical)) - 1
    if n_discs < 2:
        raise ValueError(
            f"no confident plan: {result.message}; {n_discs} disc(s) labelled, quality factor 0.00. Check that the "
            "image is a spine localizer covering the lumbar spine, or plan by hand"
        )
    plan, _ = build_plan(
        result.grid.as_volume(result.discs_canonical),
        protocol=protocol,
        lumbar_count=result.lumbar_count,
        confidences=result.confidences,
        probability=result.disc_probability,
        input_info=dict(input_info or {}, labels="discs.nii.gz (network)"),
        naming=result.naming,
    )
    plan["timings_s"].update({f"network_{k}": round(v, 4) for k, v in result.timings_s.items()})
    plan["timings_s"]["total"] = round(result.timings_s["total_inference"] + plan["timings_s"]["total"], 4)
    plan["lumbar_count_detected"] = result.lumbar_count
    attach_doubts(plan)
    return plan, result
