"""Planning from the true disc label maps of many phantoms: prints the accuracy table quoted in the README.

.venv/bin/python Testing/bench/evaluate_planning.py [N_CASES]
"""

from __future__ import annotations

import sys
import time

from planning_evaluation import evaluate, summary


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    t = time.perf_counter()
    rows = evaluate(n)
    s = summary(rows)
    print(
        f"planning from true disc labels, {s['cases']} phantoms (seeds 100000+), {s['discs']} discs, {time.perf_counter() - t:.0f} s"
    )
    print("| metric | median | p95 | max |")
    print("| --- | --- | --- | --- |")
    print(
        f"| plane normal error (deg) | {s['normal_median_deg']:.2f} | {s['normal_p95_deg']:.2f} | {s['normal_max_deg']:.2f} |"
    )
    print(
        f"| scan centre error (mm) | {s['center_median_mm']:.2f} | {s['center_p95_mm']:.2f} | {s['center_max_mm']:.2f} |"
    )
    print(f"disc names correct: {100 * s['names_correct']:.1f} %, lowest quality factor {s['quality_min']:.2f}")
    worst = sorted(rows, key=lambda r: -r["center_error_mm"])[:5]
    for r in worst:
        print(
            f"  worst: case {r['case']} {r['disc']} ({r['contrast']}, {r['lumbar_count']} lumbar): {r['normal_error_deg']:.2f} deg, {r['center_error_mm']:.2f} mm"
        )


if __name__ == "__main__":
    main()
