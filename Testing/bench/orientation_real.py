"""The orientation check (pipeline.py) on the real sources: every localizer-like volume of vertebrae_mixed,
vertebrae_t2 and sct_t2_lumbar planned as given (none should be refused as flipped: their headers are right in
S/I and A/P), then with its content flipped head-foot and front-back, header unchanged (each should be).

    .venv/bin/python Testing/bench/orientation_real.py [--as-given-only]
"""

from __future__ import annotations

import glob
import sys
import time
from pathlib import Path

from SpineLocalizerLib.networks.localizer_like import resample_to_localizer
from SpineLocalizerLib.pipeline import FLIP_AXES, _flipped, plan_from_localizer
from SpineLocalizerLib.volume_io import read_volume

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def outcome(image) -> tuple[str, float]:
    """'plan', 'doubtful plan' ('doubtful plan: curves backwards' where that is a doubt), 'refused: flipped
    <how>' or 'refused: other', and the seconds it took."""
    t = time.perf_counter()
    try:
        plan, _ = plan_from_localizer([image])
        said = "doubtful plan" if plan["doubtful"] else "plan"
        if "curve_backwards" in [d["code"] for d in plan["doubts"]]:
            said = "doubtful plan: curves backwards"
    except ValueError as err:
        text = str(err)
        said = "refused: other"
        for name in FLIP_AXES:
            if f"looks flipped {name}" in text:
                said = f"refused: flipped {name}"
    return said, time.perf_counter() - t


def main(argv: list[str]) -> None:
    files = sorted(glob.glob(str(REAL / "vertebrae_mixed/*_image.nii.gz")))
    files += sorted(glob.glob(str(REAL / "vertebrae_t2/*_image.nii.gz")))
    files += [str(REAL / "unlabeled/sct_t2_lumbar_image.nii.gz")]
    variants = {"as given": None} if "--as-given-only" in argv else {"as given": None, **FLIP_AXES}
    tally: dict[str, dict[str, int]] = {v: {} for v in variants}
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    for f in files:
        image = resample_to_localizer(read_volume(f))
        row = []
        for variant, component in variants.items():
            said, took = outcome(image if component is None else _flipped(image, component))
            tally[variant][said] = tally[variant].get(said, 0) + 1
            seconds[variant].append(took)
            row.append(f"{variant}: {said} ({took:.1f} s)")
        print(f"{Path(f).name}: " + "; ".join(row), flush=True)
    for variant in variants:
        times = sorted(seconds[variant])
        print(f"{variant} ({len(files)} volumes, median {times[len(times) // 2]:.1f} s): {tally[variant]}")


if __name__ == "__main__":
    main(sys.argv[1:])
