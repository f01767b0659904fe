"""Measurement planes read from a label map of any level (cervical to lumbar), for maps that were not made by
our planner: an imported SPINEPS / TotalSpineSeg / TotalSegmentator / VIBESegmentator map, once converted to the
project's codes (label_conventions.py).

Per disc: its centroid, its normal (the disc's thinnest principal axis, turned cranially), its posterior axis
(towards the canal, in the disc plane) and left axis, and the posterior edge on the mid-sagittal line: the
fields of a plan's disc entry that the measurements read. A disc that is not labelled but lies between two
labelled adjacent bodies takes its plane from their facing endplates (networks/body_references.py). Per lumbar
vertebra: its mid-plane (body centroid, mean normal of the discs above and below) for the psoas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from SpineLocalizerLib.labels import DISC_CODE_OFFSET, STRUCTURE_CODES, VERTEBRA_CODES
from SpineLocalizerLib.networks.body_references import reference_discs_from_bodies
from SpineLocalizerLib.volume_io import Volume

from .label_conventions import VERSE_NAMES

MIN_DISC_VOXELS = 30
CANAL_CODES = (STRUCTURE_CODES["dural_sac"], STRUCTURE_CODES["spinal_cord"])
ARCH_CODES = (STRUCTURE_CODES["lamina"], STRUCTURE_CODES["spinous_process"], STRUCTURE_CODES["ligamentum_flavum"])


def _disc_name(upper_code: int, present: set[int]) -> str:
    upper = VERSE_NAMES[upper_code]
    lower_code = upper_code + 1
    if upper in ("L5", "L6") and lower_code not in present and DISC_CODE_OFFSET + lower_code not in present:
        return f"{upper}-S1"
    return f"{upper}-{VERSE_NAMES.get(lower_code, 'S1')}"


def _axes(normal: np.ndarray, toward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, posterior) in the plane of `normal`, posterior along `toward` (or LPS +y when it is ~ the normal)."""
    post = toward - normal * (toward @ normal)
    if np.linalg.norm(post) < 1e-3:
        post = np.array([0.0, 1.0, 0.0]) - normal * normal[1]
    post /= np.linalg.norm(post)
    return np.cross(post, normal), post


def _toward_canal(points: dict[str, np.ndarray], centre: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Direction from a disc centre to the canal (or the arch) near its plane; LPS +y without either."""
    for key in ("canal", "arch"):
        pts = points[key]
        if len(pts):
            near = pts[np.abs((pts - centre) @ normal) < 12.0]
            if len(near) >= 5:
                return near.mean(axis=0) - centre
    return np.array([0.0, 1.0, 0.0])


def posterior_edge(pts: np.ndarray, centre, left, post, normal) -> np.ndarray:
    rel = pts - centre
    band = (np.abs(rel @ left) < 3.0) & (np.abs(rel @ normal) < 3.0)
    reach = float((rel[band] @ post).max()) if band.any() else float((rel @ post).max())
    return centre + reach * post


def measurement_planes(labels: Volume) -> dict[str, Any]:
    """A plan-like dict ({"discs": [...], "vertebrae": [...]}) of every disc level the map shows."""
    arr = labels.array
    present = {int(v) for v in np.unique(arr) if v}
    points = {
        "canal": labels.index_to_world(np.argwhere(np.isin(arr, CANAL_CODES))),
        "arch": labels.index_to_world(np.argwhere(np.isin(arr, ARCH_CODES))),
    }
    discs = []
    for code in sorted(c for c in present if DISC_CODE_OFFSET < c <= DISC_CODE_OFFSET + 26):
        pts = labels.index_to_world(np.argwhere(arr == code))
        if len(pts) < MIN_DISC_VOXELS:
            continue
        centre = pts.mean(axis=0)
        _, vecs = np.linalg.eigh(np.cov((pts - centre).T))
        normal = vecs[:, 0] * (1 if vecs[2, 0] >= 0 else -1)
        left, post = _axes(normal, _toward_canal(points, centre, normal))
        edge = posterior_edge(pts, centre, left, post, normal)
        discs.append(_entry(_disc_name(code - DISC_CODE_OFFSET, present), code, centre, normal, left, post, edge))
    named = {d["label"] for d in discs}
    for name, ref in reference_discs_from_bodies(labels).items():
        if name in named:
            continue
        centre, normal = np.asarray(ref["center"]), np.asarray(ref["normal"])
        left, post = _axes(normal, _toward_canal(points, centre, normal))
        upper, lower = name.split("-")
        bodies = labels.index_to_world(np.argwhere(np.isin(arr, (VERTEBRA_CODES[upper], VERTEBRA_CODES[lower]))))
        edge = posterior_edge(bodies, centre, left, post, normal)
        entry = _entry(name, ref["code"], centre, normal, left, post, edge)
        entry["plane_from"] = "adjacent bodies (no disc label)"
        discs.append(entry)
    discs.sort(key=lambda d: -d["centroid_lps"][2])
    return {"discs": discs, "vertebrae": _vertebrae(labels, present, discs), "source": "label map"}


def _entry(label, code, centre, normal, left, post, edge) -> dict[str, Any]:
    return {
        "label": label,
        "value": int(code),
        "centroid_lps": centre.tolist(),
        "normal_lps": normal.tolist(),
        "left_lps": left.tolist(),
        "posterior_lps": post.tolist(),
        "posterior_edge_lps": edge.tolist(),
        "plane_from": "disc label",
    }


def _vertebrae(labels: Volume, present: set[int], discs: list[dict]) -> list[dict[str, Any]]:
    out = []
    by_name = {d["label"]: d for d in discs}
    for name in ("T12", "L1", "L2", "L3", "L4", "L5", "L6"):
        code = VERTEBRA_CODES[name]
        if code not in present:
            continue
        around = [d for label, d in by_name.items() if label.startswith(f"{name}-") or label.endswith(f"-{name}")]
        if not around:
            continue
        normal = np.mean([d["normal_lps"] for d in around], axis=0)
        centre = labels.index_to_world(np.argwhere(labels.array == code)).mean(axis=0)
        out.append(
            {"label": name, "center_lps": centre.tolist(), "normal_lps": (normal / np.linalg.norm(normal)).tolist()}
        )
    return out
