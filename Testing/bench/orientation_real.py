"""The orientation check (pipeline.py) on the real sources: every localizer-like volume of vertebrae_mixed,
vertebrae_t2 and sct_t2_lumbar planned as given; how many plans are doubtful and how many are called flipped
(none should be: their headers are right in S/I and A/P).

    .venv/bin/python Testing/bench/orientation_real.py
"""

from __future__ import annotations

import glob
from pathlib import Path

from SpineLocalizerLib.networks.localizer_like import resample_to_localizer
from SpineLocalizerLib.pipeline import plan_from_localizer
from SpineLocalizerLib.volume_io import read_volume

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def main() -> None:
    files = sorted(glob.glob(str(REAL / "vertebrae_mixed/*_image.nii.gz")))
    files += sorted(glob.glob(str(REAL / "vertebrae_t2/*_image.nii.gz")))
    files += [str(REAL / "unlabeled/sct_t2_lumbar_image.nii.gz")]
    doubtful = flagged = checked = 0
    for f in files:
        try:
            plan, _ = plan_from_localizer([resample_to_localizer(read_volume(f))])
        except ValueError as err:
            print(f"{Path(f).name}: no plan ({err})")
            continue
        doubtful += plan["doubtful"]
        checked += "orientation_check" in plan["timings_s"]
        flagged += "orientation_suspect" in plan
        print(f"{Path(f).name}: doubtful {plan['doubtful']}, flipped {plan.get('orientation_suspect')}")
    print(f"{len(files)} volumes: {doubtful} doubtful, {checked} checked for a flip, {flagged} called flipped")


if __name__ == "__main__":
    main()
