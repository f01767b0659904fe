"""Planning accuracy against phantom truth: plane normal and scan-centre errors per disc.

Evaluation seeds start at 100000 and never overlap the training seeds of the networks (documented in README).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from SpineLocalizerLib.geometry import angle_between_deg
from SpineLocalizerLib.phantom.generate import generate_case
from SpineLocalizerLib.phantom.params import sample_params
from SpineLocalizerLib.planning.plan import build_plan
from SpineLocalizerLib.volume_io import read_volume

EVAL_SEED_BASE = 100_000


def variation(i: int) -> dict[str, Any]:
    """Overrides that sweep contrasts, curvature extremes and 4/5/6 lumbar vertebrae across case index i."""
    rng = np.random.default_rng(EVAL_SEED_BASE + i)
    over: dict[str, Any] = {"contrast": "t1" if i % 2 else "t2"}
    kind = i % 5
    if kind == 0:
        over["lordosis_deg"] = float(rng.uniform(60, 75))
    elif kind == 1:
        over["lordosis_deg"] = float(rng.uniform(5, 20))
    elif kind == 2:
        over["scoliosis_deg"] = float(rng.choice([-1, 1]) * rng.uniform(15, 25))
    elif kind == 3:
        over["axial_rotation_deg"] = float(rng.choice([-1, 1]) * rng.uniform(4, 7))
        over["pose_tilt_deg"] = tuple(float(x) for x in rng.uniform(-12, 12, size=3))
    if i % 10 == 3:
        over["lumbar_count"] = 4
    elif i % 10 == 7:
        over["lumbar_count"] = 6
    return over


def evaluate_case(i: int, workdir: Path) -> list[dict[str, Any]]:
    seed = EVAL_SEED_BASE + i
    params = sample_params(seed, **variation(i))
    folder = workdir / f"case{i}"
    generate_case(params, folder, highres=False, stacks=False, overview=False)
    truth = json.loads((folder / "truth.json").read_text())
    labels = read_volume(folder / truth["files"]["disc_labels"])
    plan, _ = build_plan(labels, lumbar_count=params.lumbar_count)
    by_value = {d["value"]: d for d in truth["discs"]}
    rows = []
    for disc in plan["discs"]:
        ref = by_value[disc["value"]]
        rows.append(
            {
                "case": i,
                "seed": seed,
                "contrast": params.contrast,
                "lumbar_count": params.lumbar_count,
                "disc": ref["label"],
                "name_matches": disc["label"] == ref["label"],
                "normal_error_deg": angle_between_deg(np.asarray(disc["normal_lps"]), np.asarray(ref["normal_lps"])),
                "center_error_mm": float(
                    np.linalg.norm(np.asarray(disc["scan_center_lps"]) - ref["posterior_edge_lps"])
                ),
                "quality_factor": plan["quality_factor"],
            }
        )
    return rows


def evaluate(n_cases: int, *, processes: int = 2) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if processes > 1:
            from SpineLocalizerLib.parallel import process_pool

            with process_pool(processes) as pool:
                results = list(pool.map(evaluate_case, range(n_cases), [work] * n_cases))
        else:
            results = [evaluate_case(i, work) for i in range(n_cases)]
    return [row for rows in results for row in rows]


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    normal = np.array([r["normal_error_deg"] for r in rows])
    center = np.array([r["center_error_mm"] for r in rows])
    return {
        "cases": len({r["case"] for r in rows}),
        "discs": len(rows),
        "normal_median_deg": float(np.median(normal)),
        "normal_p95_deg": float(np.percentile(normal, 95)),
        "normal_max_deg": float(normal.max()),
        "center_median_mm": float(np.median(center)),
        "center_p95_mm": float(np.percentile(center, 95)),
        "center_max_mm": float(center.max()),
        "names_correct": float(np.mean([r["name_matches"] for r in rows])),
        "quality_min": float(min(r["quality_factor"] for r in rows)),
    }
