"""`spine-localizer`: scan planning from localizer images.

spine-localizer plan IMAGE [IMAGE ...] --discs LABELMAP [--discs LABELMAP ...] --out DIR
spine-localizer reslice VOLUME --plan plan.json --out DIR [--labels LABELMAP]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_errors import run_command
from .json_files import read_json
from .networks import MODEL_DIR
from .output_folder import finished_run, output_folder, sha256_of
from .plan_file import read_plan
from .planning.axial_reslice import reslice_disc
from .planning.protocol import load_protocol
from .volume_io import read_volume


def positive(kind):
    """An argparse type: a number of `kind` above zero (a step count of -3 trained nothing and wrote weights)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0 (got {text})")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def fraction(text: str) -> float:
    """An argparse type: a share in (0, 1]."""
    value = positive(float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (got {text})")
    return value


def share(text: str) -> float:
    """An argparse type: a share in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (got {text})")
    return value


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


def cmd_plan(args) -> int:
    from .plan_batch import Case, default_jobs, run_cases

    images = [Path(p) for p in args.images]
    if args.discs and len(args.discs) not in (1, len(images)):
        print(
            f"spine-localizer plan: give one --discs per image ({len(images)} images, {len(args.discs)} label maps)",
            file=sys.stderr,
        )
        return 2
    if args.coronal and len(images) != 1:
        print("spine-localizer plan: --coronal pairs with a single sagittal image", file=sys.stderr)
        return 2
    protocol = load_protocol(args.protocol)
    folders = output_subfolders(images)
    cases, skipped = [], 0
    for k, image_path in enumerate(images, start=1):
        out = Path(args.out) if len(images) == 1 else Path(args.out) / folders[k - 1]
        record = _plan_record(image_path, k, args)
        if args.resume and record is not None and finished_run(out, "plan", record):
            skipped += 1
            print(
                f"[{k}/{len(images)}] {image_path.name}: planned before from the same input (resume) -> {out}",
                file=sys.stderr,
            )
            continue
        labels = Path(args.discs[0] if len(args.discs) == 1 else args.discs[k - 1]) if args.discs else None
        cases.append(Case(k, image_path, out, record, labels))
    # Planning from given labels is milliseconds of numpy: worker processes would only add their start-up.
    jobs = 1 if args.discs else (args.jobs or default_jobs(len(cases)))
    failures, doubtful = run_cases(cases, args, protocol, jobs, len(images), skipped)
    if failures:
        return 1
    if args.strict and doubtful:
        print(f"spine-localizer plan --strict: {doubtful} doubtful plan(s) (see CHECK PLAN above)", file=sys.stderr)
        return 3
    return 0


def _plan_record(image_path: Path, k: int, args) -> dict | None:
    """What a plan is made from (every input's sha256 and the settings that change it): the manifest keeps it so
    `--resume` knows a finished case; None for a DICOM folder (its files are not hashed one by one)."""
    paths = [image_path]
    if args.discs:
        paths.append(Path(args.discs[0] if len(args.discs) == 1 else args.discs[k - 1]))
    if args.coronal:
        paths.append(Path(args.coronal))
    if not all(p.is_file() for p in paths):
        return None
    settings = {
        "protocol": sha256_of(Path(args.protocol)) if args.protocol else None,
        "lumbar_count": args.lumbar_count,
        "models": str(Path(args.models).resolve()) if args.models else None,
        "grid_axes": args.grid_axes,
        "series": args.series,
        "trust_header": args.trust_header,
    }
    return {"inputs": [sha256_of(p) for p in paths], "settings": settings}


def output_subfolders(images: list[Path]) -> list[str]:
    """One subfolder name per input: its file stem, made unique where two inputs share a name (the parent
    folder's name is added, then a number), so no plan overwrites another."""
    stems = [_stem(p) for p in images]
    names = [s if stems.count(s) == 1 else f"{p.parent.name}_{s}" for s, p in zip(stems, images)]
    out: list[str] = []
    for name in names:
        unique, n = name, 2
        while unique in out:
            unique, n = f"{name}_{n}", n + 1
        out.append(unique)
    return out


def cmd_reslice(args) -> int:
    import json

    import SimpleITK as sitk

    try:
        volume = read_volume(args.volume)
        plan = read_plan(args.plan, volume)
        labels = read_volume(args.labels) if args.labels else None
        if labels is not None and not labels.same_grid(volume):
            raise ValueError(f"{args.labels} is not on the grid of {args.volume}")
        if not plan.get("discs"):
            raise ValueError(f"{args.plan} has no slice groups (no planned discs): nothing to reslice")
        inputs = [Path(args.volume), Path(args.plan)] + ([Path(args.labels)] if args.labels else [])
        with output_folder(args.out, command="reslice", inputs=inputs, force=args.force) as stage:
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


def cmd_train(args) -> int:
    from .networks.models import recipe_stage
    from .networks.train import train

    if args.stage == "discs_fine":
        weights = _train_fine(args)
        print(
            f"\nwrote {weights} and its card; put them beside the other networks' weights (a --models folder) and "
            "the output maps are drawn from it",
            file=sys.stderr,
        )
        return 0
    stage = "localize" if args.stage == "labels" else args.stage  # one network localizes and labels
    seed = args.seed if args.seed is not None else recipe_stage(stage)["seed"]
    weights = train(
        args.stage,
        Path(args.cache),
        Path(args.out),
        steps=args.steps,
        seed=seed,
        user_folder=Path(args.user_data) if args.user_data else None,
        user_share=args.user_share,
        lr=args.lr,
        threads=args.threads,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
        init_from=Path(args.init_from) if args.init_from else None,
        precision=args.precision,
        width=args.width,
        sacrum_share=args.sacrum_share,
        targets=args.targets,
        level_competition=args.level_competition,
        compile=args.compile,
    )
    print(f"\nwrote {weights} and its card; use them with `spine-localizer plan --models {args.out}`", file=sys.stderr)
    return 0


def _train_fine(args) -> Path:
    from .networks.models import recipe_stage
    from .networks.train_fine import train_fine

    unused = [
        f"--{n.replace('_', '-')}"
        for n in ("user_data", "width", "sacrum_share", "targets", "level_competition")
        if getattr(args, n) is not None
    ]
    if args.compile == "on":
        unused.append("--compile on (its box-shaped patches change size from step to step)")
    if unused:
        raise SystemExit(
            f"--stage discs_fine fine-tunes the disc weights of --init-from with a 1 mm head; {', '.join(unused)} do not apply"
        )
    return train_fine(
        Path(args.cache),
        Path(args.out),
        discs_from=Path(args.init_from) if args.init_from else MODEL_DIR,
        steps=args.steps,
        seed=args.seed if args.seed is not None else recipe_stage("discs_fine")["seed"],
        lr=args.lr,
        threads=args.threads or 2,
        precision=args.precision,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )


def cmd_scene(args) -> int:
    import json
    import tempfile

    from .scene import save_mrb
    from .scene.volumes import build_case_scene

    out = Path(args.out)
    if out.suffix.lower() != ".mrb" or out.is_dir():
        print(f"spine-localizer scene: --out {out} must name a .mrb file (e.g. case.mrb)", file=sys.stderr)
        return 2
    try:
        image = read_volume(args.image)
        plan = read_plan(args.plan, image)
        discs = read_volume(args.discs) if args.discs else None
        measurements = read_json(args.measurements, "measurements file") if args.measurements else None
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as err:
        print(f"spine-localizer scene: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        scene, _ = build_case_scene(image, plan, discs, measurements, tmp)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_mrb(scene, args.out)
        if args.screenshot:
            from .scene.render import render_3d

            render_3d(scene, args.screenshot)
            shot = Path(args.screenshot)
            if not shot.is_file() or shot.stat().st_size == 0:
                print(
                    f"spine-localizer scene: wrote {args.out}, but the screenshot {shot} could not be written "
                    "(check that its folder exists and is writable)",
                    file=sys.stderr,
                )
                return 2
    print(f"wrote {args.out}: open it in 3D Slicer (File > Open Data)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="spine-localizer", description="Lumbar MRI scan planning from localizers.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error (for a bug report)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", parents=[common], help="plan the scan from localizer image(s)")
    p.add_argument("images", nargs="+", help="localizer volume(s): NIfTI, NRRD, MHA or a DICOM series folder")
    p.add_argument(
        "--discs", action="append", help="disc label map in the project's disc codes (one, or one per image)"
    )
    p.add_argument("--coronal", help="a coronal localizer to fuse with the (single) sagittal one")
    p.add_argument("--series", help="the DICOM series UID of the localizer, where its folder holds several")
    p.add_argument(
        "--models",
        help="folder with localize/discs weights and cards (default: the shipped SpineLocalizer/Resources/Models)",
    )
    p.add_argument("--out", required=True, help="output folder (one sub-folder per input when several)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace output files that were changed since this command wrote them (hand-edited markups)",
    )
    p.add_argument("--protocol", help="protocol JSON (default: the bundled lumbar protocol)")
    p.add_argument(
        "--lumbar-count",
        type=int,
        choices=(4, 5, 6),
        help="number of lumbar vertebrae, when known (default: five unless the images show another count)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 3 when a plan is doubtful (count assumed unusual, discs missing, low quality)",
    )
    p.add_argument(
        "--jobs",
        type=positive(int),
        help="worker processes for a batch of inputs (default: one per core, at most 2; 1 plans in this process)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip the inputs whose output folder already holds a whole plan made from the same input and settings",
    )
    p.add_argument(
        "--grid-axes",
        choices=("lps", "localizer"),
        default="lps",
        help="axes the networks run on: lps (default) or the localizer's own when tilted < 20 deg (README: disc "
        "Dice +0.01 on 2 mm localizers, but more wrong lumbar counts on held-out phantoms)",
    )
    p.add_argument(
        "--trust-header",
        action="store_true",
        help="plan the image as its header orients it even where its content looks flipped (by default such an "
        "image is refused: its plan would be mirrored on the scanner)",
    )
    p.set_defaults(func=cmd_plan)
    r = sub.add_parser("reslice", parents=[common], help="reslice a volume along the plan's axial slice groups")
    r.add_argument("volume")
    r.add_argument("--plan", required=True)
    r.add_argument("--out", required=True)
    r.add_argument(
        "--force",
        action="store_true",
        help="replace output files that were changed since this command wrote them (hand-edited markups)",
    )
    r.add_argument("--labels", help="label map on the volume's grid, resliced with nearest neighbour")
    r.set_defaults(func=cmd_reslice)
    sc = sub.add_parser(
        "scene", parents=[common], help="bundle image, discs, plan and measurements into a Slicer scene (.mrb)"
    )
    sc.add_argument("--image", required=True)
    sc.add_argument("--plan", required=True)
    sc.add_argument("--discs", help="disc label map (becomes a segmentation)")
    sc.add_argument("--measurements", help="measurements.json of spine-measure (becomes a table)")
    sc.add_argument("--out", required=True, help="the .mrb file to write")
    sc.add_argument("--screenshot", help="also render the plan in 3D (offscreen) into this PNG")
    sc.set_defaults(func=cmd_scene)
    t = sub.add_parser(
        "train", parents=[common], help="train a network on phantoms (and optionally your own image + label pairs)"
    )
    t.add_argument(
        "--stage",
        required=True,
        choices=("localize", "labels", "discs", "levels", "discs_fine"),
        help="'labels' trains the shared localize/label network; 'levels' the thoracic/lumbar/lumbosacral classifier; "
        "'discs_fine' the output disc network (1 mm maps) from the disc weights in --init-from (default: shipped)",
    )
    t.add_argument("--steps", type=positive(int), help="optimisation steps (default: the stage's setting)")
    t.add_argument(
        "--seed",
        type=int,
        help="training seed (default: the shipped recipe's for the stage; evaluation phantoms use seeds >= 60000)",
    )
    t.add_argument("--cache", default=".cache/phantoms", help="where phantom label maps are generated once and reused")
    t.add_argument("--out", default="models", help="output folder for weights, cards, logs and resumable checkpoints")
    t.add_argument("--user-data", help="folder of <case>_image.nii.gz + <case>_labels.nii.gz pairs to mix in")
    t.add_argument(
        "--lr", type=positive(float), help="peak learning rate of the cosine schedule (default: the stage's)"
    )
    t.add_argument(
        "--user-share", type=fraction, default=0.5, help="fraction of training samples drawn from --user-data (0-1]"
    )
    t.add_argument(
        "--threads",
        type=positive(int),
        help="torch threads beside the sample worker (default: the stage's, 1 for levels, whose worker is the bound; 2)",
    )
    t.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="forward-pass arithmetic in training; auto = bf16 where the CPU has native bf16 (2-3x faster), else fp32",
    )
    t.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="run the training forward pass through torch.compile (localize, discs, levels; 20-35 %% faster steps "
        "after 20-55 s of compiling); auto = where a C++ compiler is found",
    )
    t.add_argument(
        "--width",
        type=positive(int),
        help="V-Net channels at full resolution (default: the width of the --init-from weights, else the stage's: 16 discs, 8 localize)",
    )
    t.add_argument(
        "--sacrum-share",
        type=share,
        help="discs stage: share of patches centred in the sacrum (default 0.12; the sacrum is most of the missed spine)",
    )
    t.add_argument(
        "--targets",
        choices=("hard", "cut", "soft"),
        help="discs stage: hard (default) = the class of each voxel; cut = the same, half the patches cut to part of "
        "their field of view (unscored outside); soft = label fractions on a sub-voxel-shifted grid, cut likewise "
        "(README: better Dice, a fine-tune of it cost two held-out stacks their lumbar count)",
    )
    t.add_argument(
        "--level-competition",
        type=float,
        help="localize stage: weight of a cross-entropy that makes the level heatmap channels compete at each disc "
        "(default 0 = off, as the shipped weights; README, Networks: without it the channels do not name levels)",
    )
    t.add_argument(
        "--init-from", help="start from the weights in this folder (e.g. SpineLocalizer/Resources/Models) to fine-tune"
    )
    t.set_defaults(func=cmd_train)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("spine-localizer", lambda: args.func(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
