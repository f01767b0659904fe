"""Held-out evaluation of the network pipeline (prints the tables quoted in the README).

.venv/bin/python Testing/bench/evaluate_pipeline.py phantoms [N] [MODELS]  # synthetic, seeds 100000+
.venv/bin/python Testing/bench/evaluate_pipeline.py real             # ../shared/data/real/vertebrae_t2
.venv/bin/python Testing/bench/evaluate_pipeline.py real B [MODELS]  # one fold (A or B), weights from MODELS
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

from SpineLocalizerLib.networks import MODEL_DIR
from SpineLocalizerLib.networks.evaluation import (
    REAL_CASES_DIR,
    dump,
    evaluate_phantoms,
    evaluate_real_case,
    real_fold,
    summarise,
)
from SpineLocalizerLib.planning.evaluation import EVAL_SEED_BASE


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
        for kind in ("localizer", "sagittal_stack"):
            sub = [r for r in rows if r["input"] == kind]
            if sub:
                k = summarise(sub)
                print(
                    f"  {kind}: spine {k['spine_dice_mean']:.3f}, discs {k['disc_dice_mean']:.3f}, id {k['identification_rate']:.3f}, normal {k['normal_error_median_deg']:.2f} deg"
                )
    else:
        if not REAL_CASES_DIR.exists():
            sys.exit(f"real data not found at {REAL_CASES_DIR}")
        fold = argv[2] if len(argv) > 2 else None
        models = Path(argv[3]) if len(argv) > 3 else MODEL_DIR
        print(f"fold {fold or 'all'}, weights from {models}, grid axes {grid_axes}")
        rows = []
        for image in real_fold(fold):
            labels = image.with_name(image.name.replace("_image", "_vertebrae"))
            r = evaluate_real_case(image, labels, model_dir=models, grid_axes=grid_axes)
            rows.append(r)
            print(
                f"{r['case']}: {r['correct']}/{r['reference_discs']} identified, predicted {r['predicted']}, normal errors {[round(e, 1) for e in r['normal_errors_deg']]}",
                flush=True,
            )
        dump(rows, Path(f"out/eval_pipeline_real{'_' + fold if fold else ''}.json"))
        # Cases the level classifier was fine-tuned on (its card lists them) are reported apart, never mixed in.
        card = json.loads((models / "levels.json").read_text()) if (models / "levels.json").exists() else {}
        seen = set(card.get("training_data", {}).get("user_cases", []))
        if seen & {r["case"] for r in rows}:
            trained = summarise([r for r in rows if r["case"] in seen])
            print(
                f"  ({trained['cases']} cases the classifier was fine-tuned on: identification "
                f"{trained['identification_rate']:.3f}; not counted below)"
            )
            rows = [r for r in rows if r["case"] not in seen]
        if not rows:
            sys.exit("every case of this fold was used in training: evaluate the other fold")
        s = summarise(rows)
        print(
            f"real vertebrae_t2 ({s['cases']} held-out cases, fold {fold or 'all'}, resampled to 4 mm x 1.5 mm sagittal): identification {s['identification_rate']:.3f}, "
            f"normal error median {s['normal_error_median_deg']:.2f} deg, p95 {s['normal_error_p95_deg']:.2f} deg; "
            f"discs found whatever their name (< 6 mm per axis) {s['found_any_name_rate']:.3f}"
        )


if __name__ == "__main__":
    main()
