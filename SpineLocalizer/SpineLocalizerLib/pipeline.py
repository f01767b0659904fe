"""From localizer images to a plan with the networks: the one path both `spine-localizer plan` and the Slicer
module take, so both refuse the same inputs and report the same doubts."""

from __future__ import annotations

import time
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
# image (an export that lost the orientation, a reversed reconstruction) and the image is refused: a plan of the
# content as given is no plan, and one of the flipped content would be mirrored on the scanner. Guessing an
# orientation is not ours to do silently; `check_orientation=False` (`--trust-header`) plans the image as given.
FLIP_AXES = {"head-foot": 2, "front-back": 1}  # LPS component the flipped image axis runs along
FLIP_MIN_QUALITY = 0.6
FLIP_MIN_GAIN = 0.3
COUNT_DOUBTS = ("count_disputed", "count_unusual")
# A plan none of whose discs reaches this quality is no plan: pure noise gave four discs all of quality 0.00,
# while on every real volume of ../shared/data/real (29) the best disc's quality was 0.86 or more
# (docs/results.md, Bad input).
MIN_BEST_DISC_QUALITY = 0.2


class LooksFlipped(ValueError):
    """The image's content looks flipped against its header (`_orientation_suspect`); callers say how to plan it
    anyway (`spine-localizer plan --trust-header`, `check_orientation=False`)."""


def _flipped(image: Volume, lps_component: int) -> Volume:
    axis = int(np.argmax(np.abs(np.asarray(image.direction)[lps_component])))
    return Volume(np.flip(image.array, axis).copy(), image.spacing, image.origin, image.direction)


def _orientation_suspect(
    images: list[Volume], quality: float, given: float, progress: Progress | None = None, **options
) -> dict[str, Any] | None:
    """The first flip whose plan is confident where the given image's (quality `quality`; `given` with the count's
    doubt set aside) is not; else None. The first is enough: two flips of one image cannot both look right."""
    step = progress or Progress()
    for k, (name, component) in enumerate(FLIP_AXES.items()):
        step(k / len(FLIP_AXES), f"Checking the image's orientation ({name})")
        try:
            other, _ = plan_from_localizer(
                [_flipped(images[0], component), *images[1:]],
                check_orientation=False,
                progress=step.part(k / len(FLIP_AXES), (k + 1) / len(FLIP_AXES)),
                # A flip that is the image's true orientation shows the spine as the spine network knows it; the
                # whole-image search for a spine it missed (~7 s) cannot make that case.
                search_whole_image=False,
                **options,
            )
        except ValueError:  # no plan at all from the flipped image: not the answer
            continue
        flipped_quality = float(other["quality"]["quality_factor"])
        if not other["doubtful"] and flipped_quality >= FLIP_MIN_QUALITY and flipped_quality >= given + FLIP_MIN_GAIN:
            return {"flipped": name, "quality": round(quality, 4), "quality_flipped": round(flipped_quality, 4)}
    return None


def _refuse_if_flipped(images: list[Volume], quality: float, given: float, progress: Progress, **options) -> None:
    """Raise ValueError when the image's content looks flipped against its header (`_orientation_suspect`)."""
    suspect = _orientation_suspect(images, quality, given, progress, **options)
    if suspect:
        raise LooksFlipped(
            f"the image looks flipped {suspect['flipped']} relative to its header: as given it plans with quality "
            f"{suspect['quality']:.2f}, with its content flipped {suspect['quality_flipped']:.2f}. Correct the "
            "image's orientation (its header) and plan again"
        )


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
    search_whole_image: bool = True,
):
    """(plan, pipeline result) for one sagittal localizer (optionally with a coronal one as `images[1]`); the
    networks run on `threads` threads.

    Raises ValueError ("no confident plan: ...") when fewer than two discs were labelled: a plan with slabs and
    slice groups cannot be built from less, and a technologist must plan by hand; with `check_orientation`, also
    when the image looks flipped relative to its header (a doubtful plan, or too few discs, is planned again on
    the flipped content; `_orientation_suspect`). Steps go to
    `progress` (progress.py); when it says stop, `Cancelled` is raised before anything is returned.
    """
    from .networks.infer import run_pipeline

    options = {
        "protocol": protocol,
        "lumbar_count": lumbar_count,
        "model_dir": model_dir,
        "grid_axes": grid_axes,
        "threads": threads,
    }
    step = as_progress(progress)
    checked: dict[str, float] = {}  # the orientation check's time, once it ran

    def refuse_if_flipped(quality: float, given: float) -> None:
        t = time.perf_counter()
        _refuse_if_flipped(images, quality, given, step.part(0.8, 1.0), **options)
        checked["orientation_check"] = round(time.perf_counter() - t, 4)

    # The networks take most of a plan; the orientation check, when it runs, re-plans in the last share. A flipped
    # image is refused before the search of the whole image for a spine the spine network missed (~7 s).
    result = run_pipeline(
        images,
        lumbar_count=lumbar_count,
        model_dir=model_dir,
        grid_axes=grid_axes,
        threads=threads,
        progress=step.part(0.0, 0.8),
        search_whole_image=search_whole_image,
        before_wide_search=(lambda: refuse_if_flipped(0.0, 0.0)) if check_orientation else None,
    )
    n_discs = len(np.unique(result.discs_canonical)) - 1
    if n_discs < 2:
        if check_orientation and not checked:
            refuse_if_flipped(0.0, 0.0)
        raise ValueError(
            f"no confident plan: {result.message}; {n_discs} disc(s) labelled, quality factor 0.00. Check that "
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
        if check_orientation and not checked:
            refuse_if_flipped(float(plan["quality"]["quality_factor"]), 0.0)
        raise ValueError(
            f"no confident plan: no disc looks like one (best disc quality {best:.2f} < {MIN_BEST_DISC_QUALITY}). "
            "Check that the image is a spine localizer covering the lumbar spine, or plan by hand"
        )
    # A count in doubt alone is no sign of a flipped image (the networks found and named the discs well), nor are
    # doubtful discs that the count's doubt alone made doubtful.
    if check_orientation and not checked and _doubtful_beyond_count(plan):
        quality = plan["quality"]
        refuse_if_flipped(
            float(quality["quality_factor"]), float(quality.get("quality_if_count_right", quality["quality_factor"]))
        )
    plan["timings_s"].update(checked)
    return plan, result
