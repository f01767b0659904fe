"""Experiment: slice-group normals from the faces of the vertebral bodies around each disc (the disc network's
body class), the way the real references are defined, against the disc's own principal axis.

For every planned disc of the real sources with a reference, the error of: the plan's normal (disc PCA), the
mean normal of the two facing endplates of the predicted bodies, and their average; also the signed sagittal
component per level (the plan's normals on vertebrae_t2 lean +3 deg at T12-L1/L1-L2 and -1.5 deg at L4-L5).

    .venv/bin/python Testing/bench/endplate_normals.py [vertebrae_t2 vertebrae_mixed]
"""

from __future__ import annotations

import sys

import numpy as np
from real_sources import REAL_DIR, SCORED_T2, _nearest, _plan
from scipy import ndimage
from SpineLocalizerLib.geometry import angle_between_deg
from SpineLocalizerLib.networks import MODEL_DIR
from SpineLocalizerLib.networks.body_references import numbered_body_discs, reference_discs_from_bodies
from SpineLocalizerLib.volume_io import read_volume

RADIUS_MM = 12.0  # central part of the endplate (bodies are ~35-50 mm wide): the rims are rounded
REACH_MM = 20.0  # how far from the disc centre along the normal a face is looked for
STEP_MM = 0.5


def face_points(body_index_prob, grid, centre, normal, sign: float) -> np.ndarray:
    """Points where the body probability first crosses 0.5 going from the disc centre along `sign * normal`, on
    lines through a disc of `RADIUS_MM` around the disc axis."""
    helper = np.array([0.0, 1.0, 0.0]) - normal * normal[1]
    helper /= np.linalg.norm(helper)
    side = np.cross(helper, normal)
    g = np.arange(-RADIUS_MM, RADIUS_MM + 1e-6, 2.0)
    uu, vv = np.meshgrid(g, g, indexing="ij")
    keep = uu**2 + vv**2 <= RADIUS_MM**2
    offsets = uu[keep][:, None] * side + vv[keep][:, None] * helper
    t = np.arange(0.0, REACH_MM + 1e-6, STEP_MM)
    pts = centre + offsets[:, None, :] + sign * t[None, :, None] * normal  # lines x samples x 3
    idx = grid.world_to_index(pts.reshape(-1, 3))
    p = ndimage.map_coordinates(body_index_prob, idx.T, order=1, mode="constant", cval=0.0).reshape(pts.shape[:2])
    out = []
    for line, probs in zip(pts, p):
        above = np.nonzero(probs >= 0.5)[0]
        if len(above) == 0 or above[0] == 0:
            continue
        k = above[0]
        f = (0.5 - probs[k - 1]) / max(probs[k] - probs[k - 1], 1e-6)
        out.append(line[k - 1] + f * (line[k] - line[k - 1]))
    return np.array(out)


def plane_normal(points: np.ndarray, toward: np.ndarray) -> np.ndarray | None:
    if len(points) < 12:
        return None
    c = points.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((points - c).T))
    n = vecs[:, 0]
    return n * np.sign(n @ toward)


def endplate_normal(result, centre, normal) -> np.ndarray | None:
    body = np.zeros(result.grid.size, dtype=np.float32)
    body[result.box] = np.clip(result.spine_probability_box - result.disc_probability[result.box], 0, 1)
    normal = np.asarray(normal) * np.sign(normal[2] or 1.0)
    up = plane_normal(face_points(body, result.grid, np.asarray(centre), normal, +1.0), normal)
    down = plane_normal(face_points(body, result.grid, np.asarray(centre), normal, -1.0), normal)
    if up is None or down is None:
        return None
    n = up + down
    return n / np.linalg.norm(n)


def sagittal(n, m) -> float:
    n = n if n @ m >= 0 else -n
    return float(np.degrees(np.arctan2(n[1], n[2]) - np.arctan2(m[1], m[2])))


def run(source: str) -> None:
    rows = []
    images = sorted((REAL_DIR / source).glob("*_image.nii.gz"))
    for image_path in images:
        if source == "vertebrae_t2":
            labels = read_volume(image_path.with_name(image_path.name.replace("_image", "_vertebrae")))
            refs = {k: v for k, v in reference_discs_from_bodies(labels).items() if k in SCORED_T2}
            ref_list, names = list(refs.values()), list(refs)
        else:
            labels = read_volume(image_path.with_name(image_path.name.replace("_image", "_bodies")))
            ref_list, names = numbered_body_discs(labels), None
        plan, result, _ = _plan(image_path, None, MODEL_DIR)
        if plan is None:
            continue
        for d in plan["discs"]:
            k, close = _nearest(np.asarray(d["centroid_lps"]), ref_list)
            if not close or (names is not None and names[k] != d["label"]):
                continue
            ref = np.asarray(ref_list[k]["normal"])
            pca = np.asarray(d["normal_lps"])
            ep = endplate_normal(result, d["centroid_lps"], pca)
            mixed = pca if ep is None else (pca + ep * np.sign(ep @ pca)) / np.linalg.norm(pca + ep * np.sign(ep @ pca))
            rows.append(
                {
                    "case": image_path.name.split("_image")[0],
                    "label": d["label"],
                    "pca": angle_between_deg(pca, ref, undirected=True),
                    "endplates": None if ep is None else angle_between_deg(ep, ref, undirected=True),
                    "mean": angle_between_deg(mixed, ref, undirected=True),
                    "sag_pca": sagittal(pca, ref),
                    "sag_ep": None if ep is None else sagittal(ep, ref),
                }
            )
    print(f"## {source}: {len(rows)} discs, {sum(r['endplates'] is None for r in rows)} without both faces")
    for key in ("pca", "endplates", "mean"):
        e = np.array([r[key] if r[key] is not None else r["pca"] for r in rows])
        print(f"  {key:9s} median {np.median(e):.2f}  p90 {np.percentile(e, 90):.2f}  mean {e.mean():.2f}")
    for label in sorted({r["label"] for r in rows}, key=lambda s: [r["label"] for r in rows].index(s)):
        sel = [r for r in rows if r["label"] == label]
        sp = np.array([r["sag_pca"] for r in sel])
        se = np.array([r["sag_ep"] for r in sel if r["sag_ep"] is not None])
        print(
            f"  {label:7s} n={len(sel):2d} sagittal pca {sp.mean():+.2f} (sd {sp.std():.2f})  "
            f"endplates {se.mean() if len(se) else float('nan'):+.2f} (sd {se.std() if len(se) else float('nan'):.2f})"
        )


if __name__ == "__main__":
    for src in sys.argv[1:] or ["vertebrae_t2", "vertebrae_mixed"]:
        run(src)
