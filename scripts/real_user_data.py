"""Write a real source of ../shared/data/real as a user-data folder for `spine-localizer train --user-data`.

.venv/bin/python scripts/real_user_data.py vertebrae_t2 /tmp/real_t2        # 17 T2, levels known
.venv/bin/python scripts/real_user_data.py vertebrae_mixed /tmp/real_mixed  # 10 T1/T2/TIRM, levels read

Images are resampled to the 4 mm x 1.5 mm sagittal localizer geometry the evaluation runs on, labels (VerSe codes)
to the same grid. vertebrae_mixed numbers its bodies 1..n from the top without levels; we read its mid-sagittal
images (docs/results.md, "Real sources"): in every case but vb1_17 the lowest labelled body is the first sacral
segment, so bodies are named upwards from S1 with five lumbar vertebrae; vb1_17, whose lowest body we could not
tell L5 from S1, is left out. The folder stays outside the repository (the data are not ours to ship).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from SpineLocalizerLib.labels import VERTEBRA_CODES
from SpineLocalizerLib.networks.localizer_like import resample_to_localizer
from SpineLocalizerLib.volume_io import Volume, read_volume, write_volume

REAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
LOWEST_BODY_READ_AS_S1 = (
    "vb1_02",
    "vb1_03",
    "vb1_06",
    "vb1_07",
    "vb1_08",
    "vb1_10",
    "vb1_11",
    "vb1_12",
    "vb1_15",
    "vb1_16",
)
NAMES_UP_FROM_S1 = ["S1", "L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8"]


def named_bodies(numbered: Volume) -> Volume:
    """VerSe codes for a map numbered 1..n from the top whose lowest body is S1 (five lumbar vertebrae)."""
    out = np.zeros(numbered.array.shape, dtype=np.uint8)
    numbers = sorted(int(v) for v in np.unique(numbered.array) if v > 0)
    for k, number in enumerate(reversed(numbers)):
        out[numbered.array == number] = VERTEBRA_CODES[NAMES_UP_FROM_S1[k]]
    return Volume(out, numbered.spacing, numbered.origin, numbered.direction)


def pairs(source: str) -> list[tuple[str, Path, Volume]]:
    folder = REAL_DIR / source
    if source == "vertebrae_t2":
        return [
            (p.name.split("_image")[0], p, read_volume(p.with_name(p.name.replace("_image", "_vertebrae"))))
            for p in sorted(folder.glob("*_image.nii.gz"))
        ]
    if source == "vertebrae_mixed":
        return [
            (case, folder / f"{case}_image.nii.gz", named_bodies(read_volume(folder / f"{case}_bodies.nii.gz")))
            for case in LOWEST_BODY_READ_AS_S1
        ]
    raise SystemExit(f"unknown source {source!r}: vertebrae_t2 or vertebrae_mixed")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if not REAL_DIR.exists():
        sys.exit(f"real data not found at {REAL_DIR}")
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for case, image_path, labels in pairs(sys.argv[1]):
        write_volume(resample_to_localizer(read_volume(image_path)), out / f"{case}_image.nii.gz")
        write_volume(resample_to_localizer(labels, labels=True), out / f"{case}_labels.nii.gz")
        print(case, flush=True)


if __name__ == "__main__":
    main()
