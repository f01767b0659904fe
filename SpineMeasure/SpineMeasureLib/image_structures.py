"""A label map in the project's codes from the image alone: the structure network (SpineLocalizerLib/networks/
segment_structures.py) on an axial slice stack or, along a plan, on a sagittal / 3D volume; levels from the plan
(or, for one slice group, the level it was resliced for).

What the network cannot give is said per row (`NETWORK_CANNOT`): it has one class for the whole bony arch, so no
pedicle to measure a foraminal height between, and on held-apart phantoms it finds herniations too poorly
(docs/results.md) for its herniation ratio or MSU class to be given as numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from SpineLocalizerLib.labels import VERTEBRA_CODES
from SpineLocalizerLib.networks import segment_structures as seg
from SpineLocalizerLib.networks.structure_classes import CLASS_INDEX, to_project_codes
from SpineLocalizerLib.volume_io import Volume

from .measurement_planes import posterior_edge

NETWORK_CANNOT = {
    "foraminal_height": "the structure network has one class for the bony arch: no pedicle to measure between",
    "herniation": "the structure network finds herniations too poorly for a ratio (phantom Dice 0.64; docs/results.md)",
    "msu_class": "the structure network's MSU class agrees with the truth in 83 % of phantom discs (volumes; under the 85 % asked; docs/results.md)",
}
SLICE_STACK_MIN_MM = 2.0  # thicker slices than this along head-foot: an axial stack, segmented slice by slice
LEVEL_IN_NAME = re.compile(r"((?:T1[0-2]|T[89]|L[1-6])-(?:L[1-6]|S1|T1[0-2]|T9))_axial")


@dataclass
class Segmented:
    labels: Volume  # project codes
    plan: dict[str, Any]  # the planes measured (disc entries refined on the segmented disc)
    mode: str  # "axial slices" or "along the plan"
    notes: list[str]
    covered: np.ndarray | None = None  # voxels the network saw (a volume's grid is a box around oblique slabs)


def is_axial_stack(image: Volume) -> bool:
    """An axial slice stack: the voxel axis closest to head-foot is the thick one (>= 2 mm) and the others thin."""
    axis, *_ = seg.slice_axes(image)
    spacing = np.asarray(image.spacing, dtype=float)
    return spacing[axis] >= SLICE_STACK_MIN_MM and spacing[axis] >= 1.5 * np.delete(spacing, axis).max()


def _vertebrae_of(level: str) -> tuple[int | None, int | None]:
    upper, lower = level.split("-")
    return VERTEBRA_CODES.get(upper), VERTEBRA_CODES.get(lower)


def level_from_name(path: str | Path) -> str | None:
    """The disc level in a slice group's file name as `spine-localizer reslice` writes it (L4-L5_axial.nii.gz)."""
    m = LEVEL_IN_NAME.search(Path(path).name)
    return m.group(1) if m else None


def _refined(disc: dict[str, Any], labels: Volume, code: int) -> dict[str, Any] | None:
    """The plan's disc entry with its centre and posterior edge taken from the segmented disc (the plane's
    orientation stays the plan's: an edited plane is measured as edited); None when the disc was not found."""
    normal = np.asarray(disc["normal_lps"], dtype=float)
    pts = labels.index_to_world(np.argwhere(labels.array == code))
    centre = np.asarray(disc.get("centroid_lps", pts.mean(axis=0) if len(pts) else [0, 0, 0]), dtype=float)
    near = pts[np.abs((pts - centre) @ normal) < 6.0] if len(pts) else pts
    if len(near) < 30:
        return None
    centre = near.mean(axis=0)
    left, post = np.asarray(disc["left_lps"], dtype=float), np.asarray(disc["posterior_lps"], dtype=float)
    out = dict(disc)
    out |= {"centroid_lps": centre.tolist(), "value": int(code)}
    out["posterior_edge_lps"] = posterior_edge(near, centre, left, post, normal).tolist()
    out["plane_from"] = "plan, centred on the segmented disc"
    return out


