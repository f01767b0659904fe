"""Automatic rows from each kind of structure source: a label map in the project codes, another tool's label map
(label_conventions.py), or the structure network run on the image itself (structure_segmentation.py). Every row
says its source (`Row.source`); what a source cannot give is "not measurable" with the reason, never a number
read off a structure the source does not have."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from SpineLocalizerLib.volume_io import Volume

from .auto_mode import measure_plan
from .catalogue import Thresholds
from .label_conventions import Converted, convert, detect_convention
from .measurement_planes import measurement_planes
from .results import Row, not_measurable


@dataclass
class Measured:
    rows: list[Row]
    plan: dict[str, Any]
    labels: Volume  # the map measured, in project codes (written out for the reader to check and correct)
    notes: list[str] = field(default_factory=list)
    convention: str = "project"
    covered: np.ndarray | None = None  # network source: the voxels the network saw


def _sourced(rows: list[Row], source: str) -> list[Row]:
    for r in rows:
        r.source = source
    return rows


def measure_label_map(
    labels: Volume,
    *,
    convention: str | None,
    instances: Volume | None,
    plan: dict[str, Any] | None,
    lumbar_count: int | None,
    thresholds: Thresholds,
    reference: dict | None,
) -> Measured:
    """Rows from a label map of any known convention (detected from its values when `convention` is None)."""
    from SpineLocalizerLib.planning.plan import plan_for_labels

    values = {int(v) for v in np.unique(labels.array) if v}
    convention = convention or detect_convention(values)
    if convention == "project":
        used: dict[str, Any] = plan or dict(plan_for_labels(labels, lumbar_count))
        rows = measure_plan(labels, used, thresholds, reference)
        return Measured(_sourced(rows, "label map"), used, labels)
    converted = convert(labels, convention, instances)
    plan = plan or measurement_planes(converted.labels)
    if not plan["discs"]:
        raise ValueError(
            f"no disc level found in the {convention} map once converted ({'; '.join(converted.notes) or 'no discs'}); "
            "give --plan with the levels to measure"
        )
    rows = measure_plan(converted.labels, plan, thresholds, reference, all_levels=True)
    rows = _apply_limits(rows, converted)
    notes = [*converted.notes, f"levels: {converted.levels}"]
    return Measured(_sourced(rows, f"imported {convention}"), plan, converted.labels, notes, convention)


def _apply_limits(rows: list[Row], converted: Converted) -> list[Row]:
    """Rows the convention cannot give turned "not measurable" with the reason (e.g. a herniation ratio of 0 from
    a map that has no herniation label would be a silent wrong number)."""
    out = []
    for r in rows:
        why = converted.cannot(r.measurement)
        out.append(not_measurable(r.level, r.measurement, r.method, why) if why else r)
    return out


def measure_image(
    image: Volume,
    *,
    plan: dict[str, Any] | None,
    level: str | None,
    thresholds: Thresholds,
    reference: dict | None,
    model_dir=None,
    withhold: bool = True,
) -> Measured:
    """Rows from the image alone: the structure network's label map, measured in the plan's planes.

    An axial slice stack is one slice group: its disc is the plan's disc nearest the stack's centre, or `level`
    (e.g. from the file name `spine-localizer reslice` writes). A sagittal or 3D volume is segmented along the
    plan; without one it is planned first (the localizer pipeline reads any sagittal volume)."""
    from SpineLocalizerLib.labels import DISC_CODE_OFFSET, VERTEBRA_CODES
    from SpineLocalizerLib.networks import MODEL_DIR
    from SpineLocalizerLib.networks.segment_structures import load_structure_net

    from .image_structures import NETWORK_CANNOT, gated, is_axial_stack, segment_slice_group, segment_volume

    run, _ = load_structure_net(model_dir or MODEL_DIR)
    notes = []
    if is_axial_stack(image):
        if plan is not None:
            centre = image.index_to_world((np.array(image.array.shape) - 1)[None] / 2.0)[0]
            disc = min(plan["discs"], key=lambda d: float(np.linalg.norm(np.asarray(d["centroid_lps"]) - centre)))
        elif level is not None:
            upper = level.split("-")[0]
            if upper not in VERTEBRA_CODES:
                raise ValueError(f"--level {level!r}: give a disc level such as L4-L5 or L5-S1")
            disc = {"label": level, "value": DISC_CODE_OFFSET + VERTEBRA_CODES[upper]}
        else:
            raise ValueError(
                "an axial slice stack needs its level: give --plan (the plan it was resliced from) or --level "
                "(e.g. --level L4-L5)"
            )
        segmented = segment_slice_group(run, image, disc)
        notes.append(f"axial slice group of {disc['label']}: segmented slice by slice")
    else:
        if plan is None:
            from SpineLocalizerLib.networks.localizer_like import resample_to_localizer
            from SpineLocalizerLib.pipeline import plan_from_localizer

            # The planner's networks read localizers: the volume is first turned into one (4 mm sagittal slices).
            plan, _ = plan_from_localizer([resample_to_localizer(image)])
            notes.append("planned from the image first (give --plan to measure in your own planes)")
        segmented = segment_volume(run, image, plan)
        notes.append("volume segmented on planes along each planned disc (0.75 mm grid)")
    notes += segmented.notes
    if not segmented.plan["discs"] and not segmented.plan.get("vertebrae"):
        raise ValueError(
            "the structure network found no disc in the image: check it is a lumbar MRI, or measure "
            "from a label map (--labels) or landmarks (--landmarks)"
        )
    rows = measure_plan(segmented.labels, segmented.plan, thresholds, reference, all_levels=True)
    rows = gated(rows, segmented.labels, segmented.plan)
    # What the network cannot give (`withhold=False` only for the evaluation that decides what it can).
    rows = [
        not_measurable(r.level, r.measurement, r.method, why)
        if withhold and (why := next((w for k, w in NETWORK_CANNOT.items() if r.measurement.startswith(k)), None))
        else r
        for r in rows
    ]
    return Measured(_sourced(rows, "network"), segmented.plan, segmented.labels, notes, "network", segmented.covered)
