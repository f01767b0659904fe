"""Measurements from the images alone (structure network) on the real sources of ../shared/data/real.

.venv/bin/python Testing/bench/evaluate_real_measurements.py [OUT_DIR] [N_T2_CASES] [MODEL_DIR]

- axial_muscles/musclemap01: psoas area per slice (network, each side) against its mask (5 right, 6 left), and
  which slices the plausibility checks refuse; Dice of the psoas and of the paraspinal muscles (multifidus and
  erector spinae, 1-4) over the slices;
- axial_muscles/tum01, tum02: how much of their paraspinal masks (erector spinae, multifidus) the network calls
  psoas (should be none);
- vertebrae_t2: disc height at the disc centre from the network (planned from the image, segmented along the plan)
  against the gap between the two body masks along the reference normal (body_references.py).
A PNG per case goes under OUT_DIR to be looked at. Prints the tables of docs/results.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from SpineLocalizerLib.networks import segment_structures as seg  # noqa: E402
from SpineLocalizerLib.networks.body_references import _adjacent_pairs, endplate, labelled_bodies  # noqa: E402
from SpineLocalizerLib.networks.structure_classes import CLASS_INDEX  # noqa: E402
from SpineLocalizerLib.volume_io import read_volume  # noqa: E402
from SpineMeasureLib.catalogue import Thresholds  # noqa: E402
from SpineMeasureLib.measure_sources import measure_image  # noqa: E402
from SpineMeasureLib.segmentation_checks import implausible_psoas  # noqa: E402

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
PSOAS = CLASS_INDEX["psoas"]


def _slice(axis: int, k: int):
    sl = [slice(None)] * 3
    sl[axis] = k
    return tuple(sl)


def musclemap(run, out: Path) -> dict:
    img = read_volume(REAL / "axial_muscles/musclemap01_image.nii.gz")
    mask = read_volume(REAL / "axial_muscles/musclemap01_muscles.nii.gz")
    classes, frames = seg.segment_slices(run, img)
    axis, left, post, _ = seg.slice_axes(img)
    px = float(np.prod(np.delete(np.asarray(img.spacing), axis)))
    pts = img.index_to_world(np.indices(img.array.shape).reshape(3, -1).T).reshape(*img.array.shape, 3)
    rows = []
    from SpineLocalizerLib.labels import STRUCTURE_CODES
    from SpineLocalizerLib.networks.structure_classes import to_project_codes
    from SpineLocalizerLib.volume_io import Volume

    for k, frame in enumerate(frames):
        sl = _slice(axis, k)
        u = (pts[sl] - frame.centre) @ left
        codes = np.zeros(img.array.shape, dtype=np.uint8)
        codes[sl] = to_project_codes(classes[sl], u > 0, None, None)
        vol = Volume(codes, img.spacing, img.origin, img.direction)
        for side, code in (("right", 5), ("left", 6)):
            net = float((codes[sl] == STRUCTURE_CODES[f"psoas_{side}"]).sum()) * px
            truth = float((mask.array[sl] == code).sum()) * px
            why = implausible_psoas(vol, frame.centre, left, post, side)
            rows.append({"slice": k, "side": side, "network_mm2": net, "mask_mm2": truth, "refused": why})
    dice = {}
    for name, cls, codes in (("psoas", PSOAS, (5, 6)), ("paraspinal", CLASS_INDEX["paraspinal muscle"], (1, 2, 3, 4))):
        p, t = classes == cls, np.isin(mask.array, codes)
        dice[name] = float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1))
    measured = [r for r in rows if r["mask_mm2"] > 0 and not r["refused"]]
    rel = [abs(r["network_mm2"] / r["mask_mm2"] - 1) for r in measured]
    ks = [len(frames) // 2 + d for d in (-5, 0, 5)]
    fig, ax = plt.subplots(2, 3, figsize=(15, 9))
    for j, k in enumerate(ks):
        ax[0, j].imshow(img.array[_slice(axis, k)].T, cmap="gray")
        ax[0, j].contour(np.isin(mask.array[_slice(axis, k)], (5, 6)).T, colors="r", linewidths=0.6)
        ax[1, j].imshow(classes[_slice(axis, k)].T, cmap="tab20", vmin=0, vmax=13, interpolation="nearest")
        ax[0, j].set_title(f"slice {k}: psoas mask (red)")
        ax[1, j].set_title("network classes")
    fig.tight_layout()
    fig.savefig(out / "musclemap01.png", dpi=60)
    plt.close(fig)
    return {
        "slices_with_psoas_sides": sum(r["mask_mm2"] > 0 for r in rows),
        "measured": len(measured),
        "refused": sum(bool(r["refused"]) for r in rows if r["mask_mm2"] > 0),
        "median_rel_error": float(np.median(rel)) if rel else None,
        "median_rel_error_all": float(
            np.median([abs(r["network_mm2"] / r["mask_mm2"] - 1) for r in rows if r["mask_mm2"] > 0])
        ),
        "dice": dice,
        "rows": rows,
    }


def paraspinal(run, name: str) -> dict:
    img = read_volume(REAL / f"axial_muscles/{name}_water_image.nii.gz")
    mask = read_volume(REAL / f"axial_muscles/{name}_muscles.nii.gz")
    classes, _ = seg.segment_slices(run, img)
    para = mask.array > 0
    return {
        "paraspinal_voxels": int(para.sum()),
        "called_psoas": float((classes[para] == PSOAS).mean()),
        "called_paraspinal": float((classes[para] == CLASS_INDEX["paraspinal muscle"]).mean()),
    }


def body_gap_heights(labels) -> dict[str, float]:
    """Disc height at the centre from two body masks: the distance between the facing endplate centres along the
    mean endplate normal."""
    bodies = labelled_bodies(labels)
    out = {}
    for upper, lower in _adjacent_pairs(list(bodies)):
        (cu, pu), (cl, pl) = bodies[upper], bodies[lower]
        down = pl.mean(axis=0) - pu.mean(axis=0)
        down /= np.linalg.norm(down)
        c_up, n_up = endplate(labels, cu, pu, down)
        c_lo, n_lo = endplate(labels, cl, pl, -down)
        n = n_lo - n_up
        n /= np.linalg.norm(n)
        out[f"{upper}-{lower}"] = float(abs((c_lo - c_up) @ n))
    return out


def vertebrae_t2(out: Path, n_cases: int) -> list[dict]:
    index = json.loads((REAL / "vertebrae_t2/index.json").read_text())
    records = []
    for case in index["cases"][:n_cases]:
        name = case["case"]
        img = read_volume(REAL / f"vertebrae_t2/{name}_image.nii.gz")
        ref = body_gap_heights(read_volume(REAL / f"vertebrae_t2/{name}_vertebrae.nii.gz"))
        t = time.perf_counter()
        try:
            m = measure_image(img, plan=None, level=None, thresholds=Thresholds(), reference=None)
        except ValueError as err:
            records.append({"case": name, "error": str(err)})
            continue
        secs = time.perf_counter() - t
        for r in m.rows:
            if r.measurement == "disc_height_mm" and r.level in ref:
                records.append(
                    {
                        "case": name,
                        "level": r.level,
                        "network": r.value,
                        "bodies": ref[r.level],
                        "status": r.status,
                        "reason": r.reason,
                        "seconds": secs,
                    }
                )
        _sagittal_png(img, m.labels, out / f"vertebrae_t2_{name}.png")
    return records


def _sagittal_png(img, labels, png: Path) -> None:
    from SpineLocalizerLib.networks.structure_classes import classes_of
    from SpineLocalizerLib.reslice import sample_plane

    pts = labels.index_to_world(np.argwhere(classes_of(labels.array) == CLASS_INDEX["vertebral body"]))
    if not len(pts):
        return
    c = np.median(pts, axis=0)
    fig, ax = plt.subplots(1, 2, figsize=(9, 8))
    for j, (vol, order) in enumerate(((img, 1), (labels, 0))):
        a = sample_plane(vol, c, np.array([0, 0, -1.0]), np.array([0, 1.0, 0]), (260, 160), 0.5, order=order)
        ax[j].imshow(a if order else classes_of(a), cmap="gray" if order else "tab20", interpolation="nearest")
        ax[j].axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=60)
    plt.close(fig)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/real_measurements")
    n_t2 = int(sys.argv[2]) if len(sys.argv) > 2 else 17
    out.mkdir(parents=True, exist_ok=True)
    run, card = seg.load_structure_net(Path(sys.argv[3])) if len(sys.argv) > 3 else seg.load_structure_net()
    mm = musclemap(run, out)
    print(
        f"musclemap01 psoas: {mm['slices_with_psoas_sides']} slice sides with a psoas mask, {mm['refused']} refused "
        f"by the checks, {mm['measured']} measured, median |rel error| "
        + (f"{100 * mm['median_rel_error']:.1f} %" if mm["median_rel_error"] is not None else "n/a")
        + f" (all sides, checks ignored: {100 * mm['median_rel_error_all']:.1f} %); Dice psoas "
        + f"{mm['dice']['psoas']:.3f}, paraspinal {mm['dice']['paraspinal']:.3f}"
    )
    for name in ("tum01", "tum02"):
        p = paraspinal(run, name)
        print(
            f"{name}: {100 * p['called_psoas']:.2f} % of the paraspinal mask called psoas, {100 * p['called_paraspinal']:.1f} % paraspinal"
        )
    t2 = vertebrae_t2(out, n_t2)
    ok = [r for r in t2 if r.get("status") == "ok"]
    diffs = np.array([r["network"] - r["bodies"] for r in ok])
    refused = sum(r.get("status") == "not measurable" for r in t2)
    print(f"vertebrae_t2 disc height vs body gap: {len(ok)} measured, {refused} not measurable")
    if len(ok):
        print(f"  difference network - bodies: median {np.median(diffs):+.2f} mm, MAE {np.abs(diffs).mean():.2f} mm")
    (out / "real_measurements.json").write_text(
        json.dumps({"musclemap01": mm, "vertebrae_t2": t2}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
