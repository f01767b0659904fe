"""`spine-measure`: measurements from the image alone (structure network), label maps or reader landmarks, and
agreement statistics.

spine-measure IMAGE [--plan plan.json | --level L4-L5] --out DIR       (segments, writes segmentation.nii.gz)
spine-measure [IMAGE ...] --labels LABELMAP [--labels-from auto|project|spineps|totalspineseg|totalsegmentator|vibe]
              [--instances SEG_VERT] [--plan plan.json] [--landmarks FILE] [--reference-plan plan.json] --out DIR
spine-measure agreement A.csv B.csv --out DIR [--names AI,R1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from SpineLocalizerLib.cli_errors import run_command
from SpineLocalizerLib.json_files import dumps_standard
from SpineLocalizerLib.labels import is_disc_name
from SpineLocalizerLib.output_folder import output_folder
from SpineLocalizerLib.plan_file import plan_within, read_plan
from SpineLocalizerLib.planning.plan import check_whole_numbers
from SpineLocalizerLib.volume_io import read_volume, write_volume

from .agreement import agreement_table
from .catalogue import Thresholds
from .label_conventions import CONVENTION_NAMES
from .results import read_csv, write_results


def _measure(args) -> int:
    from .figures import level_png, segmentation_png
    from .landmark_mode import load_landmarks, measure_landmarks
    from .measure_sources import measure_label_map

    thresholds = Thresholds(
        recess_angle_deg=args.recess_angle_threshold, recess_angle_flag_below=not args.recess_angle_flag_above
    )
    rows = []
    measured = image = None
    reference = read_plan(args.reference_plan) if args.reference_plan else None
    if args.level is not None and not is_disc_name(args.level):
        raise ValueError(f"--level {args.level!r} is not a disc level; give one like L4-L5 or L5-S1")
    if args.labels:
        labels = read_volume(args.labels)
        check_whole_numbers(labels, str(args.labels))
        if not labels.array.any():
            raise ValueError(f"{args.labels}: the label map is empty; nothing can be measured")
        instances = read_volume(args.instances) if args.instances else None
        for path in args.images:
            vol = read_volume(path)
            if not vol.same_grid(labels):
                raise ValueError(
                    f"{path} and {args.labels} are on different grids; resample the label map onto the image first"
                )
            image = image or vol
        convention = None if args.labels_from == "auto" else args.labels_from
        plan = None
        if args.plan and convention in (None, "project"):
            # A slice group's map (a slab a few cm thick) holds one disc of its plan: measured at the discs inside
            # it; a volume's map is checked against every disc (a plan of another case is refused).
            extent = np.asarray(labels.array.shape) * np.asarray(labels.spacing)
            plan = (
                plan_within(read_plan(args.plan), labels, args.plan)
                if extent.min() < 40.0
                else read_plan(args.plan, labels)
            )
        elif args.plan:
            plan = read_plan(args.plan)
        measured = measure_label_map(
            labels,
            convention=convention,
            instances=instances,
            plan=plan,
            lumbar_count=args.lumbar_count,
            thresholds=thresholds,
            reference=reference,
        )
        rows += measured.rows
    elif args.images and not args.landmarks:
        # No label map: the structure network segments the image, and the segmentation is written out so a reader
        # can check and correct it, then measure again with --labels.
        from .image_structures import level_from_name
        from .measure_sources import measure_image

        if len(args.images) > 1:
            raise ValueError("measuring from the image alone takes one image; give the others separately")
        image = read_volume(args.images[0])
        measured = measure_image(
            image,
            plan=read_plan(args.plan) if args.plan else None,
            level=args.level or level_from_name(args.images[0]),
            thresholds=thresholds,
            reference=reference,
        )
        rows += measured.rows
    if args.landmarks:
        rows += measure_landmarks(load_landmarks(args.landmarks), thresholds)
    if not args.labels and not args.landmarks and not args.images:
        raise ValueError(
            "give an image (measured by the structure network), --labels (a label map) and/or --landmarks "
            "(reader measurement)"
        )
    if args.level is not None:
        rows = [r for r in rows if r.level == args.level]
        if not rows:
            raise ValueError(f"nothing measured at {args.level}: the inputs hold no disc of that level")
    inputs = [
        Path(p)
        for p in [*args.images, args.labels, args.instances, args.plan, args.reference_plan, args.landmarks]
        if p
    ]
    with output_folder(args.out, command="measure", inputs=inputs, force=args.force) as stage:
        write_results(rows, stage)
        if measured is not None:
            if measured.convention == "network":
                write_volume(measured.labels, stage / "segmentation.nii.gz")
                (stage / "segmentation.json").write_text(
                    dumps_standard({"source": "structure network", "notes": measured.notes}, indent=1)
                )
            elif measured.convention != "project":
                write_volume(measured.labels, stage / "labels_project_codes.nii.gz")
                (stage / "labels_import.json").write_text(
                    dumps_standard({"convention": measured.convention, "notes": measured.notes}, indent=1)
                )
            for disc in measured.plan["discs"]:
                level_rows = [r for r in rows if r.level == disc["label"]]
                if level_rows:
                    level_png(image or measured.labels, disc, level_rows, stage / f"level_{disc['label']}.png")
                if measured.convention == "network" and image is not None:
                    segmentation_png(image, measured.labels, disc, stage / f"segmentation_{disc['label']}.png")
    for note in measured.notes if measured else []:
        print(f"note: {note}", file=sys.stderr)
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
        ap.add_argument(
            "images",
            nargs="*",
            help="an image measured by the structure network (no --labels), or image(s) on the label map's grid "
            "for the annotated pictures",
        )
        ap.add_argument(
            "--labels",
            help="label map: the project codes (docs/phantom.md) or another tool's (--labels-from; docs/measurements.md)",
        )
        ap.add_argument(
            "--labels-from",
            default="auto",
            choices=("auto", *CONVENTION_NAMES),
            help="the label map's convention (default: told from its values)",
        )
        ap.add_argument("--instances", help="SPINEPS instance mask (seg-vert) that goes with a subregion --labels map")
        ap.add_argument(
            "--plan", help="plan.json giving the disc and vertebra planes (default: planned from the label map's discs)"
        )
        ap.add_argument(
            "--level",
            help="the disc level of an axial slice group measured from the image alone (default: from a file name "
            "such as L4-L5_axial.nii.gz, or from --plan)",
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
