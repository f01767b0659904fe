"""Write the partial-mask list (networks/partial_labels.py) of the real axial sources the structure network may be
fine-tuned on: the Dixon water images of MyoSegmenTUM (tum01, tum02) with their paraspinal masks (erector spinae
and multifidus, both sides). musclemap01 is left out: it is the held-apart source the psoas and paraspinal results
are judged on.

.venv/bin/python scripts/real_partial_masks.py [OUT_JSON]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "axial_muscles"
PARASPINAL = {str(code): "paraspinal muscle" for code in (1, 2, 3, 4)}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/partial_masks_tum.json")
    if not REAL.is_dir():
        sys.exit(f"{REAL} not found: the real validation data sit beside the repository in ../shared")
    entries = [
        {
            "image": str(REAL / f"{name}_water_image.nii.gz"),
            "mask": str(REAL / f"{name}_muscles.nii.gz"),
            "classes": PARASPINAL,
        }
        for name in ("tum01", "tum02")
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(entries, indent=1))
    print(f"{len(entries)} entries -> {out}")


if __name__ == "__main__":
    main()
