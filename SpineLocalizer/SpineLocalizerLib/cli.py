"""`spine-localizer`: scan planning from localizer images.

spine-localizer plan IMAGE [IMAGE ...] --discs LABELMAP [--discs LABELMAP ...] --out DIR
spine-localizer reslice VOLUME --plan plan.json --out DIR [--labels LABELMAP]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .planning.axial_reslice import reslice_disc
from .planning.plan import build_plan
from .planning.protocol import load_protocol
from .planning.writer import write_plan_outputs
from .volume_io import atomic_output_dir, read_volume

PLAN_FILES = ("*.mrk.json", "plan.json", "overview.png")


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


def cmd_plan(args) -> int:
    images = [Path(p) for p in args.images]
    if not args.discs:
        print(
            "spine-localizer plan: --discs LABELMAP is needed (the network path is not available yet)", file=sys.stderr
        )
        return 2
    if len(args.discs) not in (1, len(images)):
        print(
            f"spine-localizer plan: give one --discs per image ({len(images)} images, {len(args.discs)} label maps)",
            file=sys.stderr,
        )
        return 2
    discs = [Path(p) for p in args.discs] * (len(images) if len(args.discs) == 1 else 1)
    protocol = load_protocol(args.protocol)
    failures = 0
    for k, (image_path, label_path) in enumerate(zip(images, discs), start=1):
        out = Path(args.out) if len(images) == 1 else Path(args.out) / _stem(image_path)
        try:
            image = read_volume(image_path)
            labels = read_volume(label_path)
            plan, _ = build_plan(
                labels,
                image=image,
                protocol=protocol,
                lumbar_count=args.lumbar_count,
                input_info={"image": str(image_path), "labels": str(label_path)},
            )
            with atomic_output_dir(out, owned=PLAN_FILES) as stage:
                write_plan_outputs(stage, plan, image)
        except (ValueError, FileNotFoundError) as err:
            failures += 1
            print(f"spine-localizer plan: {image_path}: {err}", file=sys.stderr)
            continue
        flag = "  CHECK PLAN: " + plan["quality"]["message"] if plan["quality"]["needs_review"] else ""
        print(
            f"[{k}/{len(images)}] {image_path.name}: {len(plan['discs'])} discs, quality {plan['quality_factor']:.2f}, "
            f"{plan['timings_s']['total'] * 1000:.0f} ms -> {out}{flag}",
            file=sys.stderr,
        )
    return 1 if failures else 0


def cmd_reslice(args) -> int:
    import json

    import SimpleITK as sitk

    try:
        plan = json.loads(Path(args.plan).read_text())
        volume = read_volume(args.volume)
        labels = read_volume(args.labels) if args.labels else None
        if labels is not None and not labels.same_grid(volume):
            raise ValueError(f"{args.labels} is not on the grid of {args.volume}")
        with atomic_output_dir(args.out, owned=("*_axial.nii.gz", "*_axial_labels.nii.gz")) as stage:
            for disc in plan["discs"]:
                stem = disc["label"].replace("/", "-")
                sitk.WriteImage(reslice_disc(volume, disc), str(stage / f"{stem}_axial.nii.gz"), True)
                if labels is not None:
                    sitk.WriteImage(
                        reslice_disc(labels, disc, labels=True), str(stage / f"{stem}_axial_labels.nii.gz"), True
                    )
    except (ValueError, FileNotFoundError, KeyError, json.JSONDecodeError) as err:
        print(f"spine-localizer reslice: {err}", file=sys.stderr)
        return 2
    print(f"resliced {len(plan['discs'])} slice groups into {args.out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="spine-localizer", description="Lumbar MRI scan planning from localizers.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="plan the scan from localizer image(s)")
    p.add_argument("images", nargs="+", help="localizer volume(s): NIfTI, NRRD or MHA")
    p.add_argument(
        "--discs", action="append", help="disc label map in the project's disc codes (one, or one per image)"
    )
    p.add_argument("--out", required=True, help="output folder (one sub-folder per input when several)")
    p.add_argument("--protocol", help="protocol JSON (default: the bundled lumbar protocol)")
    p.add_argument("--lumbar-count", type=int, choices=(4, 5, 6), help="number of lumbar vertebrae, if not 5")
    p.set_defaults(func=cmd_plan)
    r = sub.add_parser("reslice", help="reslice a volume along the plan's axial slice groups")
    r.add_argument("volume")
    r.add_argument("--plan", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--labels", help="label map on the volume's grid, resliced with nearest neighbour")
    r.set_defaults(func=cmd_reslice)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
