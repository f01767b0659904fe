"""Why a plan should be checked before scanning, as a list a technologist can act on.

A plan is *doubtful* when any reason below applies; `spine-localizer plan --strict` then exits non-zero and the
CLI summary and the Slicer module say "CHECK PLAN" with the reasons. A confident plan with the count seen (or a
five-lumbar count assumed on a lumbar-only field of view, the common case) carries no reason.
"""

from __future__ import annotations

from typing import Any

from .lumbar_curve import BACKWARD_CURVE_DOUBT_MM, backward_curve_mm
from .plan_types import Doubt, Plan

REASONS = {
    "count_unusual": "the plan reads {count} lumbar vertebrae: verify the count (whole-spine localizer or ribs)",
    "count_disputed": (
        "the level classifier reads {classifier} lumbar vertebrae, too little on its own against the prevalence "
        "of {count}: {count} kept, verify the count (whole-spine localizer or ribs)"
    ),
    "lumbosacral_missing": "the lumbosacral disc is not among the named discs: names are counted from a higher disc",
    "discs_missing": "lumbar discs missing ({found} of {expected} between T12-L1 and the lumbosacral disc)",
    "low_quality": "quality factor {qf:.2f} below the threshold {threshold:.2f}: {message}",
    "low_disc_quality": "doubtful disc(s), check name and tilt: {discs}",
    "curve_backwards": (
        "the lumbar discs curve backwards ({mm:.0f} mm behind the line from the highest to the lowest): unless "
        "this spine is kyphotic, the image is flipped front to back against its header; check its orientation"
    ),
}


def plan_doubts(plan: Plan) -> list[Doubt]:
    """The reasons (code + sentence) that make `plan` doubtful; empty for a plan that can be scanned as is."""
    out: list[tuple[str, dict[str, Any]]] = []
    naming = plan.get("naming") or {}
    count = int(plan.get("lumbar_count", 5))
    if naming.get("classifier_count") is not None and naming.get("count_basis") != "given":
        out.append(("count_disputed", {"count": count, "classifier": naming["classifier_count"]}))
    elif naming.get("verify_count") and naming.get("count_basis") != "given":
        out.append(("count_unusual", {"count": count}))
    if naming and naming.get("lumbosacral_in_view") is False:
        out.append(("lumbosacral_missing", {}))
    quality = plan.get("quality", {})
    expected = count + 1
    found = round(float(quality.get("coverage", 1.0)) * expected)
    if found < expected - 1:  # one missing disc is told by the per-disc quality; two or more by this
        out.append(("discs_missing", {"found": found, "expected": expected}))
    low = [
        f"{d['label']} (quality {d.get('quality', 0.0):.2f})" for d in plan.get("discs", []) if d.get("needs_review")
    ]
    if quality.get("needs_review") and not low:  # a network plan's factor is its worst disc's: said below
        out.append(
            (
                "low_quality",
                {
                    "qf": float(quality.get("quality_factor", 0.0)),
                    "threshold": float(quality.get("threshold", 0.5)),
                    "message": quality.get("message", ""),
                },
            )
        )
    if low:
        out.append(("low_disc_quality", {"discs": ", ".join(low)}))
    curve = backward_curve_mm(plan.get("discs", []))
    if curve is not None and curve > BACKWARD_CURVE_DOUBT_MM:
        out.insert(0, ("curve_backwards", {"mm": curve}))
    return [Doubt(code=code, reason=REASONS[code].format(**values)) for code, values in out]


def attach_doubts(plan: Plan) -> Plan:
    """Write `doubts` (the reasons) and `doubtful` (any reason) into `plan`, and return it."""
    plan["doubts"] = plan_doubts(plan)
    plan["doubtful"] = bool(plan["doubts"])
    return plan
