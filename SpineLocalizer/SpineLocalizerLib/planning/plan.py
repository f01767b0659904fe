"""Turn a disc label map into a scan plan (the `plan.json` contract, docs/plan_schema.md)."""

from __future__ import annotations

import time
from typing import Any, cast

import numpy as np

from ..geometry import angle_between_deg
from ..labels import LUMBAR_REGION, codes_present, is_disc_code
from ..volume_io import Volume
from .disc_geometry import DiscMeasure, measure_discs
from .plan_types import Naming, Plan, PlannedDisc
from .protocol import default_protocol, validate_protocol
from .quality import (
    LABEL_MAP_THRESHOLD,
    calibration,
    count_doubt,
    disc_features,
    disc_quality,
    quality_factor,
    spacing_residuals,
)
from .slabs import plan_slabs, vertebra_planes

PLAN_SCHEMA_VERSION = 1


def check_whole_numbers(labels: Volume, labels_name: str = "label map") -> None:
    """Refuse a label map whose values are not whole numbers (a resampled or probability map)."""
    if not np.issubdtype(labels.array.dtype, np.integer):
        values = labels.array
        if not np.all(np.isfinite(values)) or not np.allclose(values, np.round(values)):
            raise ValueError(
                f"{labels_name}: label values must be whole numbers (got {labels.array.dtype} with fractions)"
            )


def check_inputs(
    image: Volume | None, labels: Volume, labels_name: str = "label map", image_name: str = "image"
) -> None:
    """Refuse inputs that cannot give a meaningful plan, saying what is wrong and what to do."""
    if labels.array.ndim != 3 or min(labels.array.shape) < 2:
        raise ValueError(f"{labels_name}: a 3D label map is needed (got shape {labels.array.shape})")
    check_whole_numbers(labels, labels_name)
    if image is not None and not image.same_grid(labels):
        raise ValueError(
            f"{image_name} and {labels_name} are on different grids "
            f"(size {image.array.shape} vs {labels.array.shape}, spacing "
            f"({', '.join(f'{v:g}' for v in np.round(image.spacing, 3))}) vs "
            f"({', '.join(f'{v:g}' for v in np.round(labels.spacing, 3))}) mm); resample the label map onto the "
            "image grid first"
        )
    if not labels.array.any():
        raise ValueError(f"{labels_name}: is empty (no labelled voxel); it must contain the disc labels")
    present = codes_present(labels.array)
    if not any(is_disc_code(v) for v in present):
        raise ValueError(
            f"{labels_name}: contains no disc labels; found codes {present[:12]}. Discs must use the project codes "
            "(100 + VerSe code of the vertebra above: T12-L1=119 ... L4-L5=123, L5-S1=124; see docs/phantom.md)"
        )


def build_plan(
    labels: Volume,
    *,
    image: Volume | None = None,
    protocol: dict[str, Any] | None = None,
    lumbar_count: int | None = None,
    confidences: dict[int, float] | None = None,
    input_info: dict[str, Any] | None = None,
    probability: np.ndarray | None = None,
    naming: dict[str, Any] | None = None,
) -> tuple[Plan, list[DiscMeasure]]:
    """The plan (plan_types.Plan) and the measured discs (kept for drawing)."""
    t0 = time.perf_counter()
    protocol = protocol or default_protocol()
    validate_protocol(protocol)
    check_inputs(image, labels)
    timings = {}
    t = time.perf_counter()
    discs = measure_discs(labels, lumbar_count=lumbar_count, confidences=confidences, probability=probability)
    timings["discs"] = time.perf_counter() - t
    if len(discs) < 2:
        found = ", ".join(d.label for d in discs) or "none large enough"
        raise ValueError(
            f"at least two discs are needed to plan the slabs and check the spacing; found {found}. "
            "Label more discs or check the label map"
        )
    discs.sort(key=lambda d: -d.centroid[2])  # top to bottom, as a reader reads them
    planned = [d for d in discs if _level_selected(d.label, protocol)]
    if not planned:
        raise ValueError(
            f"none of the labelled discs ({', '.join(d.label for d in discs)}) is in the protocol's levels "
            f"({protocol.get('levels', 'lumbar')!r})"
        )
    t = time.perf_counter()
    slabs = plan_slabs(planned, protocol)
    vertebrae = vertebra_planes(discs)
    timings["slabs"] = time.perf_counter() - t
    t = time.perf_counter()
    count = lumbar_count or (6 if any(d.label.startswith("L6") for d in discs) else 5)
    evidence = (naming or {}).get("discs")
    per_disc: dict[str, dict[str, Any]] = {}
    if evidence:
        model = calibration()
        threshold = float(protocol.get("quality_threshold", model["threshold"]))
        quality, per_disc = network_plan_quality(discs, planned, evidence, count, threshold, model, naming)
    else:
        quality = quality_factor(discs, count, float(protocol.get("quality_threshold", LABEL_MAP_THRESHOLD)))
    timings["quality"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    plan: Plan = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "coordinate_system": "LPS",
        "units": {"length": "mm", "angle": "deg"},
        "input": dict(input_info or {}, geometry=_geometry(labels)),
        "protocol": protocol,
        "lumbar_count": count,
        "naming": _naming_entry(naming, count, lumbar_count),
        "discs": [_with_quality(_disc_entry(d, protocol), per_disc.get(d.label)) for d in planned],
        "discs_not_planned": [d.label for d in discs if d not in planned],
        "vertebrae": vertebrae,
        "sagittal": slabs["sagittal"],
        "coronal": slabs["coronal"],
        "saturation_bands": slabs["saturation_bands"],
        "quality_factor": quality["quality_factor"],
        "quality": quality,
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
    }
    return plan, discs


