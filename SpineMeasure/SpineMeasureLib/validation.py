"""Automatic measurement on phantoms against their truth.json (the accuracy table of the README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from SpineLocalizerLib.planning.plan import plan_for_labels
from SpineLocalizerLib.volume_io import read_volume

from .auto_mode import measure_plan
from .results import Row

LENGTHS = (
    "disc_height_mm",
    "foraminal_height_left_mm",
    "foraminal_height_right_mm",
    "canal_diameter_mm",
    "dural_sac_ap_mm",
    "lateral_recess_depth_left_mm",
    "lateral_recess_depth_right_mm",
)
ANGLES = (
    "facet_angle_left_deg",
    "facet_angle_right_deg",
    "lateral_recess_angle_left_deg",
    "lateral_recess_angle_right_deg",
    "offset_angle_deg",
)
AREAS = ("canal_area_mm2", "psoas_area_left_mm2", "psoas_area_right_mm2")


def compare_case(folder: Path) -> list[dict[str, Any]]:
    truth = json.loads((folder / "truth.json").read_text())
    labels = read_volume(folder / truth["files"]["highres_labels"])
    plan = plan_for_labels(labels, truth["lumbar_count"])
    reference = {"discs": [{"label": d["label"], "normal_lps": d["normal_lps"]} for d in truth["discs"]]}
    rows = measure_plan(labels, plan, reference_plan=reference)
    return pair_with_truth(rows, truth)


def pair_with_truth(rows: list[Row], truth: dict[str, Any]) -> list[dict[str, Any]]:
    by_level = {d["label"]: d for d in truth["discs"]} | {v["label"]: v for v in truth["vertebrae"]}
    out = []
    for r in rows:
        ref = by_level.get(r.level, {})
        expected: float | str | None
        if r.measurement == "offset_angle_deg":
            expected = 0.0  # the reference plane is the true disc plane
        elif r.measurement == "msu_class":
            expected = ref.get("msu_class") or "none"
        else:
            expected = ref.get(r.measurement)
        if expected is None or r.status != "ok":
            continue
        out.append({"level": r.level, "measurement": r.measurement, "value": r.value, "truth": expected})
    return out


def summarise(pairs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    table = {}
    for keys, kind in ((LENGTHS, "abs"), (ANGLES, "abs"), (AREAS, "rel")):
        for key in keys:
            ps = [p for p in pairs if p["measurement"] == key]
            if not ps:
                continue
            err = np.array([p["value"] - p["truth"] for p in ps], dtype=float)
            if kind == "rel":
                rel = np.abs(err) / np.maximum(np.abs([p["truth"] for p in ps]), 1e-6)
                table[key] = {
                    "n": len(ps),
                    "mean_abs_rel_error": float(rel.mean()),
                    "max_abs_rel_error": float(rel.max()),
                }
            else:
                table[key] = {
                    "n": len(ps),
                    "mae": float(np.abs(err).mean()),
                    "bias": float(err.mean()),
                    "max_abs": float(np.abs(err).max()),
                }
    msu = [p for p in pairs if p["measurement"] == "msu_class"]
    if msu:
        table["msu_class"] = {
            "n": len(msu),
            "agreement": float(np.mean([p["value"] == p["truth"] for p in msu])),
            "herniated": sum(p["truth"] != "none" for p in msu),
        }
    return table
