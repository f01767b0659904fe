"""Disc height on the real sagittal T2 of vertebrae_t2 from the localizer pipeline's own disc map (the 1 mm output
disc network, not the axial structure network), against the gap between the two body masks (the same reference
as evaluate_real_measurements.py): which network's discs are nearer the masks on real images.

    .venv/bin/python Testing/bench/disc_map_heights.py [N_CASES]
"""

from __future__ import annotations

import json
import sys

import numpy as np
from evaluate_real_measurements import REAL, body_gap_heights
from SpineLocalizerLib.networks.infer import discs_on
from SpineLocalizerLib.networks.localizer_like import resample_to_localizer
from SpineLocalizerLib.pipeline import plan_from_localizer
from SpineLocalizerLib.volume_io import Volume, read_volume
from SpineMeasureLib.auto_mode import measure_plan
from SpineMeasureLib.catalogue import Thresholds


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 17
    index = json.loads((REAL / "vertebrae_t2/index.json").read_text())
    diffs, refused = [], 0
    for case in index["cases"][:n]:
        name = case["case"]
        img = read_volume(REAL / f"vertebrae_t2/{name}_image.nii.gz")
        ref = body_gap_heights(read_volume(REAL / f"vertebrae_t2/{name}_vertebrae.nii.gz"))
        plan, result = plan_from_localizer([resample_to_localizer(img)])
        codes = Volume(discs_on(result, img), img.spacing, img.origin, img.direction)
        for r in measure_plan(codes, plan, Thresholds()):
            if r.measurement != "disc_height_mm" or r.level not in ref:
                continue
            if r.status != "ok":
                refused += 1
                continue
            diffs.append(r.value - ref[r.level])
            print(f"{name} {r.level}: disc map {r.value:.1f} mm, body gap {ref[r.level]:.1f} mm")
    d = np.array(diffs)
    print(
        f"{len(d)} discs measured, {refused} not measurable: disc map - body gap median {np.median(d):+.2f} mm, "
        f"MAE {np.abs(d).mean():.2f} mm, 10-90 % [{np.percentile(d, 10):+.2f}, {np.percentile(d, 90):+.2f}]"
    )


if __name__ == "__main__":
    main()
