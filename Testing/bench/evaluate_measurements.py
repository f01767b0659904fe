"""Automatic measurement from the true label maps of many diagnostic-resolution phantoms vs truth.json.

.venv/bin/python Testing/bench/evaluate_measurements.py [N_CASES] [SPACING_MM]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from planning_evaluation import EVAL_SEED_BASE, variation
from SpineLocalizerLib.phantom.generate import generate_case
from SpineLocalizerLib.phantom.params import sample_params
from SpineMeasureLib.validation import compare_case, summarise


def one(i: int, spacing: float, work: str) -> list[dict]:
    over = variation(i)
    over["highres_spacing_mm"] = spacing
    folder = Path(work) / f"case{i}"
    generate_case(sample_params(EVAL_SEED_BASE + 1000 + i, **over), folder, highres=True, stacks=False, overview=False)
    return compare_case(folder)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    spacing = float(sys.argv[2]) if len(sys.argv) > 2 else 0.8
    t = time.perf_counter()
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(processes) as pool:
        pairs = [p for rows in pool.map(one, range(n), [spacing] * n, [tmp] * n) for p in rows]
    Path("out").mkdir(exist_ok=True)
    Path(f"out/eval_measurements_{spacing:g}mm.json").write_text(json.dumps(pairs, indent=1))
    table = summarise(pairs)
    print(
        f"automatic measurement from true label maps, {n} phantoms at {spacing} mm (seeds {EVAL_SEED_BASE + 1000}+), {time.perf_counter() - t:.0f} s"
    )
    print("| measurement | n | MAE | bias | max abs error |")
    print("| --- | --- | --- | --- | --- |")
    for key, row in table.items():
        if "mae" in row:
            print(f"| {key} | {row['n']} | {row['mae']:.2f} | {row['bias']:+.2f} | {row['max_abs']:.2f} |")
    for key, row in table.items():
        if "mean_abs_rel_error" in row:
            print(
                f"| {key} | {row['n']} | {100 * row['mean_abs_rel_error']:.1f} % | | {100 * row['max_abs_rel_error']:.1f} % |"
            )
    if "msu_class" in table:
        m = table["msu_class"]
        print(f"| msu_class | {m['n']} ({m['herniated']} herniated) | agreement {100 * m['agreement']:.1f} % | | |")


if __name__ == "__main__":
    main()