def segment_slice_group(run, image: Volume, disc: dict[str, Any]) -> Segmented:
    """One axial slice group of `disc` (a plan's entry, or one built from the slices for a named level)."""
    classes, frames = seg.segment_slices(run, image)
    axis, left, post, normal = seg.slice_axes(image)
    pts = image.index_to_world(np.indices(image.array.shape).reshape(3, -1).T)
    centre_k = np.array([f.centre for f in frames])[np.indices(image.array.shape)[axis].ravel()]
    u = ((pts - centre_k) @ left).reshape(image.array.shape)
    disc_pts = pts[classes.ravel() == CLASS_INDEX["disc"]]
    centre = disc_pts.mean(axis=0) if len(disc_pts) else frames[len(frames) // 2].centre
    w = ((pts - centre) @ normal).reshape(image.array.shape)
    upper, lower = _vertebrae_of(disc["label"])
    labels = to_project_codes(classes, u > 0, int(disc["value"]), upper)
    labels[(classes == CLASS_INDEX["vertebral body"]) & (w < 0)] = lower or 0
    vol = Volume(labels, image.spacing, image.origin, image.direction)
    entry = {"label": disc["label"], "normal_lps": disc.get("normal_lps", normal.tolist()), "centroid_lps": centre}
    entry |= {
        "left_lps": disc.get("left_lps", left.tolist()),
        "posterior_lps": disc.get("posterior_lps", post.tolist()),
    }
    refined = _refined(entry, vol, int(disc["value"]))
    notes = [] if refined else [f"the network found no disc in the slices of {disc['label']}"]
    # The psoas is measured in the slice group's middle plane (the disc level) when the group has no vertebra.
    vert = {"label": disc["label"], "center_lps": list(map(float, centre)), "normal_lps": list(map(float, normal))}
    plan = {"discs": [refined] if refined else [], "vertebrae": [vert], "source": "network"}
    return Segmented(vol, plan, "axial slices", notes)


def segment_volume(run, image: Volume, plan: dict[str, Any]) -> Segmented:
    """A sagittal or 3D volume segmented on planes along each planned lumbar disc, merged onto a 0.75 mm grid."""
    discs = [d for d in plan["discs"] if d["label"].split("-")[0][0] in "TL"]
    slabs = seg.segment_along_plan(run, image, plan, discs)

    def codes_of(slab: seg.DiscSlab, classes, u_mm, w):
        upper, lower = _vertebrae_of(slab.disc["label"])
        out = to_project_codes(classes, u_mm > 0, int(slab.disc["value"]), upper)
        out[(classes == CLASS_INDEX["vertebral body"]) & (w < 0)] = lower or 0
        return out

    labels, covered = seg.merge_slabs(slabs, seg.slabs_grid(slabs, image), codes_of)
    refined, notes = [], []
    for d in discs:
        r = _refined(d, labels, int(d["value"]))
        if r is None:
            notes.append(f"the network found no disc at {d['label']}")
        else:
            refined.append(r)
    out_plan = {"discs": refined, "vertebrae": plan.get("vertebrae", []), "source": "network"}
    return Segmented(labels, out_plan, "along the plan", notes, covered)


def _check_hint(why: str, level: str) -> str:
    return (
        f"the network's segmentation looks wrong here ({why}); check segmentation_{level}.png or segmentation.nii.gz, "
        "correct it and measure again with --labels"
    )


def gated(rows: list, labels: Volume, plan: dict[str, Any]) -> list:
    """Rows of levels whose segmentation fails the anatomical checks (segmentation_checks.py) turned "not
    measurable" with the reason: numbers read off a failed segmentation would be silent wrong numbers."""
    from .results import not_measurable
    from .segmentation_checks import implausible_disc, implausible_psoas

    bad: dict[tuple[str, str], str] = {}
    for disc in plan["discs"]:
        why = implausible_disc(labels, disc)
        if why:
            bad[(disc["label"], "")] = _check_hint(why, disc["label"])
    discs = plan["discs"]
    left = np.mean([d["left_lps"] for d in discs], axis=0) if discs else np.array([1.0, 0.0, 0.0])
    for vert in plan.get("vertebrae", []):
        n = np.asarray(vert["normal_lps"], dtype=float)
        lv = left - n * (left @ n)
        lv /= np.linalg.norm(lv)
        for side in ("left", "right"):
            why = implausible_psoas(labels, np.asarray(vert["center_lps"]), lv, np.cross(n, lv), side)
            if why:
                bad[(vert["label"], side)] = _check_hint(why, vert["label"])
    out = []
    for r in rows:
        if r.measurement.startswith("psoas"):
            sides = ("left", "right") if "asymmetry" in r.measurement else (r.measurement.split("_")[2],)
            why = next((bad[(r.level, s)] for s in sides if (r.level, s) in bad), None)
        else:
            why = bad.get((r.level, ""))
        out.append(not_measurable(r.level, r.measurement, r.method, why) if why else r)
    return out
