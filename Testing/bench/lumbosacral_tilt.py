"""Why the disc network misses lumbosacral discs of vertebrae_mixed: how steep they are, against the phantom's.

- Real (vertebrae_mixed, numbered bodies; the lowest gap is the lumbosacral disc): the reference disc's tilt
  from the head-foot axis, the mean disc probability of the network within 6 mm of its centre, and whether a
  planned or named disc lies within 6 mm on each axis (the detection rule of `evaluate_pipeline.py real`).
- Phantom (seeds 100000+, the held-out range; anatomy only, no image): the tilt of the lumbosacral disc's normal
  in world coordinates (pose included), the same measure.

    PYTHONPATH=Testing/bench .venv/bin/python Testing/bench/lumbosacral_tilt.py [N_PHANTOMS]
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
from pipeline_evaluation import pred_discs
from real_sources import REAL_DIR, _plan
from SpineLocalizerLib.networks import MODEL_DIR
from SpineLocalizerLib.networks.body_references import numbered_body_discs
from SpineLocalizerLib.phantom.anatomy import build_anatomy
from SpineLocalizerLib.phantom.params import sample_params
from SpineLocalizerLib.volume_io import read_volume


def tilt_deg(normal) -> float:
    n = np.asarray(normal, dtype=float)
    return float(np.degrees(np.arccos(abs(n[2]) / np.linalg.norm(n))))


def real_rows() -> list[tuple[str, float, float, bool]]:
    rows = []
    for f in sorted(glob.glob(str(REAL_DIR / "vertebrae_mixed/*_image.nii.gz"))):
        ref = numbered_body_discs(read_volume(f.replace("_image", "_bodies")))[-1]
        plan, result, _ = _plan(Path(f), None, MODEL_DIR)
        if result is None:
            rows.append((f, tilt_deg(ref["normal"]), float("nan"), False))
            continue
        idx = np.rint(result.grid.world_to_index(ref["center"][None])[0]).astype(int)
        near = tuple(slice(max(i - 3, 0), i + 4) for i in idx)  # +-6 mm on the 2 mm grid
        prob = float(result.disc_probability[near].mean())
        found = any(np.all(np.abs(np.asarray(d["center"]) - ref["center"]) < 6.0) for d in pred_discs(result).values())
        rows.append((f, tilt_deg(ref["normal"]), prob, found))
    return rows


def phantom_tilts(n: int) -> np.ndarray:
    out = []
    for seed in range(100000, 100000 + n):
        anatomy = build_anatomy(sample_params(seed))
        k = next(i for i, name in enumerate(anatomy.key_names) if name.endswith("-S1"))
        out.append(tilt_deg(anatomy.pose.rotation @ anatomy.frames[k].rotation[:, 2]))
    return np.array(out)


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 200
    rows = real_rows()
    for f, tilt, prob, found in rows:
        name = f.rsplit("/", 1)[-1].split("_image")[0]
        print(f"{name}: lumbosacral tilt {tilt:.1f} deg, disc probability near it {prob:.3f}, found {found}")
    found = [t for _, t, _, ok in rows if ok]
    missed = [t for _, t, _, ok in rows if not ok]
    print(f"real found: {len(found)} tilts {min(found):.1f}-{max(found):.1f}; missed {len(missed)}: {sorted(missed)}")
    ph = phantom_tilts(n)
    q = np.percentile(ph, [0, 10, 50, 90, 100])
    print(
        f"phantoms ({n}): lumbosacral tilt min/p10/median/p90/max {' / '.join(f'{v:.1f}' for v in q)} deg; "
        f">= 40 deg: {np.mean(ph >= 40):.3f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
