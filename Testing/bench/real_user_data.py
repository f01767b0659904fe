"""Write a fold of ../shared/data/real/vertebrae_t2 as a user-data folder for `spine-localizer train --user-data`.

.venv/bin/python Testing/bench/real_user_data.py A /tmp/real_A     # fold A: cases 1st, 3rd, 5th ... (sorted)
.venv/bin/python Testing/bench/real_user_data.py B /tmp/real_B     # fold B: the others

Images are resampled to the 4 mm x 1.5 mm sagittal localizer geometry the evaluation runs on, labels (bodies
T11..L5, VerSe codes) to the same grid. The folder stays outside the repository (the data are not ours to ship).
"""

from __future__ import annotations

import sys
from pathlib import Path

from SpineLocalizerLib.networks.evaluation import REAL_CASES_DIR, real_fold, resample_to_localizer
from SpineLocalizerLib.volume_io import read_volume, write_volume


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("A", "B"):
        sys.exit(__doc__)
    if not REAL_CASES_DIR.exists():
        sys.exit(f"real data not found at {REAL_CASES_DIR}")
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for image_path in real_fold(sys.argv[1]):
        case = image_path.name.split("_image")[0]
        labels_path = image_path.with_name(f"{case}_vertebrae.nii.gz")
        write_volume(resample_to_localizer(read_volume(image_path)), out / f"{case}_image.nii.gz")
        write_volume(resample_to_localizer(read_volume(labels_path), labels=True), out / f"{case}_labels.nii.gz")
        print(case, flush=True)


if __name__ == "__main__":
    main()
