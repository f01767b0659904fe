"""From localizer images to a plan with the networks: the one path both `spine-localizer plan` and the Slicer
module take, so both refuse the same inputs and report the same doubts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .networks import MODEL_DIR
from .planning.doubts import attach_doubts
from .planning.plan import build_plan
from .planning.quality import calibration, disc_quality
from .progress import Progress, Report, as_progress
from .volume_io import Volume

# A doubtful plan is planned again on the image's content flipped head-foot and front-back (its header unchanged):
# if one of them gives a confident plan clearly better than the image as given, the header does not describe the
# image (an export that lost the orientation, a reversed reconstruction) and the technologist is told so. The
# plan itself stays the one of the image as given: guessing an orientation is not ours to do silently.
FLIP_AXES = {"head-foot": 2, "front-back": 1}  # LPS component the flipped image axis runs along
FLIP_MIN_QUALITY = 0.6
FLIP_MIN_GAIN = 0.3
COUNT_DOUBTS = ("count_disputed", "count_unusual")
# A plan none of whose discs reaches this quality is no plan: pure noise gave four discs all of quality 0.00,
# while on every real volume of ../shared/data/real (29) the best disc's quality was 0.86 or more
# (docs/results.md, Bad input).
MIN_BEST_DISC_QUALITY = 0.2


def _flipped(image: Volume, lps_component: int) -> Volume:
    axis = int(np.argmax(np.abs(np.asarray(image.direction)[lps_component])))
    return Volume(np.flip(image.array, axis).copy(), image.spacing, image.origin, image.direction)


def _orientation_suspect(
    images: list[Volume], plan: dict[str, Any], progress: Progress | None = None, **options
) -> dict[str, Any] | None:
    """The flip whose plan is confident where the given image's is not, with both quality factors; else None."""
    step = progress or Progress()
    quality = float(plan["quality"]["quality_factor"])
    # Judged against the given plan's quality with the count's doubt set aside: a flip must explain more than a
    # doubted count.
    given = float(plan["quality"].get("quality_if_count_right", quality))
    best = None
    for k, (name, component) in enumerate(FLIP_AXES.items()):
        step(k / len(FLIP_AXES), f"Checking the image's orientation ({name})")
        try:
            other, _ = plan_from_localizer(
                [_flipped(images[0], component), *images[1:]],
                check_orientation=False,
                progress=step.part(k / len(FLIP_AXES), (k + 1) / len(FLIP_AXES)),
                **options,
            )
        except ValueError:  # no plan at all from the flipped image: not the answer
            continue
        flipped_quality = float(other["quality"]["quality_factor"])
        if (
            not other["doubtful"]
            and flipped_quality >= FLIP_MIN_QUALITY
            and flipped_quality >= given + FLIP_MIN_GAIN
            and (best is None or flipped_quality > best["quality_flipped"])
        ):
            best = {"flipped": name, "quality": round(quality, 4), "quality_flipped": round(flipped_quality, 4)}
    return best


def _doubtful_beyond_count(plan: dict[str, Any]) -> bool:
    """Whether the flipped-image check can tell anything: doubts other than the count's, or doubtful discs whose
    quality with the count's doubt set aside leaves room for a flipped plan to be `FLIP_MIN_GAIN` better."""
    quality = plan["quality"]
    count_aside = float(quality.get("quality_if_count_right", quality["quality_factor"]))
    for doubt in plan["doubts"]:
        if doubt["code"] == "low_disc_quality" and count_aside < 1.0 - FLIP_MIN_GAIN:
            return True
        if doubt["code"] not in (*COUNT_DOUBTS, "low_disc_quality"):
            return True
    return False


def plan_from_localizer(
    images: list[Volume],
    *,
    protocol: dict[str, Any] | None = None,
    lumbar_count: int | None = None,
    model_dir: Path = MODEL_DIR,
    grid_axes: str = "lps",
    input_info: dict[str, Any] | None = None,
    check_orientation: bool = True,
    threads: int = 2,
    progress: Progress | Report | None = None,
):
    """(plan, pipeline result) for one sagittal localizer (optionally with a coronal one as `images[1]`); the
    networks run on `threads` threads.

    Raises ValueError ("no confident plan: ...") when fewer than two discs were labelled: a plan with slabs and
    slice groups cannot be built from less, and a technologist must plan by hand; with `check_orientation`, the
    message (or a doubtful plan's doubts) says when the image looks flipped relative to its header. Steps go to
    `progress` (progress.py); when it says stop, `Cancelled` is raised before anything is returned.
    """
    import time

    from .networks.infer import run_pipeline

    options = {
        "protocol": protocol,
        "lumbar_count": lumbar_count,
        "model_dir": model_dir,
        "grid_axes": grid_axes,
        "threads": threads,
    }
    step = as_progress(progress)
    # The networks take most of a plan; the orientation check, when it runs, re-plans twice in the last share.
    result = run_pipeline(
        images,
        lumbar_count=lumbar_count,
        model_dir=model_dir,
        grid_axes=grid_axes,
        threads=threads,
        progress=step.part(0.0, 0.8),
    )
    n_discs = len(np.unique(result.discs_canonical)) - 1
    if n_discs < 2:
        hint = ""
        if check_orientation:
            suspect = _orientation_suspect(images, {"quality": {"quality_factor": 0.0}}, step.part(0.8, 1.0), **options)
            if suspect:
                hint = (
                    f"; the image looks flipped {suspect['flipped']} relative to its header (flipped, it plans with "
                    f"quality {suspect['quality_flipped']:.2f}): check its orientation"
                )
        raise ValueError(
            f"no confident plan: {result.message}; {n_discs} disc(s) labelled, quality factor 0.00{hint}. Check that "
            "the image is a spine localizer covering the lumbar spine, or plan by hand"
        )
    step(0.8, "Computing the plan")
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
    # A doubted count lowers every disc's quality alike; whether any disc looks like one is judged without it.
    model = calibration()
    best = max(disc_quality(dict(d["evidence"], count_doubt=0.0), model) for d in plan["discs"])
    if best < MIN_BEST_DISC_QUALITY:
        hint = ""
        if check_orientation:
            suspect = _orientation_suspect(images, plan, step.part(0.85, 1.0), **options)
            if suspect:
                hint = f"; the image looks flipped {suspect['flipped']} relative to its header: check its orientation"
        raise ValueError(
            f"no confident plan: no disc looks like one (best disc quality {best:.2f} < {MIN_BEST_DISC_QUALITY}){hint}. "
            "Check that the image is a spine localizer covering the lumbar spine, or plan by hand"
        )
    # A count in doubt alone is no sign of a flipped image (the networks found and named the discs well), nor are
    # doubtful discs that the count's doubt alone made doubtful.
    if check_orientation and _doubtful_beyond_count(plan):
        t = time.perf_counter()
        suspect = _orientation_suspect(images, plan, step.part(0.85, 1.0), **options)
        plan["timings_s"]["orientation_check"] = round(time.perf_counter() - t, 4)
        if suspect:
            plan["orientation_suspect"] = suspect
            attach_doubts(plan)
    return plan, result
