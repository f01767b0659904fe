"""Measurements from the images alone (structure network, no true labels) on held-apart phantoms vs truth.json.

.venv/bin/python Testing/bench/evaluate_image_measurements.py [N_CASES] [PROCESSES] [MODEL_DIR]

Per phantom (seeds EVAL_SEED_BASE + 3000 + i: apart from the structure network's training seeds 1-160 and its
validation seeds 50001-50008, and from the planning and label-map evaluations):
- the localizer is planned by the networks (the chain a user runs); rows are paired with the true disc each planned
  disc lies on, so a naming error of the plan (counted and printed) does not count as a measurement error;
- "volume": the diagnostic volume (0.8 mm) segmented along that plan and measured;
- "slice groups": each planned axial slice group resliced from it, segmented slice by slice and measured;
- "true planes": the volume segmented and measured in the true disc planes (segmentation error alone).
Rows the network withholds in use (NETWORK_CANNOT: herniation, foraminal height) are measured here, to decide.
Dice per structure class is taken on the volume's segmentation grid against the true labels. MODEL_DIR: other
structure weights than the shipped ones. Writes out/eval_image_measurements.json (or
out/eval_image_measurements_<MODEL_DIR name>.json) and prints the tables of docs/results.md.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from planning_evaluation import EVAL_SEED_BASE, variation
from SpineLocalizerLib.networks.structure_classes import N_STRUCTURE_CLASSES, STRUCTURE_CLASSES, classes_of
from SpineLocalizerLib.phantom.generate import generate_case
from SpineLocalizerLib.phantom.params import sample_params
from SpineLocalizerLib.pipeline import plan_from_localizer
from SpineLocalizerLib.planning.axial_reslice import reslice_disc
from SpineLocalizerLib.volume_io import from_sitk, read_volume
from SpineMeasureLib.catalogue import Thresholds
from SpineMeasureLib.measure_sources import measure_image
from SpineMeasureLib.validation import pair_with_truth, summarise

SEED_OFFSET = 3000
# Structure weights to evaluate (the shipped ones unless a folder is given); read by every worker process.
MODEL = Path(sys.argv[3]) if len(sys.argv) > 3 else None


def _dice(seg, truth_labels, covered) -> dict[str, list[int]]:
    """(intersection, sum) per class on the voxels the network saw, against the true labels sampled there."""
    from scipy import ndimage

    idx = np.indices(seg.array.shape).reshape(3, -1).T
    ijk = truth_labels.world_to_index(seg.index_to_world(idx)).T
    true = ndimage.map_coordinates(truth_labels.array, ijk, order=0, mode="constant", cval=0).reshape(seg.array.shape)
    a, b = classes_of(seg.array)[covered], classes_of(true)[covered]
    return {
        STRUCTURE_CLASSES[c]: [int(((a == c) & (b == c)).sum()), int((a == c).sum() + (b == c).sum())]
        for c in range(1, N_STRUCTURE_CLASSES)
    }


def _renamed(rows, plan: dict, truth: dict) -> tuple[list, int]:
    """Rows with each planned level renamed to the true disc (or vertebra) nearest to it (< 10 mm), so that a
    plan's naming error (e.g. a four-lumbar spine read as five) is counted apart from the measurement error; and
    how many planned discs were misnamed."""
    names, wrong = {}, 0
    for kind, key in (("discs", "centroid_lps"), ("vertebrae", "center_lps")):
        for d in plan.get(kind, []):
            near = min(truth[kind], key=lambda t: np.linalg.norm(np.subtract(t[key], d[key])))
            if np.linalg.norm(np.subtract(near[key], d[key])) < 10.0:
                names[d["label"]] = near["label"]
                wrong += kind == "discs" and near["label"] != d["label"]
    out = []
    for r in rows:
        if r.level in names:
            r.level = names[r.level]
            out.append(r)
    return out, wrong


def one(i: int, work: str) -> dict:
    seed = EVAL_SEED_BASE + SEED_OFFSET + i
    over = variation(i) | {"highres_spacing_mm": 0.8}
    folder = Path(work) / f"case{i}"
    generate_case(sample_params(seed, **over), folder, highres=True, stacks=False, overview=False)
    truth = json.loads((folder / "truth.json").read_text())
    highres = read_volume(folder / truth["files"]["highres"])
    true_labels = read_volume(folder / truth["files"]["highres_labels"])
    plan, _ = plan_from_localizer([read_volume(folder / truth["files"]["localizer"])])
    th = Thresholds()
    out: dict = {"case": i, "seed": seed, "pairs": {}, "times_s": {}}
    t = time.perf_counter()
    vol = measure_image(highres, plan=plan, level=None, thresholds=th, reference=None, withhold=False, model_dir=MODEL)
    out["times_s"]["volume"] = time.perf_counter() - t
    rows, out["misnamed_discs"] = _renamed(vol.rows, plan, truth)
    out["pairs"]["volume"] = pair_with_truth(rows, truth)
    out["dice"] = _dice(vol.labels, true_labels, vol.covered)
    true_plan = {
        "discs": [d for d in truth["discs"] if d["label"].split("-")[0].startswith("L") or d["label"] == "T12-L1"]
    }
    true_plan["vertebrae"] = plan.get("vertebrae", [])
    tp = measure_image(
        highres, plan=true_plan, level=None, thresholds=th, reference=None, withhold=False, model_dir=MODEL
    )
    out["pairs"]["true planes"] = pair_with_truth(_renamed(tp.rows, true_plan, truth)[0], truth)
    pairs, times = [], []
    for disc in plan["discs"]:
        if not disc["label"].startswith("L"):
            continue
        group = from_sitk(reslice_disc(highres, disc))
        t = time.perf_counter()
        m = measure_image(group, plan=plan, level=None, thresholds=th, reference=None, withhold=False, model_dir=MODEL)
        times.append(time.perf_counter() - t)
        level_rows, _ = _renamed([r for r in m.rows if r.level == disc["label"]], plan, truth)
        pairs += pair_with_truth(level_rows, truth)
    out["pairs"]["slice groups"] = pairs
    out["times_s"]["slice_group"] = times
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _table(pairs: list[dict]) -> list[str]:
    lines = ["| measurement | n | MAE / mean abs rel error | bias | max |", "| --- | --- | --- | --- | --- |"]
    for key, row in summarise(pairs).items():
        if "mae" in row:
            lines.append(f"| {key} | {row['n']} | {row['mae']:.2f} | {row['bias']:+.2f} | {row['max_abs']:.2f} |")
        elif "mean_abs_rel_error" in row:
            lines.append(
                f"| {key} | {row['n']} | {100 * row['mean_abs_rel_error']:.1f} % | | {100 * row['max_abs_rel_error']:.1f} % |"
            )
    return lines


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(processes) as pool:
        cases = list(pool.map(one, range(n), [tmp] * n))
    Path("out").mkdir(exist_ok=True)
    name = "eval_image_measurements" + (f"_{MODEL.name}" if MODEL else "") + ".json"
    Path("out", name).write_text(json.dumps(cases, indent=1))
    seeds = f"{EVAL_SEED_BASE + SEED_OFFSET}-{EVAL_SEED_BASE + SEED_OFFSET + n - 1}"
    print(
        f"measurements from the images alone, {n} held-apart phantoms (seeds {seeds}), {time.perf_counter() - t:.0f} s"
    )
    for mode in ("volume", "slice groups", "true planes"):
        print(f"\n{mode}:")
        pairs = [p for c in cases for p in c["pairs"][mode]]
        print("\n".join(_table(pairs)))
        msu = summarise(pairs).get("msu_class")
        if msu:
            print(
                f"| msu_class | {msu['n']} ({msu['herniated']} herniated) | agreement {100 * msu['agreement']:.1f} % | | |"
            )
    print("\n| structure | Dice |\n| --- | --- |")
    for name in STRUCTURE_CLASSES[1:]:
        inter = sum(c["dice"][name][0] for c in cases)
        total = sum(c["dice"][name][1] for c in cases)
        print(f"| {name} | {2 * inter / total:.3f} |" if total else f"| {name} | (absent) |")
    misnamed = sum(c["misnamed_discs"] for c in cases)
    print(f"\nplanned discs misnamed (rows paired with the true disc they lie on): {misnamed}")
    vol_t = [c["times_s"]["volume"] for c in cases]
    grp_t = [x for c in cases for x in c["times_s"]["slice_group"]]
    print(
        f"\ntime per diagnostic volume: median {np.median(vol_t):.1f} s; per slice group: median {np.median(grp_t):.2f} s"
    )
    print(f"peak memory of a worker (phantom generation included): {max(c['peak_rss_mb'] for c in cases):.0f} MB")


if __name__ == "__main__":
    main()
