"""Plan the real images with the networks and write their overview pictures (to look at, not to score).

.venv/bin/python Testing/bench/real_overviews.py   ->  out/real/<case>/overview.png
"""

from __future__ import annotations

from pathlib import Path

from SpineLocalizerLib.cli import main as localizer_main
from SpineLocalizerLib.networks.evaluation import resample_to_localizer
from SpineLocalizerLib.volume_io import read_volume, write_volume

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def main() -> None:
    out = Path("out/real")
    out.mkdir(parents=True, exist_ok=True)
    cases = [REAL / "unlabeled" / "sct_t2_lumbar_image.nii.gz"] + sorted(
        (REAL / "vertebrae_t2").glob("*_image.nii.gz")
    )[:4]
    for path in cases:
        name = path.name.replace("_image.nii.gz", "")
        local = out / f"{name}_localizer.nii.gz"
        write_volume(resample_to_localizer(read_volume(path)), local)
        code = localizer_main(["plan", str(local), "--out", str(out / name)])
        print(name, "planned" if code == 0 else "no plan", flush=True)


if __name__ == "__main__":
    main()