def plan_for_labels(labels: Volume, lumbar_count: int | None) -> Plan:
    """The plan a reader would measure on: planned from the disc labels of the same label map."""
    lut = np.array([is_disc_code(v) for v in range(256)])
    discs = Volume(
        np.where(lut[labels.array], labels.array, 0).astype(np.uint8), labels.spacing, labels.origin, labels.direction
    )
    plan, _ = build_plan(discs, protocol=default_protocol(), lumbar_count=lumbar_count)
    return plan


def network_plan_quality(
    discs, planned, evidence, count: int, threshold: float, model, naming=None
) -> tuple[dict, dict]:
    """The plan's quality (its worst planned disc's calibrated quality) and each planned disc's entry fields:
    `quality`, `needs_review` and the `evidence` it was computed from. The plan's quality also carries
    `quality_if_count_right`: the same worst disc quality with the count's doubt set aside, which says whether
    verifying the count would settle the plan (and keeps a doubted count from passing for a flipped image)."""
    residuals = spacing_residuals(discs)
    doubt = count_doubt(naming)
    per_disc: dict[str, dict[str, Any]] = {}
    if_count_right = 1.0
    for d in planned:
        feats = disc_features(d, evidence.get(d.value, {}), residuals[d.label], doubt)
        q = disc_quality(feats, model)
        if_count_right = min(if_count_right, disc_quality(dict(feats, count_doubt=0.0), model))
        per_disc[d.label] = {
            "quality": round(q, 4),
            "needs_review": bool(q < threshold),
            "evidence": {k: round(v, 4) for k, v in feats.items()},
        }
    base = quality_factor(discs, count, threshold)
    worst = min(planned, key=lambda d: float(per_disc[d.label]["quality"]))
    qf = float(per_disc[worst.label]["quality"])
    base.update(
        quality_factor=round(qf, 4),
        threshold=threshold,
        needs_review=bool(qf < threshold),
        worst_disc=worst.label,
        quality_if_count_right=round(if_count_right, 4),
        calibration=model.get("fitted_on", ""),
        message=(
            "plan looks consistent"
            if qf >= threshold
            else f"{worst.label} is doubtful (quality {qf:.2f}): check its name and tilt before scanning"
        ),
    )
    return base, per_disc


def _naming_entry(naming: dict[str, Any] | None, count: int, given: int | None) -> Naming:
    """How the names and the lumbar count were decided (networks/sequence_matching.naming_evidence); from a label map,
    the count is the map's own (or the user's) and is not re-judged."""
    if naming:
        return cast(Naming, {k: v for k, v in naming.items() if k != "discs"})
    basis = "given" if given else "label map"
    return {"lumbar_count": count, "count_basis": basis, "verify_count": False, "evidence": f"lumbar count {basis}"}


def _level_selected(label: str, protocol: dict[str, Any]) -> bool:
    levels = protocol.get("levels", "lumbar")
    if levels == "all":
        return True
    if levels == "lumbar":
        return label.split("-")[0] in LUMBAR_REGION
    return label in levels  # an explicit list of disc names


def _geometry(vol: Volume) -> dict[str, Any]:
    return {
        "size": [int(n) for n in vol.array.shape],
        "spacing_mm": [float(s) for s in vol.spacing],
        "origin_lps": [float(v) for v in vol.origin],
        "direction": [float(v) for v in np.asarray(vol.direction).ravel()],
    }


def slice_offsets_mm(group: dict[str, Any]) -> list[float]:
    step = group["thickness_mm"] + group["gap_mm"]
    n = group["n_slices"]
    return [round((k - (n - 1) / 2) * step, 4) for k in range(n)]


def _with_quality(entry: PlannedDisc, quality: dict[str, Any] | None) -> PlannedDisc:
    """A network plan's disc entry with its calibrated quality (`network_plan_quality`)."""
    if quality:
        entry["quality"] = quality["quality"]
        entry["needs_review"] = quality["needs_review"]
        entry["evidence"] = quality["evidence"]
    return entry


def _disc_entry(d: DiscMeasure, protocol: dict[str, Any]) -> PlannedDisc:
    group = protocol["axial"]
    return {
        "label": d.label,
        "value": d.value,
        "centroid_lps": d.centroid.tolist(),
        "normal_lps": d.normal.tolist(),
        "left_lps": d.left.tolist(),
        "posterior_lps": d.posterior.tolist(),
        "scan_center_lps": d.posterior_edge.tolist(),
        "posterior_edge_lps": d.posterior_edge.tolist(),
        "anterior_edge_lps": d.anterior_edge.tolist(),
        "angle_to_axial_deg": round(angle_between_deg(d.normal, np.array([0.0, 0.0, 1.0])), 3),
        "slice_group": {
            "n_slices": int(group["n_slices"]),
            "thickness_mm": float(group["thickness_mm"]),
            "gap_mm": float(group["gap_mm"]),
            "fov_mm": [float(v) for v in group["fov_mm"]],
            "matrix": [int(v) for v in group["matrix"]],
            "phase_direction": group["phase_direction"],
            "x_axis_lps": d.left.tolist(),
            "y_axis_lps": d.posterior.tolist(),
            "slice_offsets_mm": slice_offsets_mm(group),
        },
        "confidence": round(d.confidence, 4),
        "volume_mm3": round(d.volume_mm3, 1),
        "normal_is_thinnest": bool(d.normal_is_thinnest),
    }
