"""`spine-measure`: measurements from label maps (automatic) or reader landmarks, and agreement statistics.

spine-measure [IMAGE ...] --labels LABELMAP [--plan plan.json] [--landmarks FILE] [--reference-plan plan.json] --out DIR
spine-measure agreement A.csv B.csv --out DIR [--names AI,R1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from SpineLocalizerLib.cli_errors import run_command
from SpineLocalizerLib.json_files import dumps_standard
from SpineLocalizerLib.labels import all_labels
from SpineLocalizerLib.output_folder import output_folder
from SpineLocalizerLib.plan_file import read_plan
from SpineLocalizerLib.volume_io import read_volume

from .agreement import agreement_table
from .catalogue import Thresholds
from .results import read_csv, write_results

KNOWN_CODES = {code for n in (4, 5, 6) for code in all_labels(n).values()}  # every code a map of ours can hold


def _measure(args) -> int:
    from SpineLocalizerLib.planning.plan import plan_for_labels

    from .auto_mode import measure_plan
    from .figures import level_png
    from .landmark_mode import load_landmarks, measure_landmarks

    thresholds = Thresholds(
        recess_angle_deg=args.recess_angle_threshold, recess_angle_flag_below=not args.recess_angle_flag_above
    )
    rows = []
    labels = image = plan = None
    if args.labels:
        labels = read_volume(args.labels)
        if not labels.array.any():
            raise ValueError(f"{args.labels}: the label map is empty; nothing can be measured")
        found = sorted(int(v) for v in np.unique(labels.array) if v)
        if not any(v in KNOWN_CODES for v in found):
            raise ValueError(
                f"{args.labels}: none of its labels ({', '.join(map(str, found[:8]))}{' ...' if len(found) > 8 else ''}) "
                "is one of the project's codes (docs/phantom.md); convert the map to those codes first"
            )
        for path in args.images:
            vol = read_volume(path)
            if not vol.same_grid(labels):
                raise ValueError(
                    f"{path} and {args.labels} are on different grids; resample the label map onto the image first"
                )
            image = image or vol
        plan = read_plan(args.plan, labels) if args.plan else plan_for_labels(labels, args.lumbar_count)
        reference = read_plan(args.reference_plan) if args.reference_plan else None
        rows += measure_plan(labels, plan, thresholds, reference)
    if args.landmarks:
        rows += measure_landmarks(load_landmarks(args.landmarks), thresholds)
    if not args.labels and not args.landmarks:
        raise ValueError("give --labels (automatic measurement) and/or --landmarks (reader measurement)")
    inputs = [Path(p) for p in [*args.images, args.labels, args.plan, args.reference_plan, args.landmarks] if p]
    with output_folder(args.out, command="measure", inputs=inputs, force=args.force) as stage:
        write_results(rows, stage)
        if labels is not None and plan is not None:
            for disc in plan["discs"]:
                level_rows = [r for r in rows if r.level == disc["label"]]
                if level_rows:
                    level_png(image or labels, disc, level_rows, stage / f"level_{disc['label']}.png")
    ok = sum(r.status == "ok" for r in rows)
    print(f"{ok} measurements ({len(rows) - ok} not measurable) -> {args.out}", file=sys.stderr)
    return 0


def _agreement(args) -> int:
    from .figures import bland_altman_png

    a, b = read_csv(Path(args.a)), read_csv(Path(args.b))
    names = (args.names or "A,B").split(",")
    table = agreement_table(a, b)
    if not table:
        raise ValueError(f"{args.a} and {args.b} share no numeric measurement at the same level")
    with output_folder(args.out, command="agreement", inputs=[Path(args.a), Path(args.b)], force=args.force) as stage:
        (stage / "agreement.json").write_text(dumps_standard(table, indent=1))
        keys = ["measurement", "n", "bias", "sd", "loa_low", "loa_high", "mad", "icc_2_1"]
        lines = [",".join(keys)] + [
            ",".join(str(round(t[k], 4)) if isinstance(t[k], float) else str(t[k]) for k in keys) for t in table
        ]
        (stage / "agreement.csv").write_text("\n".join(lines) + "\n")
        bland_altman_png(a, b, stage / "bland_altman.png", *names[:2])
    for t in table:
        print(
            f"{t['measurement']}: n={t['n']} bias {t['bias']:.3f} LoA [{t['loa_low']:.3f}, {t['loa_high']:.3f}] ICC(2,1) {t['icc_2_1']:.3f}",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "agreement":
        ap = argparse.ArgumentParser(
            prog="spine-measure agreement", description="Bland-Altman, ICC(2,1) and MAD between two measurement CSVs"
        )
        ap.add_argument("a")
        ap.add_argument("b")
        ap.add_argument("--out", required=True)
        ap.add_argument(
            "--force",
            action="store_true",
            help="replace output files that were changed since this command wrote them",
        )
        ap.add_argument("--names", help="labels of the two sets, e.g. AI,R1")
        ap.add_argument("--debug", action="store_true", help="show the traceback of an error (for a bug report)")
        args = ap.parse_args(argv[1:])
        func = _agreement
    else:
        ap = argparse.ArgumentParser(
            prog="spine-measure", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        ap.add_argument("images", nargs="*", help="image(s) on the label map's grid, used for the annotated pictures")
        ap.add_argument("--labels", help="label map in the project codes (docs/phantom.md)")
        ap.add_argument(
            "--plan", help="plan.json giving the disc and vertebra planes (default: planned from the label map's discs)"
        )
        ap.add_argument("--reference-plan", help="a reference plan; adds offset_angle_deg per disc")
        ap.add_argument("--landmarks", help="reader landmark JSON (docs/measurements.md)")
        ap.add_argument("--lumbar-count", type=int, choices=(4, 5, 6))
        ap.add_argument("--recess-angle-threshold", type=float, default=30.0)
        ap.add_argument(
            "--recess-angle-flag-above",
            action="store_true",
            help="flag recess angles above the threshold (LVP text) instead of below",
        )
        ap.add_argument("--out", required=True)
        ap.add_argument(
            "--force",
            action="store_true",
            help="replace output files that were changed since this command wrote them",
        )
        ap.add_argument("--debug", action="store_true", help="show the traceback of an error (for a bug report)")
        args = ap.parse_args(argv)
        func = _measure
    return run_command(ap.prog, lambda: func(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
