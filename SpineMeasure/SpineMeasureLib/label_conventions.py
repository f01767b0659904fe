"""Label maps of the tools people already run, converted to the project's codes (SpineLocalizerLib/labels.py).

One table per convention (`CONVENTIONS`): what each source code is in our terms, and what the convention cannot
give (`CANNOT`, by measurement, with the reason). The documented table is docs/measurements.md, "Label maps of
other tools". Sources of the code tables:
- SPINEPS (Möller et al., Eur Radiol 2025): instance mask with VerSe vertebra codes, 100 + vertebra for its disc
  below, 200 + vertebra for its endplate; semantic subregion mask 41 arcus, 42 spinous process, 43/44 costal
  (transverse) process left/right, 45/46 superior and 47/48 inferior articular process left/right, 49 corpus
  border, 50 corpus, 60 spinal cord, 61 spinal canal, 62 endplate, 100 disc.
- TotalSpineSeg (Warszawer et al. 2025, README "List of Classes"): 1 cord, 2 canal, 11-17 C1-C7, 21-32 T1-T12,
  41-45 L1-L5, 50 sacrum, 63-67 discs C2-C3..C6-C7, 71 C7-T1, 72-82 T1-T2..T11-T12, 91 T12-L1, 92-95
  L1-L2..L4-L5, 100 L5-S. Vertebrae are whole (body and posterior elements).
- TotalSegmentator MRI (Wasserthal et al. / D'Antonoli et al. 2024) `total_mr`: 18 sacrum, 19 vertebrae, 20
  discs, 21 cord, 46/47 autochthon left/right, 48/49 iliopsoas left/right (one label for all vertebrae and one for
  all discs); `vertebrae_mr`: 1 sacrum, 2-6 L5-L1, 7-18 T12-T1, 19-25 C7-C1 (whole vertebrae, no discs).
- VIBESegmentator (Graf et al., Eur Radiol 2025; README "Label overview"): 23 sacrum, 52 cord, 59/60 autochthon
  left/right, 61/62 iliopsoas left/right, 68 disc, 69 vertebral body, 70 posterior elements, 71 spinal canal
  (one label for all levels).
Where a convention has no level per vertebra or disc, discs are separated into connected pieces and named upward
from the sacrum with five lumbar vertebrae (the default of the planner, networks/sequence_matching.py); the
conversion says so (`levels` = "counted up from the sacrum") so the rows can carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from SpineLocalizerLib.labels import DISC_CODE_OFFSET, STRUCTURE_CODES, VERTEBRA_CODES
from SpineLocalizerLib.volume_io import Volume

S = STRUCTURE_CODES
SACRUM = VERTEBRA_CODES["S1"]
# The full VerSe numbering, for reading other tools' maps: C1-C7 1-7, T1-T12 8-19, L1-L6 20-25, sacrum 26. The
# project map holds only T8 (15) .. S1 (26) as vertebrae: lower codes are its structure codes.
VERSE_NAMES = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{7 + i: f"T{i}" for i in range(1, 13)},
    **{19 + i: f"L{i}" for i in range(1, 7)},
    26: "S1",
}
CONVENTION_NAMES = ("project", "spineps", "totalspineseg", "totalsegmentator", "vibe")

# What each convention cannot give, by measurement prefix, and why (the same words go into the rows).
_NO_PEDICLE = "the map has no pedicle label (foraminal height is measured between pedicles)"
_NO_FACETS = "the map has no articular processes (facet angle and lateral recess need them)"
_NO_PSOAS = "the map has no psoas label"
_NO_CANAL_BOUND = "the map has no articular processes to bound the canal (herniation needs the SAP tips)"
CANNOT: dict[str, dict[str, str]] = {
    "spineps": {
        "foraminal_height": "SPINEPS joins pedicle and lamina in one label (41, arcus vertebrae): no pedicle to measure between",
        "psoas": "SPINEPS labels the spine only: no psoas",
        "herniation": "SPINEPS has no herniation label: the ratio and MSU class would read as no herniation",
        "msu_class": "SPINEPS has no herniation label",
    },
    "totalspineseg": {
        "foraminal_height": _NO_PEDICLE,
        "facet": _NO_FACETS,
        "lateral_recess": _NO_FACETS,
        "herniation": _NO_CANAL_BOUND,
        "msu_class": _NO_CANAL_BOUND,
        "psoas": _NO_PSOAS,
    },
    "totalsegmentator": {
        "foraminal_height": _NO_PEDICLE,
        "facet": _NO_FACETS,
        "lateral_recess": _NO_FACETS,
        "herniation": _NO_CANAL_BOUND,
        "msu_class": _NO_CANAL_BOUND,
        "canal_diameter": "TotalSegmentator MRI has no posterior arch apart from the vertebra",
        "dural_sac": "TotalSegmentator MRI labels the cord, not the dural sac",
        "canal_area": "TotalSegmentator MRI labels the cord, not the dural sac",
    },
    "vibe": {
        "foraminal_height": _NO_PEDICLE,
        "facet": _NO_FACETS,
        "lateral_recess": _NO_FACETS,
        "herniation": _NO_CANAL_BOUND,
        "msu_class": _NO_CANAL_BOUND,
    },
}


@dataclass
class Converted:
    labels: Volume
    convention: str
    levels: str  # "from the map" or "counted up from the sacrum (five lumbar vertebrae assumed)"
    notes: list[str] = field(default_factory=list)

    def cannot(self, measurement: str) -> str | None:
        """Why this convention cannot give `measurement`, or None."""
        for prefix, reason in CANNOT.get(self.convention, {}).items():
            if measurement.startswith(prefix):
                return reason
        return None


def _like(vol: Volume, array: np.ndarray) -> Volume:
    return Volume(array.astype(np.uint8), vol.spacing, vol.origin, vol.direction)


def _fits(values: set[int]) -> list[str]:
    """The conventions whose code tables hold every value of a map (and at least one code typical of them)."""
    from SpineLocalizerLib.labels import CODE_TO_VERTEBRA, is_disc_code

    discs = {v for v in values if is_disc_code(v)}
    fits: list[str] = []
    if values <= {*STRUCTURE_CODES.values(), *CODE_TO_VERTEBRA, *discs} and (discs or values & set(CODE_TO_VERTEBRA)):
        fits.append("project")
    if len(values) < 2:
        # Another tool's segmentation of a spine holds several structures; one code alone is no evidence of which.
        return fits
    spineps = {*range(41, 51), 60, 61, 62, 100}
    if values <= spineps and values & {47, 48, 49, 60, 61, 62}:
        fits.append("spineps")
    tss_discs = {*range(63, 68), *range(71, 83), *range(91, 96), 100}
    tss = {1, 2, 50, *range(11, 18), *range(21, 33), *range(41, 46), *tss_discs}
    if values <= tss and values & tss_discs:
        fits.append("totalspineseg")
    if values <= set(range(1, 73)) and values & {68, 69, 70, 71}:
        fits.append("vibe")
    # total_mr shares 41-50 with SPINEPS's subregions: a map holding only SPINEPS codes is read as SPINEPS unless it
    # has a spine label of total_mr (18 sacrum, 19 vertebrae, 20 discs, 21 cord) as well. vertebrae_mr (1-25) looks
    # like anything and is only read when named (--labels-from totalsegmentator).
    if values <= set(range(1, 51)) and (
        values & {18, 19, 20, 21} or (values & {46, 47, 48, 49} and not values <= spineps)
    ):
        fits.append("totalsegmentator")
    return fits


def detect_convention(values: set[int]) -> str:
    """The one convention a label map's non-zero values fit; raises, naming the candidates, when none or several
    do (the user then says which with --labels-from)."""
    values = {int(v) for v in values if v}
    fits = _fits(values)
    if len(fits) == 1:
        return fits[0]
    shown = ", ".join(map(str, sorted(values)[:10])) + (" ..." if len(values) > 10 else "")
    if not fits:
        raise ValueError(
            f"the label map's values ({shown}) fit none of the known conventions; convert it to the project's codes "
            f"(docs/phantom.md) or say which it is with --labels-from ({'/'.join(CONVENTION_NAMES)})"
        )
    raise ValueError(
        f"the label map's values ({shown}) fit several conventions ({', '.join(fits)}); say which with --labels-from"
    )


def convert(labels: Volume, convention: str, instances: Volume | None = None) -> Converted:
    """`labels` (and SPINEPS's instance mask) in the project's codes."""
    if convention not in CONVENTION_NAMES:
        raise ValueError(f"unknown label convention {convention!r}; one of {', '.join(CONVENTION_NAMES)}")
    if instances is not None and not instances.same_grid(labels):
        raise ValueError("the instance mask and the semantic mask are on different grids")
    if convention == "project":
        return Converted(labels, "project", "from the map")
    return {
        "spineps": _spineps,
        "totalspineseg": _totalspineseg,
        "totalsegmentator": _totalsegmentator,
        "vibe": _vibe,
    }[convention](labels, instances)


def _project_vertebra(verse: np.ndarray) -> np.ndarray:
    """VerSe vertebra codes to project codes: T8..S1 kept, the rest (cervical, upper thoracic) dropped (0)."""
    return np.where((verse >= VERTEBRA_CODES["T8"]) & (verse <= SACRUM), verse, 0)


def _spineps(labels: Volume, instances: Volume | None) -> Converted:
    sem = labels.array.astype(np.int32)
    out = np.zeros(sem.shape, dtype=np.int32)
    table = {41: S["lamina"], 42: S["spinous_process"], 43: S["transverse_process"], 44: S["transverse_process"]}
    table |= {45: S["superior_articular_process"], 46: S["superior_articular_process"]}
    table |= {47: S["inferior_articular_process"], 48: S["inferior_articular_process"]}
    table |= {60: S["spinal_cord"], 61: S["dural_sac"]}
    for src, dst in table.items():
        out[sem == src] = dst
    notes = []
    if instances is None:
        notes.append("no instance mask (--instances): vertebral bodies and discs have no level and are left out")
        return Converted(_like(labels, out), "spineps", "none", notes)
    inst = instances.array.astype(np.int32)
    vert = np.where(inst >= 200, inst - 200, np.where(inst < DISC_CODE_OFFSET, inst, 0))
    body = np.isin(sem, (49, 50, 62))
    out[body] = _project_vertebra(vert)[body]
    disc = (sem == 100) | ((inst > DISC_CODE_OFFSET) & (inst < 200))
    upper = np.where((inst > DISC_CODE_OFFSET) & (inst < 200), inst - DISC_CODE_OFFSET, 0)
    out[disc & (upper > 0)] = DISC_CODE_OFFSET + upper[disc & (upper > 0)]
    dropped = sorted({VERSE_NAMES.get(int(v), str(v)) for v in np.unique(vert[body]) if 0 < v < VERTEBRA_CODES["T8"]})
    if dropped:
        notes.append(f"bodies of {', '.join(dropped)} are outside the project's vertebra codes; their discs are kept")
    return Converted(_like(labels, out), "spineps", "from the map", notes)


def _split_whole_vertebrae(labels: Volume, vert: np.ndarray, canal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(body codes, posterior-element mask) of whole-vertebra labels: a vertebra's voxels from the canal's anterior
    wall backwards are its posterior elements (the arch around the canal), the rest its body. Without a canal
    label the whole vertebra stays body."""
    body = vert.copy()
    post = np.zeros(vert.shape, dtype=bool)
    if not canal.any():
        return body, post
    posterior = np.asarray(labels.direction, dtype=float).reshape(3, 3).T @ np.array([0.0, 1.0, 0.0])
    idx_canal = np.argwhere(canal)
    for code in np.unique(vert[vert > 0]):
        idx = np.argwhere(vert == code)
        k_lo, k_hi = idx[:, 2].min(), idx[:, 2].max()
        near = idx_canal[(idx_canal[:, 2] >= k_lo) & (idx_canal[:, 2] <= k_hi)]
        if len(near) < 10:
            continue
        spacing = np.asarray(labels.spacing, dtype=float)
        ap_canal = (near * spacing) @ posterior
        ap = (idx * spacing) @ posterior
        behind = ap >= np.percentile(ap_canal, 2)
        sel = tuple(idx[behind].T)
        body[sel] = 0
        post[sel] = True
    return body, post


def _name_up_from_sacrum(labels: Volume, disc: np.ndarray, sacrum: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Disc codes for an unlevelled disc mask: its connected pieces, named upward from the one nearest the sacrum
    with five lumbar vertebrae (L5-S1, L4-L5, ...). Without a sacrum the discs stay unnamed (left out)."""
    pieces, n = ndimage.label(disc)
    out = np.zeros(disc.shape, dtype=np.int32)
    if n == 0 or not sacrum.any():
        return out, ["no sacrum in the map: unlevelled discs cannot be named and are left out"]
    sizes = ndimage.sum(disc, pieces, range(1, n + 1))
    keep = [i + 1 for i, s in enumerate(sizes) if s >= 0.2 * max(sizes)]
    centres = {i: labels.index_to_world(np.argwhere(pieces == i).mean(axis=0)[None])[0] for i in keep}
    top_sacrum = labels.index_to_world(np.argwhere(sacrum))[:, 2].max()
    above = sorted((c[2], i) for i, c in centres.items() if c[2] > top_sacrum - 15.0)
    names = ["L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8"]
    for (_, piece), upper in zip(above, names):
        out[pieces == piece] = DISC_CODE_OFFSET + VERTEBRA_CODES[upper]
    return out, [f"{min(len(above), len(names))} discs named upward from the sacrum (five lumbar vertebrae assumed)"]


def _totalspineseg(labels: Volume, instances: Volume | None) -> Converted:
    a = labels.array.astype(np.int32)
    verse = np.zeros(a.shape, dtype=np.int32)
    for src, dst in {**{10 + i: i for i in range(1, 8)}, **{20 + i: 7 + i for i in range(1, 13)}}.items():
        verse[a == src] = dst
    for i in range(1, 6):
        verse[a == 40 + i] = 19 + i
    verse[a == 50] = SACRUM
    body, post = _split_whole_vertebrae(labels, verse, a == 2)
    out = _project_vertebra(body)
    out[post] = S["lamina"]
    out[a == 1] = S["spinal_cord"]
    out[a == 2] = S["dural_sac"]
    # Discs: 63-67 C2-C3..C6-C7, 71 C7-T1, 72-82 T1-T2..T11-T12, 91 T12-L1, 92-95 L1-L2..L4-L5, 100 L5-S.
    upper = {**{61 + i: i for i in range(2, 7)}, 71: 7, **{71 + i: 7 + i for i in range(1, 12)}, 91: 19}
    upper |= {91 + i: 19 + i for i in range(1, 5)} | {100: 24}
    for src, up in upper.items():
        out[a == src] = DISC_CODE_OFFSET + up
    notes = ["vertebrae are whole in TotalSpineSeg: voxels from the canal's anterior wall back are read as the arch"]
    return Converted(_like(labels, out), "totalspineseg", "from the map", notes)


def _totalsegmentator(labels: Volume, instances: Volume | None) -> Converted:
    """`total_mr` (discs, cord, psoas, autochthon; one label for all vertebrae, one for all discs) or, when the map
    holds none of those, `vertebrae_mr` (whole vertebrae with levels, no discs)."""
    a = labels.array.astype(np.int32)
    out = np.zeros(a.shape, dtype=np.int32)
    if not set(np.unique(a).tolist()) & {20, 21, 46, 47, 48, 49} and a.max() <= 25:
        # vertebrae_mr: 1 sacrum, 2-6 L5-L1, 7-18 T12-T1, 19-25 C7-C1.
        verse = np.where(a == 1, SACRUM, np.where(a >= 2, 26 - a, 0))
        notes = ["vertebrae_mr: whole vertebrae and no discs: disc planes are taken between adjacent bodies"]
        return Converted(_like(labels, _project_vertebra(verse)), "totalsegmentator", "from the map", notes)
    out[a == 18] = SACRUM
    out[a == 21] = S["spinal_cord"]
    out[a == 46] = S["paraspinal_left"]
    out[a == 47] = S["paraspinal_right"]
    out[a == 48] = S["psoas_left"]
    out[a == 49] = S["psoas_right"]
    discs, notes = _name_up_from_sacrum(labels, a == 20, a == 18)
    out[discs > 0] = discs[discs > 0]
    notes.append("iliopsoas is read as psoas: at lumbar levels above the iliac crest the two are one muscle")
    return Converted(_like(labels, out), "totalsegmentator", "counted up from the sacrum", notes)


def _vibe(labels: Volume, instances: Volume | None) -> Converted:
    a = labels.array.astype(np.int32)
    out = np.zeros(a.shape, dtype=np.int32)
    out[a == 23] = SACRUM
    out[a == 52] = S["spinal_cord"]
    out[a == 59] = S["paraspinal_left"]
    out[a == 60] = S["paraspinal_right"]
    out[a == 61] = S["psoas_left"]
    out[a == 62] = S["psoas_right"]
    out[a == 70] = S["lamina"]
    out[(a == 71) & (out == 0)] = S["dural_sac"]
    discs, notes = _name_up_from_sacrum(labels, a == 68, a == 23)
    out[discs > 0] = discs[discs > 0]
    notes.append("VIBESegmentator's spinal canal (71) is read as the dural sac; bodies (69) have no level")
    notes.append("iliopsoas is read as psoas: at lumbar levels above the iliac crest the two are one muscle")
    return Converted(_like(labels, out), "vibe", "counted up from the sacrum", notes)
