"""Where the spine and disc Dice are lost, and whether cheap post-processing recovers any of it.

Runs the network pipeline on N tuning phantoms (seeds 60000+: neither training nor evaluation) and prints per case
1. the missed spine volume by true label (which vertebra, or disc), how much of it lies deeper than 3 mm inside
   the true spine, and the false spine volume farther than 3 mm from it;
2. the Dice after post-processing the 2 mm probabilities before they are resampled onto the input grid:
   Gaussian smoothing (sigma in 2 mm voxels), the localize network's 4 mm spine alone or fused with the disc
   network's, and a lower spine cut below the lowest disc (the sacrum).

.venv/bin/python Testing/bench/dice_diagnostics.py [N] [MODELS] [lps|localizer]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from pipeline_evaluation import dice
from planning_evaluation import variation
from scipy import ndimage
from SpineLocalizerLib.labels import CODE_TO_VERTEBRA, DISC_CODE_OFFSET
from SpineLocalizerLib.networks import MODEL_DIR, infer
from SpineLocalizerLib.networks.canonical import from_canonical
from SpineLocalizerLib.phantom.generate import generate_case, spine_mask
from SpineLocalizerLib.phantom.params import sample_params
from SpineLocalizerLib.volume_io import read_volume

TUNING_SEED_BASE = 60000
SIGMAS = (0.0, 0.4, 0.6, 0.8)
SACRUM_CUTS = (0.5, 0.4, 0.3, 0.2)


def _case(i: int):
    params = sample_params(TUNING_SEED_BASE + i, **variation(i))
    stack = i % 2 == 1
    role = "sagittal_stack" if stack else "localizer"
    with tempfile.TemporaryDirectory() as tmp:
        truth = generate_case(params, Path(tmp), highres=False, stacks=stack, overview=False)
        image = read_volume(Path(tmp) / truth["files"][role])
        labels = read_volume(Path(tmp) / truth["files"][f"{role}_labels" if stack else "localizer_labels"]).array
    return role, image, labels


def missed_spine(spine_pred: np.ndarray, labels: np.ndarray, spacing) -> dict:
    """Missed (by true label) and false spine volumes in cm^3."""
    truth = spine_mask(labels) > 0
    fn, fp = truth & ~spine_pred, spine_pred & ~truth
    cc = float(np.prod(spacing)) / 1000.0
    depth_in = ndimage.distance_transform_edt(truth, sampling=spacing)
    depth_out = ndimage.distance_transform_edt(~truth, sampling=spacing)
    by_label: dict[str, float] = {}
    codes, counts = np.unique(labels[fn], return_counts=True)
    for code, count in zip(codes, counts):
        name = "disc" if code >= DISC_CODE_OFFSET else CODE_TO_VERTEBRA.get(int(code), str(code))
        by_label[name] = by_label.get(name, 0.0) + count * cc
    return {
        "missed": fn.sum() * cc,
        "missed_deep": (depth_in[fn] > 3.0).sum() * cc,
        "false": fp.sum() * cc,
        "false_far": (depth_out[fp] > 3.0).sum() * cc,
        "by_label": by_label,
    }


def post_processed(result, image, labels) -> dict:
    disc_true = (labels >= DISC_CODE_OFFSET + 15) & (labels <= DISC_CODE_OFFSET + 25)
    spine_true = spine_mask(labels) > 0
    near = ndimage.grey_dilation(result.discs_canonical, size=(3, 3, 3))
    disc_p = np.where(near > 0, result.disc_probability, 0.0).astype(np.float32)
    spine_p = result.spine_probability.astype(np.float32)
    out = {}
    for s in SIGMAS:
        d = ndimage.gaussian_filter(disc_p, s) if s else disc_p
        p = ndimage.gaussian_filter(spine_p, s) if s else spine_p
        out[f"smooth {s}"] = (
            dice(from_canonical(d, result.grid, image, labels=False) >= infer.DISC_THRESHOLD, disc_true),
            dice(from_canonical(p, result.grid, image, labels=False) >= result.spine_threshold, spine_true),
        )
    # The 4 mm localize network's spine, alone and fused with the disc network's (it sees the whole spine).
    spine_p4 = infer._upsample_probability(result.spine_probability_4mm, result.grid.size)
    for name, p, cut in (
        ("localize 4 mm", spine_p4, infer.SPINE_THRESHOLD),
        ("fused max", np.maximum(spine_p, spine_p4), 0.5),
        ("fused mean", (spine_p + spine_p4) / 2, 0.5),
    ):
        p_in = from_canonical(p.astype(np.float32), result.grid, image, labels=False)
        out[name] = (np.nan, dice(p_in >= cut, spine_true))
    # Below the lowest labelled disc's centre (canonical k runs superior), minus 4 mm.
    codes = result.discs_canonical
    lowest_k = min(np.argwhere(codes == c)[:, 2].mean() for c in np.unique(codes[codes > 0]))
    k_index = np.broadcast_to(np.arange(result.grid.size[2], dtype=np.float32), result.grid.size)
    below = from_canonical(np.ascontiguousarray(k_index), result.grid, image, labels=False) < lowest_k - 2
    p_in = from_canonical(spine_p, result.grid, image, labels=False)
    for cut in SACRUM_CUTS:
        out[f"sacrum cut {cut}"] = (
            np.nan,
            dice(np.where(below, p_in >= cut, p_in >= result.spine_threshold), spine_true),
        )
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    models = Path(sys.argv[2]) if len(sys.argv) > 2 else MODEL_DIR
    axes = sys.argv[3] if len(sys.argv) > 3 else "lps"
    rows, totals = [], {}
    for i in range(n):
        role, image, labels = _case(i)
        result = infer.run_pipeline([image], model_dir=models, grid_axes=axes)
        if not result.confidences:
            print(f"{i:3d} {role}: no discs found; skipped")
            continue
        m = missed_spine(infer.spine_on(result, image) > 0, labels, image.spacing)
        for k, v in m["by_label"].items():
            totals[k] = totals.get(k, 0.0) + v
        totals["all"] = totals.get("all", 0.0) + m["missed"]
        top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(m["by_label"].items(), key=lambda kv: -kv[1])[:4])
        print(
            f"{i:3d} {role:15s} missed spine {m['missed']:5.1f} cc ({m['missed_deep']:.1f} deeper than 3 mm; {top}), "
            f"false {m['false']:5.1f} cc ({m['false_far']:.1f} farther than 3 mm)",
            flush=True,
        )
        rows.append(post_processed(result, image, labels))
    if not rows:
        return
    share = ", ".join(f"{k} {v / totals['all']:.0%}" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])[1:6])
    print(f"missed spine over {len(rows)} cases: {totals['all']:.0f} cc; by label: {share}")
    print("post-processing: mean disc / spine Dice")
    for key in rows[0]:
        disc = np.nanmean([r[key][0] for r in rows]) if not np.isnan(rows[0][key][0]) else float("nan")
        print(f"  {key:16s} {disc:.4f} / {np.mean([r[key][1] for r in rows]):.4f}")


if __name__ == "__main__":
    main()
