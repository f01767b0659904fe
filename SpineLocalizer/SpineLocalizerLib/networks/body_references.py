"""Disc positions derived from labelled vertebral bodies.

Real datasets often label only the vertebral bodies (shared/data/real/vertebrae_t2: T11..L5, no discs, no
sacrum). Two users of the same geometry:
- evaluation on real images: a reference disc sits between two adjacent labelled bodies (midpoint of the facing
  endplates, mean of their normals);
- training the level classifier on a user's own label maps (`level_targets`): each such disc is a "thoracic" or
  "lumbar" example, the body centres are "not a disc", and the lumbosacral disc is taken between the last lumbar
  body and the sacrum when the sacrum is labelled, or extrapolated just below L5 (L6 when labelled) when it is not,
  with sacral "not a disc" points below it. A map whose lowest body is L5 is read as five lumbar vertebrae.
"""

from __future__ import annotations

import numpy as np

from ..labels import CODE_TO_VERTEBRA, VERTEBRA_CODES, disc_code
from ..volume_io import Volume

ORDER = list(VERTEBRA_CODES)  # T8 .. L6, S1 (anatomical order, cranial first)
LAST_LUMBAR = ("L4", "L5", "L6")
# Extrapolated lumbosacral disc: half a typical L5-S1 disc height below L5's lower endplate (adult L5-S1 discs are
# ~8-14 mm high at the centre). Sacral points: S1 body centre (~15-20 mm further) and the S1-S2 segment border
# (~35-40 mm), where a rudimentary S1-S2 disc often shows on real T2 images.
LS_HALF_HEIGHT_MM = 5.0
SACRAL_OFFSETS_MM = (18.0, 38.0)
MIN_BODY_VOXELS = 200


def endplate(labels: Volume, code: int, pts: np.ndarray, toward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and normal (pointing along `toward`) of the endplate of body `code` that faces `toward`.

    Surface voxels are those whose neighbour 1.5 mm along `toward` is outside the body; the central 70 % of them
    (by distance from the body axis) avoid the rounded rims, and a plane is fitted to them (least variance).
    (Refitting with the fitted normal as `toward` moved phantom references by < 0.5 mm: one pass is enough.)
    """
    probe = labels.world_to_index(pts + 1.5 * toward)
    ijk = np.rint(probe).astype(int)
    inside = np.all((ijk >= 0) & (ijk < labels.array.shape), axis=1)
    outside = np.ones(len(pts), dtype=bool)
    outside[inside] = labels.array[tuple(ijk[inside].T)] != code
    surf = pts[outside & (((pts - pts.mean(axis=0)) @ toward) > 0)]
    radial = surf - surf.mean(axis=0)
    radial -= np.outer(radial @ toward, toward)
    r = np.linalg.norm(radial, axis=1)
    core = surf[r <= np.percentile(r, 70)]
    c = core.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((core - c).T))
    n = vecs[:, 0]
    return c, n * np.sign(n @ toward)


def labelled_bodies(labels: Volume) -> dict[str, tuple[int, np.ndarray]]:
    """name -> (code, world points) of every vertebra label with enough voxels, in anatomical order."""
    found = {}
    for code in np.unique(labels.array):
        name = CODE_TO_VERTEBRA.get(int(code))
        if name is not None:
            pts = labels.index_to_world(np.argwhere(labels.array == code))
            if len(pts) >= MIN_BODY_VOXELS:
                found[name] = (int(code), pts)
    return {name: found[name] for name in ORDER if name in found}


def _adjacent_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Neighbouring labelled vertebrae with no vertebra missing between them (the last lumbar one and the sacrum
    count as neighbours whatever the last lumbar one is)."""
    pairs = []
    for upper, lower in zip(names[:-1], names[1:]):
        if ORDER.index(lower) - ORDER.index(upper) == 1 or (lower == "S1" and upper in LAST_LUMBAR):
            pairs.append((upper, lower))
    return pairs


def reference_discs_from_bodies(labels: Volume) -> dict[str, dict]:
    """Disc centre, normal (cranial) and code between each pair of adjacent labelled bodies.

    Endplate planes are fitted to the bodies' surfaces because real body masks are too cube-like for their
    principal axes to give the endplate orientation.
    """
    bodies = labelled_bodies(labels)
    out = {}
    for upper, lower in _adjacent_pairs(list(bodies)):
        centre, normal = disc_between(labels, bodies[upper], bodies[lower])
        out[f"{upper}-{lower}"] = {"center": centre, "normal": normal, "code": disc_code(upper)}
    return out


def disc_between(
    labels: Volume, upper: tuple[int, np.ndarray], lower: tuple[int, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Centre (midpoint of the facing endplates) and cranial unit normal (mean of the endplate normals) of the
    disc between two adjacent bodies, each given as (label code, world points)."""
    (cu, pu), (cl, pl) = upper, lower
    down = pl.mean(axis=0) - pu.mean(axis=0)
    down /= np.linalg.norm(down)
    c_up, n_up = endplate(labels, cu, pu, down)
    c_lo, n_lo = endplate(labels, cl, pl, -down)
    normal = n_lo - n_up  # both turned to point cranially
    normal /= np.linalg.norm(normal)
    if normal[2] < 0:
        normal = -normal
    return 0.5 * (c_up + c_lo), normal


def numbered_body_discs(labels: Volume) -> list[dict]:
    """Reference discs of a map whose bodies are numbered 1..n from the most cranial one down (levels unknown,
    e.g. shared/data/real/vertebrae_mixed): one disc between each pair of consecutive numbers, cranial first,
    each with its `rank` (0 = the most cranial gap)."""
    found = {}
    for code in np.unique(labels.array):
        if code > 0:
            pts = labels.index_to_world(np.argwhere(labels.array == code))
            if len(pts) >= MIN_BODY_VOXELS:
                found[int(code)] = pts
    out = []
    for rank, code in enumerate(sorted(found)):
        if code + 1 in found:
            centre, normal = disc_between(labels, (code, found[code]), (code + 1, found[code + 1]))
            out.append({"rank": rank, "upper_body": code, "center": centre, "normal": normal})
    return out


def level_targets(labels: Volume) -> list[tuple[np.ndarray, str]]:
    """(world point, what lies there) for training the level classifier: disc names ("L2-L3", "L5-S1", ...) at
    disc centres, "not a disc" at body centres and sacral points. Empty when fewer than two bodies are labelled."""
    bodies = labelled_bodies(labels)
    discs = reference_discs_from_bodies(labels)
    out: list[tuple[np.ndarray, str]] = [(info["center"], name) for name, info in discs.items()]
    out += [(pts.mean(axis=0), "not a disc") for name, (_, pts) in bodies.items() if name != "S1"]
    lumbar = [n for n in bodies if n.startswith("L")]
    if "S1" in bodies or not lumbar or lumbar[-1] not in ("L5", "L6") or len(bodies) < 2:
        return out if len(bodies) >= 2 else []
    # No sacrum label: extrapolate the lumbosacral disc and sacral points along the last body's lower normal.
    last = lumbar[-1]
    code, pts = bodies[last]
    names = list(bodies)
    above = bodies[names[names.index(last) - 1]][1] if names.index(last) > 0 else None
    down = pts.mean(axis=0) - above.mean(axis=0) if above is not None else np.array([0.0, 0.0, -1.0])
    down /= np.linalg.norm(down)
    c, n_down = endplate(labels, code, pts, down)
    ls = c + LS_HALF_HEIGHT_MM * n_down
    out.append((ls, f"{last}-S1"))
    out += [(ls + d * n_down, "not a disc") for d in SACRAL_OFFSETS_MM]
    return out
