"""Held-out evaluation of the network pipeline (prints the tables quoted in the README).

.venv/bin/python Testing/bench/evaluate_pipeline.py phantoms [N] [MODELS]  # synthetic, seeds 100000+
.venv/bin/python Testing/bench/evaluate_pipeline.py real [MODELS]    # every source in ../shared/data/real
Add --grid-axes=localizer to run the networks on the localizer's own axes (`spine-localizer plan --grid-axes`),
--seeds-from=60000 to run the tuning phantoms instead of the held-out ones (choices are made on those),
--one-pass to draw the output maps from the first disc-network pass only (no half-voxel-shifted second pass),
--coarse to draw them from the 2 mm disc network even where an output network (1 mm) is in MODELS.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from pipeline_evaluation import dump, evaluate_phantoms, summarise
from planning_evaluation import EVAL_SEED_BASE
from SpineLocalizerLib.networks import MODEL_DIR


def main() -> None:
    grid_axes = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--grid-axes=")), "lps")
    seed_base = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--seeds-from=")), EVAL_SEED_BASE))
    fine_output = "--coarse" not in sys.argv[1:]
    shifted_output = "--one-pass" not in sys.argv[1:]
    argv = [sys.argv[0]] + [a for a in sys.argv[1:] if not a.startswith("--")]
    mode = argv[1] if len(argv) > 1 else "phantoms"
    Path("out").mkdir(exist_ok=True)
    t = time.perf_counter()
    if mode == "phantoms":
        n = int(argv[2]) if len(argv) > 2 else 100
        models = Path(argv[3]) if len(argv) > 3 else MODEL_DIR
        rows = evaluate_phantoms(
            n,
            model_dir=models,
            grid_axes=grid_axes,
            seed_base=seed_base,
            fine_output=fine_output,
            shifted_output=shifted_output,
        )
        tuning = seed_base != EVAL_SEED_BASE
        dump(rows, Path(f"out/eval_pipeline_phantoms{'_' + str(seed_base) if tuning else ''}.json"))
        s = summarise(rows)
        kind = "tuning" if tuning else "held-out"
        print(
            f"{s['cases']} {kind} phantoms (seeds {seed_base}+, half 3D localizers, half sagittal multi-slice), "
            f"output maps: {'2 mm network' if not fine_output else 'default'}"
            f"{', one pass' if not shifted_output else ''}, {time.perf_counter() - t:.0f} s"
        )
        print("| metric | ours | LVP (paper) |")
        print("| --- | --- | --- |")
        print(f"| spine localization Dice | {s['spine_dice_mean']:.3f} | 0.93 |")
        print(f"| disc segmentation Dice | {s['disc_dice_mean']:.3f} | 0.92 |")
        print(f"| identification rate (T12-L1 .. lumbosacral) | {s['identification_rate']:.3f} | 0.90 |")
        print(
            f"| plane normal error, median / p95 (deg) | {s['normal_error_median_deg']:.2f} / {s['normal_error_p95_deg']:.2f} | - |"
        )
        print(f"| lumbar count correct | {s['lumbar_count_correct']:.3f} | - |")
        # The sweep holds far more four- and six-lumbar spines than a clinic sees (see variation()): report each
        # count apart and the identification re-weighted to their prevalence (sequence_matching.COUNT_PREVALENCE).
        from SpineLocalizerLib.networks.sequence_matching import COUNT_PREVALENCE

        by_count = {n: [r for r in rows if r["lumbar_count"] == n] for n in (4, 5, 6)}
        ids = {n: summarise(sub)["identification_rate"] for n, sub in by_count.items() if sub}
        mix = sum(COUNT_PREVALENCE[n] * v for n, v in ids.items()) / sum(COUNT_PREVALENCE[n] for n in ids)
        print(
            "  identification by lumbar count: "
            + ", ".join(f"{n}: {v:.3f} ({len(by_count[n])} cases)" for n, v in ids.items())
            + f"; at the clinical mix ({', '.join(f'{n}: {COUNT_PREVALENCE[n]:.1%}' for n in ids)}): {mix:.3f}"
        )
        for n in (4, 6):
            if by_count[n]:
                flagged = np.mean([r["verify_count"] for r in by_count[n]])
                read = np.mean([n in (r["lumbar_count_detected"], r["classifier_count"]) for r in by_count[n]])
                print(
                    f"  {n} lumbar: plan asks to verify the count in {flagged:.2f}, the count read (named or "
                    f"reported by the classifier) in {read:.2f}"
                )
        five = by_count[5]
        if five:
            print(f"  5 lumbar: plan asks to verify the count in {np.mean([r['verify_count'] for r in five]):.2f}")
        for kind in ("localizer", "sagittal_stack"):
            sub = [r for r in rows if r["input"] == kind]
            if sub:
                k = summarise(sub)
                print(
                    f"  {kind}: spine {k['spine_dice_mean']:.3f}, discs {k['disc_dice_mean']:.3f}, id {k['identification_rate']:.3f}, normal {k['normal_error_median_deg']:.2f} deg"
                )
    else:
        real_report(Path(argv[2]) if len(argv) > 2 else MODEL_DIR)


def real_report(models: Path) -> None:
    """One row per real source; cases a network was fine-tuned on (its card lists them) are reported apart."""
    from real_sources import REAL_DIR, run, summarise_t2

    if not REAL_DIR.exists():
        sys.exit(f"real data not found at {REAL_DIR}")
    t = time.perf_counter()
    print(f"weights from {models}")
    results = run(Path("out/real"), models)
    seen = set()
    for card in models.glob("*.json"):
        seen |= set(json.loads(card.read_text()).get("training_data", {}).get("user_cases", []))
    print(f"real sources, {time.perf_counter() - t:.0f} s (4 mm x 1.5 mm sagittal localizer-like volumes)")
    print("| source | cases | identification | detection | relative order | plane error median / p90 (deg) | flagged |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    t2 = results["vertebrae_t2"]["rows"]
    unseen = [r for r in t2 if r["case"] not in seen]
    s = summarise_t2(unseen)
    print(
        f"| vertebrae_t2 (T2{', not trained on' if seen else ''}) | {s['cases']} | {s['identification']:.3f} | "
        f"{s['found_any_name']:.3f} | - | {s['normal_median_deg']:.2f} / {s['normal_p90_deg']:.2f} | {s['flagged']:.2f} |"
    )
    if len(unseen) < len(t2):
        k = summarise_t2([r for r in t2 if r["case"] in seen])
        print(
            f"| vertebrae_t2 (fine-tuned on, not a result) | {k['cases']} | {k['identification']:.3f} | - | - | - | - |"
        )
    m = results["vertebrae_mixed"]["summary"]
    print(
        f"| vertebrae_mixed (T1/T2/TIRM) | {m['cases']} | - | {m['detection']:.3f} | {m['relative_order']:.3f} | "
        f"{m['normal_median_deg']:.2f} / {m['normal_p90_deg']:.2f} | {m['flagged']:.2f} |"
    )
    sct = results["sct_t2_lumbar"]
    print(f"| sct_t2_lumbar (unlabeled) | 1 | - | - | - | - | {sct['predicted']}: {sct['doubts'] or 'not flagged'} |")
    for source in ("vertebrae_t2", "vertebrae_mixed"):
        f = results[source]["flags"]
        print(
            f"  {source} per-disc flags: {f['flagged']}/{f['discs']} flagged; wrong name or plane > 3 deg: "
            f"{f['bad_among_flagged']:.2f} of flagged, {f['bad_among_unflagged']:.2f} of unflagged"
        )


if __name__ == "__main__":
    main()
