"""`spine-phantom`: generate a lumbar spine phantom with exact ground truth."""

from __future__ import annotations

import argparse
import json
import sys

from ..cli_errors import run_command
from .generate import generate_case
from .params import sample_params


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="spine-phantom", description=__doc__)
    ap.add_argument("--seed", type=int, required=True, help="random seed; the same seed gives identical files")
    ap.add_argument("--out", required=True, help="output folder (created; files are replaced all at once)")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error (for a bug report)")
    ap.add_argument("--lumbar-count", type=int, choices=(4, 5, 6), help="force transitional anatomy")
    ap.add_argument("--contrast", choices=("t1", "t2"))
    ap.add_argument("--localizer-spacing", type=float, help="3D localizer voxel size in mm (default 2)")
    ap.add_argument("--highres-spacing", type=float, help="diagnostic volume voxel size in mm (default 0.8)")
    ap.add_argument("--no-highres", action="store_true", help="skip the diagnostic-resolution volume")
    ap.add_argument("--no-stacks", action="store_true", help="skip the multi-slice localizer stacks")
    ap.add_argument("--no-overview", action="store_true", help="skip overview.png")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="any other phantom parameter, e.g. --set lordosis_deg=60 --set scoliosis_deg=15",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("spine-phantom", lambda: _generate(args), args.debug)


def _generate(args) -> int:
    overrides = {}
    for item in args.set:
        if "=" not in item:
            print(f"spine-phantom: --set needs NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[key] = tuple(value) if isinstance(value, list) else value
    for key, value in (
        ("lumbar_count", args.lumbar_count),
        ("contrast", args.contrast),
        ("localizer_spacing_mm", args.localizer_spacing),
        ("highres_spacing_mm", args.highres_spacing),
    ):
        if value is not None:
            overrides[key] = value
    try:
        params = sample_params(args.seed, **overrides)
    except TypeError as err:  # an unknown --set name
        raise ValueError(str(err)) from err
    truth = generate_case(
        params, args.out, highres=not args.no_highres, stacks=not args.no_stacks, overview=not args.no_overview
    )
    times = ", ".join(f"{k} {v:.2f}s" for k, v in truth["timings_s"].items())
    print(f"wrote phantom seed {args.seed} ({params.lumbar_count} lumbar, {params.contrast}) to {args.out}: {times}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
