"""Quality factor of a plan: does the inter-disc spacing look like a spine, and were the discs found confidently?

    r_k = D_k / T_k          measured over template distance for each pair of consecutive discs present
                             (T summed over levels missing in between)
    s   = median_k r_k       the patient's scale, divided out
    dev = rms_k (r_k / s - 1)
    spacing = exp(-(dev / 0.12)^2 / 2)         12 % irregularity costs about 40 %
    scale   = 1 inside [0.75, 1.3], else exp(-(distance outside / 0.1)^2 / 2)
    coverage = present lumbar-region discs / expected (T12-L1 .. lumbosacral), at most 1
    quality_factor = spacing * scale * coverage * mean detection confidence

Fewer than two discs give 0. Below the protocol's `quality_threshold` (default 0.5) the plan should be checked by
a person before scanning: typically a missed or doubled disc, a wrong level, or no spine at all.
The template (resources/disc_spacing_template.json) holds approximate adult distances (see its description).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np

from .disc_geometry import DiscMeasure

SIGMA_REL = 0.12
# Plans from label maps (a reader's or a tool's) have no network evidence: their factor is the spacing check
# above, and below this they should be looked at.
LABEL_MAP_THRESHOLD = 0.5
SCALE_RANGE = (0.75, 1.3)


def spacing_template() -> dict[str, float]:
    text = resources.files("SpineLocalizerLib").joinpath("resources/disc_spacing_template.json").read_text()
    return json.loads(text)["distances_mm"]


def _order_index(name: str) -> int:
    """Position of a disc along the spine by its upper vertebra (T8-T9 = 0 ... L6-S1 = 10)."""
    order = ["T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6"]
    return order.index(name.split("-")[0])


def quality_factor(discs: list[DiscMeasure], lumbar_count: int, threshold: float) -> dict[str, Any]:
    template = spacing_template()
    order = ["T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6"]
    if len(discs) < 2:
        return _result(
            0.0, None, None, 0.0, 0.0, threshold, "fewer than two discs: nothing to check the spacing against"
        )
    ratios = []
    srt = sorted(discs, key=lambda d: _order_index(d.label))
    for a, b in zip(srt[:-1], srt[1:]):
        ia, ib = _order_index(a.label), _order_index(b.label)
        expected = sum(template.get(f"{order[i]}-{order[i + 1]}", 36.0) for i in range(ia, ib))
        ratios.append(float(np.linalg.norm(a.centroid - b.centroid)) / expected)
    r = np.asarray(ratios)
    s = float(np.median(r))
    dev = float(np.sqrt(np.mean((r / s - 1.0) ** 2)))
    spacing = float(np.exp(-0.5 * (dev / SIGMA_REL) ** 2))
    outside = max(SCALE_RANGE[0] - s, s - SCALE_RANGE[1], 0.0)
    scale = float(np.exp(-0.5 * (outside / 0.1) ** 2))
    lumbar_region = [d for d in discs if d.label.split("-")[0] in ("T12", "L1", "L2", "L3", "L4", "L5", "L6")]
    coverage = min(1.0, len(lumbar_region) / (lumbar_count + 1))
    confidence = float(np.mean([d.confidence for d in discs]))
    qf = spacing * scale * coverage * confidence
    message = (
        "plan looks consistent"
        if qf >= threshold
        else "check this plan before scanning: " + _reason(spacing, scale, coverage, confidence)
    )
    return _result(qf, spacing, scale, coverage, confidence, threshold, message, dev=dev, patient_scale=s)


def _reason(spacing, scale, coverage, confidence) -> str:
    parts = []
    if spacing < 0.7:
        parts.append("irregular disc spacing (missed, doubled or mislabelled disc?)")
    if scale < 0.7:
        parts.append("disc spacing outside the adult range")
    if coverage < 0.8:
        parts.append("lumbar discs missing")
    if confidence < 0.7:
        parts.append("low detection confidence")
    return "; ".join(parts) or "several small inconsistencies"


def _result(qf, spacing, scale, coverage, confidence, threshold, message, **extra) -> dict[str, Any]:
    out = {
        "quality_factor": round(float(qf), 4),
        "spacing_score": None if spacing is None else round(spacing, 4),
        "scale_score": None if scale is None else round(scale, 4),
        "coverage": round(float(coverage), 4),
        "confidence": round(float(confidence), 4),
        "threshold": threshold,
        "needs_review": bool(qf < threshold),
        "message": message,
    }
    out.update({k: round(float(v), 4) for k, v in extra.items()})
    return out


# ------------------------------------------------------------------ calibrated per-disc quality (network plans)
#
# For a plan the networks made, each disc gets q = P(right name and plane error <= 3 deg | evidence), a logistic
# model of what the pipeline knows about that disc (the level classifier's probability of the class its name
# implies, the disc and heatmap responses, how flat the segmented disc is, how well its spacing to its neighbours
# fits the template). The model and the threshold live in resources/quality_calibration.json, fitted by
# Testing/bench/calibrate_quality.py on tuning phantoms and checked on held-apart ones (docs/results.md). The plan's
# quality factor is its worst planned disc's q: a plan is as good as its worst slice group.

FEATURES = (
    "class_logit",
    "disc_probability",
    "heatmap_response",
    "thinness",
    "spacing_residual",
    "count_doubt",
    "lumbosacral",
)


def count_doubt(naming: dict[str, Any] | None) -> float:
    """1 when the lumbar count the names rest on is in doubt: the level classifier read another count that the
    prevalence prior overruled, or the images lean to another count; 0 when the count was given or nothing speaks
    against it. Every name of a spine counted wrong is wrong, so this is the strongest single sign of a misnamed
    disc: on tuning phantoms it was set for every four- and six-lumbar spine and for no five-lumbar one
    (docs/results.md, Quality factor)."""
    naming = naming or {}
    if naming.get("count_basis") == "given":
        return 0.0
    count = naming.get("lumbar_count")
    disputed = naming.get("classifier_count") is not None
    leaning = naming.get("images_favour") is not None and naming.get("images_favour") != count
    return float(disputed or leaning)


def calibration() -> dict[str, Any]:
    text = resources.files("SpineLocalizerLib").joinpath("resources/quality_calibration.json").read_text()
    return json.loads(text)


def _logit(p: float | None) -> float:
    if p is None:
        return 0.0
    p = min(max(float(p), 1e-4), 1.0 - 1e-4)
    return float(np.log(p / (1.0 - p)))


def spacing_residuals(discs: list[DiscMeasure]) -> dict[str, float]:
    """Per disc, the largest |log(D / (s T))| of the gaps to its neighbours (D measured, T template, s the
    patient's scale): a missed, doubled or misnamed neighbour shows as a gap that does not fit."""
    template = spacing_template()
    order = ["T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6"]
    srt = sorted(discs, key=lambda d: _order_index(d.label))
    gaps = []
    for a, b in zip(srt[:-1], srt[1:]):
        ia, ib = _order_index(a.label), _order_index(b.label)
        expected = sum(template.get(f"{order[i]}-{order[i + 1]}", 36.0) for i in range(ia, ib))
        gaps.append(float(np.linalg.norm(a.centroid - b.centroid)) / expected)
    if not gaps:
        return {d.label: 0.0 for d in discs}
    s = float(np.median(gaps))
    res = [abs(float(np.log(g / s))) for g in gaps]
    out = {}
    for k, d in enumerate(srt):
        around = ([res[k - 1]] if k > 0 else []) + ([res[k]] if k < len(res) else [])
        out[d.label] = max(around) if around else 0.0
    return out


def disc_features(
    d: DiscMeasure, evidence: dict[str, Any], spacing_residual: float, doubt: float = 0.0
) -> dict[str, float]:
    """The evidence the calibrated quality reads for disc `d`; `doubt` is the plan's `count_doubt`. The
    lumbosacral disc gets its own term: its wedge and the sacrum's slope make its plane the hardest to get within
    3 deg."""
    lam = np.sort(np.asarray(d.eigenvalues, dtype=float))
    return {
        "class_logit": _logit(evidence.get("class_probability")),
        "disc_probability": float(evidence.get("disc_probability", 0.0)),
        "heatmap_response": float(evidence.get("heatmap_response", 0.0)),
        "thinness": float(np.sqrt(max(lam[0], 0.0) / max(lam[1], 1e-9))),
        "spacing_residual": float(spacing_residual),
        "count_doubt": float(doubt),
        "lumbosacral": float(d.label.endswith("-S1")),
    }


def disc_quality(features: dict[str, float], model: dict[str, Any]) -> float:
    # A feature the model was not fitted with is ignored (zip over the model's own list), so an older
    # calibration file keeps working.
    z = float(model["intercept"]) + sum(float(w) * features[f] for f, w in zip(model["features"], model["weights"]))
    return float(1.0 / (1.0 + np.exp(-z)))
