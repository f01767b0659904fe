"""Evaluation of the network planning on every real source in ../shared/data/real, one row per source.

- vertebrae_t2 (17 T2, levels known): identification (LVP rule) of T12-L1 .. L4-L5, plane error, lumbar count.
- vertebrae_mixed (11 T1/T2/TIRM with pathology, bodies numbered 1..n cranial first, levels unknown): detection
  (a reference disc with a planned disc < 6 mm away on each axis), plane error of the detected discs, relative
  order (two neighbouring reference discs detected get neighbouring names, in the right order).
- unlabeled/sct_t2_lumbar: planned and pictured only.

Every image is turned into a localizer-like volume (4 mm sagittal slices, 1.5 mm in plane) first. Each case's
overview PNG is written under OUT/<source>/<case>/ to be looked at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pipeline_evaluation import pred_discs
from SpineLocalizerLib.geometry import angle_between_deg
from SpineLocalizerLib.networks import MODEL_DIR
from SpineLocalizerLib.networks.body_references import numbered_body_discs, reference_discs_from_bodies
from SpineLocalizerLib.networks.localizer_like import resample_to_localizer
from SpineLocalizerLib.pipeline import plan_from_localizer
from SpineLocalizerLib.planning.writer import write_plan_outputs
from SpineLocalizerLib.volume_io import read_volume

REAL_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
SOURCES = ("vertebrae_t2", "vertebrae_mixed", "sct_t2_lumbar")
SCORED_T2 = ("T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5")
ORDER = ["T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6"]
PLANE_OK_DEG = 3.0


def _plan(image_path: Path, out: Path | None, model_dir: Path):
    """(plan or None, pipeline result or None, message) for a real image turned into a localizer."""
    image = resample_to_localizer(read_volume(image_path))
    try:
        plan, result = plan_from_localizer([image], model_dir=model_dir, input_info={"image": str(image_path)})
    except ValueError as err:
        return None, None, str(err)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_plan_outputs(out, plan, image)
    return plan, result, "ok"


def _disc_record(d: dict, ref: dict | None, correct: bool | None) -> dict[str, Any]:
    err = None if ref is None else angle_between_deg(np.asarray(d["normal_lps"]), ref["normal"], undirected=True)
    return {
        "label": d["label"],
        "quality": d.get("quality"),
        "needs_review": d.get("needs_review"),
        "matched": ref is not None,
        "correct_name": correct,
        "normal_error_deg": err,
    }


def _nearest(center: np.ndarray, refs: list[dict]) -> tuple[int | None, bool]:
    if not refs:
        return None, False
    d = [np.linalg.norm(np.asarray(r["center"]) - center) for r in refs]
    k = int(np.argmin(d))
    return k, bool(np.all(np.abs(np.asarray(refs[k]["center"]) - center) < 6.0))


def evaluate_t2_case(image_path: Path, out: Path | None, model_dir: Path = MODEL_DIR) -> dict[str, Any]:
    labels = read_volume(image_path.with_name(image_path.name.replace("_image", "_vertebrae")))
    ref = {k: v for k, v in reference_discs_from_bodies(labels).items() if k in SCORED_T2}
    plan, _, message = _plan(image_path, out, model_dir)
    row: dict[str, Any] = {"case": image_path.name.split("_image")[0], "reference_discs": len(ref), "message": message}
    if plan is None:
        return dict(row, correct=0, found_any_name=0, normal_errors_deg=[], discs=[], doubtful=True, doubts=[message])
    names, refs = list(ref), list(ref.values())
    discs, correct, errors = [], 0, []
    for d in plan["discs"]:
        if d["label"] not in SCORED_T2:
            continue
        k, close = _nearest(np.asarray(d["centroid_lps"]), refs)
        ok = close and names[k] == d["label"]
        correct += ok
        rec = _disc_record(d, refs[k] if ok else None, ok)
        discs.append(rec)
        if ok:
            errors.append(rec["normal_error_deg"])
    centres = [np.asarray(d["centroid_lps"]) for d in plan["discs"]]
    found = sum(any(np.all(np.abs(c - r["center"]) < 6.0) for c in centres) for r in refs)
    return dict(
        row,
        correct=int(correct),
        found_any_name=int(found),
        normal_errors_deg=errors,
        discs=discs,
        **_plan_summary(plan),
    )


def evaluate_mixed_case(image_path: Path, out: Path | None, model_dir: Path = MODEL_DIR) -> dict[str, Any]:
    labels = read_volume(image_path.with_name(image_path.name.replace("_image", "_bodies")))
    refs = numbered_body_discs(labels)
    plan, result, message = _plan(image_path, out, model_dir)
    row: dict[str, Any] = {"case": image_path.name.split("_image")[0], "reference_discs": len(refs), "message": message}
    if plan is None:
        return dict(row, detected=0, normal_errors_deg=[], order_pairs=0, order_right=0, discs=[], doubtful=True)
    # Every disc the network named, thoracic ones too (these fields of view reach T8-T10; the plan keeps only the
    # protocol's lumbar levels): planned discs as planned, the others as measured for planning.
    planned = {d["label"]: d for d in plan["discs"]}
    named = [
        planned.get(k, {"label": k, "centroid_lps": v["center"], "normal_lps": v["normal"]})
        for k, v in pred_discs(result).items()
    ]
    matched: dict[int, dict] = {}
    discs = []
    for d in named:
        k, close = _nearest(np.asarray(d["centroid_lps"]), refs)
        if d["label"] in planned:
            discs.append(_disc_record(d, refs[k] if close else None, None))
        if close and k not in matched:
            matched[k] = d
    errors = [
        angle_between_deg(np.asarray(d["normal_lps"]), refs[k]["normal"], undirected=True) for k, d in matched.items()
    ]
    pairs = right = 0
    for k in matched:
        if k + 1 in matched:  # refs are ordered cranial first; ranks of consecutive numbered bodies
            pairs += 1
            upper, lower = (matched[k]["label"].split("-")[0], matched[k + 1]["label"].split("-")[0])
            right += ORDER.index(lower) - ORDER.index(upper) == 1
    return dict(
        row,
        detected=len(matched),
        normal_errors_deg=errors,
        order_pairs=pairs,
        order_right=int(right),
        discs=discs,
        **_plan_summary(plan),
    )


def _plan_summary(plan: dict) -> dict[str, Any]:
    return {
        "predicted": [d["label"] for d in plan["discs"]],
        "lumbar_count": plan["lumbar_count"],
        "count_basis": plan["naming"]["count_basis"],
        "quality_factor": plan["quality_factor"],
        "doubtful": plan["doubtful"],
        "doubts": [d["reason"] for d in plan["doubts"]],
    }


def _stats(errs: list[float]) -> tuple[float, float]:
    return (float(np.median(errs)), float(np.percentile(errs, 90))) if errs else (float("nan"), float("nan"))


def summarise_t2(rows: list[dict]) -> dict[str, Any]:
    ref = sum(r["reference_discs"] for r in rows)
    med, p90 = _stats([e for r in rows for e in r["normal_errors_deg"]])
    return {
        "cases": len(rows),
        "reference_discs": ref,
        "identification": sum(r["correct"] for r in rows) / ref if ref else 0.0,
        "found_any_name": sum(r["found_any_name"] for r in rows) / ref if ref else 0.0,
        "normal_median_deg": med,
        "normal_p90_deg": p90,
        "count_five": float(np.mean([r.get("lumbar_count") == 5 for r in rows])),
        "flagged": float(np.mean([bool(r["doubtful"]) for r in rows])),
    }


def summarise_mixed(rows: list[dict]) -> dict[str, Any]:
    ref = sum(r["reference_discs"] for r in rows)
    med, p90 = _stats([e for r in rows for e in r["normal_errors_deg"]])
    pairs = sum(r["order_pairs"] for r in rows)
    return {
        "cases": len(rows),
        "reference_discs": ref,
        "detection": sum(r["detected"] for r in rows) / ref if ref else 0.0,
        "normal_median_deg": med,
        "normal_p90_deg": p90,
        "relative_order": sum(r["order_right"] for r in rows) / pairs if pairs else float("nan"),
        "flagged": float(np.mean([bool(r["doubtful"]) for r in rows])),
    }


def flag_report(rows: list[dict]) -> dict[str, Any]:
    """Per-disc quality flag against the truth where it is known: error rates of flagged and unflagged discs."""
    discs = [d for r in rows for d in r["discs"] if d["needs_review"] is not None]

    def bad(d: dict) -> bool:
        wrong = d["correct_name"] is False or not d["matched"]
        return wrong or (d["normal_error_deg"] is not None and d["normal_error_deg"] > PLANE_OK_DEG)

    flagged = [d for d in discs if d["needs_review"]]
    kept = [d for d in discs if not d["needs_review"]]
    return {
        "discs": len(discs),
        "flagged": len(flagged),
        "bad_among_flagged": sum(map(bad, flagged)) / len(flagged) if flagged else float("nan"),
        "bad_among_unflagged": sum(map(bad, kept)) / len(kept) if kept else float("nan"),
    }


def run(out: Path, model_dir: Path = MODEL_DIR, sources=SOURCES, log=print) -> dict[str, Any]:
    results: dict[str, Any] = {}
    scored = {
        "vertebrae_t2": (
            evaluate_t2_case,
            summarise_t2,
            lambda r: (
                f"{r['correct']}/{r['reference_discs']} named right, count {r.get('lumbar_count')} "
                f"({r.get('count_basis')})"
            ),
        ),
        "vertebrae_mixed": (
            evaluate_mixed_case,
            summarise_mixed,
            lambda r: f"{r['detected']}/{r['reference_discs']} detected, order {r['order_right']}/{r['order_pairs']}",
        ),
    }
    for source, (evaluate_case, summarise, describe) in scored.items():
        if source not in sources:
            continue
        rows = []
        for path in sorted((REAL_DIR / source).glob("*_image.nii.gz")):
            r = evaluate_case(path, out / source / path.name.split("_image")[0], model_dir)
            log(
                f"  {r['case']}: {describe(r)}, {r.get('predicted')}, "
                f"errors {[round(e, 1) for e in r['normal_errors_deg']]}, doubts {r.get('doubts')}"
            )
            rows.append(r)
        results[source] = {"rows": rows, "summary": summarise(rows), "flags": flag_report(rows)}
    if "sct_t2_lumbar" in sources:
        path = REAL_DIR / "unlabeled" / "sct_t2_lumbar_image.nii.gz"
        plan, _, message = _plan(path, out / "sct_t2_lumbar", model_dir)
        results["sct_t2_lumbar"] = {
            "message": message,
            "predicted": None if plan is None else [d["label"] for d in plan["discs"]],
            "doubts": None if plan is None else [d["reason"] for d in plan["doubts"]],
        }
        log(f"  sct_t2_lumbar: {results['sct_t2_lumbar']}")
    (out / "real_sources.json").write_text(json.dumps(results, indent=1, default=float))
    return results
