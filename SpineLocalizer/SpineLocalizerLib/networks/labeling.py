"""Disc labeling (LVP module 3) and fusion, torch-free: from the disc probability, the level heatmaps and the
level classifier's log-probabilities to named disc components.

The disc probability is cut into candidates (hysteresis, size and shape checks, fragments of one disc merged);
only the longest chain of candidates stacked like the discs of one spine is kept, and the chain is named by the
sequence matching (networks/sequence_matching.py).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..labels import disc_code
from . import heatmap_levels
from .canonical import CanonicalGrid
from .sequence_matching import match_sequence, naming_evidence, unnamed

MIN_DISC_MM3 = 250.0
MAX_DISC_MM3 = 40_000.0  # a disc is at most ~60 x 45 x 15 mm


LOW_THRESHOLD = 0.25
MIN_DISC_THICKNESS_MM = 1.5
MIN_DISC_WIDTH_MM = 12.0


def _disc_shaped(region: np.ndarray, spacing: float) -> bool:
    """Thickness and width from the principal variances (a uniform slab of extent t has variance t^2 / 12)."""
    pts = np.argwhere(region) * spacing
    if len(pts) < 4:
        return False
    lam = np.linalg.eigvalsh(np.cov((pts - pts.mean(axis=0)).T))
    thickness, width = np.sqrt(12.0 * np.clip(lam[[0, 2]], 0.0, None))
    return thickness >= MIN_DISC_THICKNESS_MM and width >= MIN_DISC_WIDTH_MM


CHAIN_STEP_MM = (12.0, 85.0)  # neighbouring discs (one may be missed) are 12-85 mm apart cranio-caudally
CHAIN_SLOPE = 1.0  # ... and at most this much apart horizontally per mm of height (lordosis at L5-S1, scoliosis)


def _longest_chain(centres_mm: np.ndarray) -> np.ndarray:
    """Indices (into `centres_mm`, sorted by height) of the longest chain of candidates each of which could be the
    next disc above the previous one; other candidates (bowel, vessels, fragments) are dropped."""
    n = len(centres_mm)
    length, prev, slope = np.ones(n, dtype=int), np.full(n, -1), np.full(n, np.inf)
    for j in range(n):
        for i in range(j):
            dz = centres_mm[j, 2] - centres_mm[i, 2]
            dh = np.linalg.norm(centres_mm[j, :2] - centres_mm[i, :2])
            if not (CHAIN_STEP_MM[0] <= dz <= CHAIN_STEP_MM[1] and dh <= CHAIN_SLOPE * dz):
                continue
            # Equally long chains: the straighter step wins (a blob beside the spine can start a chain as long as
            # the one through the disc next to it).
            straighter = prev[j] >= 0 and dh / dz < slope[j]
            if length[i] + 1 > length[j] or (length[i] + 1 == length[j] and straighter):
                length[j], prev[j], slope[j] = length[i] + 1, i, dh / dz
    chain, j = [], int(np.argmax(length)) if n else -1
    while j >= 0:
        chain.append(j)
        j = int(prev[j])
    return np.array(chain[::-1], dtype=int)


FRAGMENT_MM = (12.0, 30.0)  # closer than this cranio-caudally (and horizontally) is one disc, not two


def _fragment_groups(centres_mm: np.ndarray) -> list[list[int]]:
    """Candidates grouped into discs: a candidate joins a group when its centre is less than `FRAGMENT_MM` from
    one of the group's (neighbouring discs are never that close, CHAIN_STEP_MM)."""
    groups: list[list[int]] = []
    for i in np.argsort(centres_mm[:, 2]):
        for g in groups:
            d = np.abs(centres_mm[g] - centres_mm[i])
            if np.any((d[:, 2] < FRAGMENT_MM[0]) & (np.linalg.norm(d[:, :2], axis=1) < FRAGMENT_MM[1])):
                g.append(int(i))
                break
        else:
            groups.append([int(i)])
    return groups


def label_discs(
    prob: np.ndarray,
    heat4: np.ndarray,
    offset4: np.ndarray,
    box,
    grid: CanonicalGrid,
    lumbar_count: int | None,
    spine_bottom_mm: float | None = None,
    usable: np.ndarray | None = None,
    classify=None,
    outside_spine: bool = False,
):
    """Disc codes on the box from the disc probability and the heatmaps (cropped at `offset4`, 4 mm voxels).

    `usable` (box-shaped, optional): voxels inside the image and near the spine; a component counts as a disc
    only if most of it lies there and it has a disc's shape (a slab at least `MIN_DISC_THICKNESS_MM` thick and
    `MIN_DISC_WIDTH_MM` wide). `classify` (optional): canonical voxel centres -> class log-probabilities (n x 3)
    of the level classifier. Only the longest chain of candidates stacked like discs of one spine is kept
    (`_longest_chain`): blobs beside the spine (bowel, heart, vessels) cannot enter the sequence matching.
    `outside_spine`: the box is not restricted to a located spine (wide search), so the chain is believed only if
    the classifier takes most of it for discs.
    """
    # Hysteresis: a disc is a region above LOW_THRESHOLD that reaches 0.5 somewhere. A disc the network is unsure
    # of (typically a steep lumbosacral disc) breaks up at 0.5 into fragments too small to count.
    disc_mask = prob > LOW_THRESHOLD
    comp, n = ndimage.label(disc_mask)
    if n:
        seeded = ndimage.maximum(prob, comp, range(1, n + 1)) > 0.5
        disc_mask &= np.concatenate([[False], seeded])[comp]
        comp, n = ndimage.label(disc_mask)
    out = np.zeros(disc_mask.shape, dtype=np.uint8)
    if n == 0:
        return out, {}, lumbar_count or 5, "no disc found", unnamed(lumbar_count)
    sizes = ndimage.sum(disc_mask, comp, range(1, n + 1)) * grid.spacing**3
    big = [lab for lab in range(1, n + 1) if MIN_DISC_MM3 <= sizes[lab - 1] <= MAX_DISC_MM3]
    if usable is not None and big:
        inside = ndimage.mean(usable, comp, big)
        big = [lab for lab, f in zip(big, inside) if f >= 0.5]
    # Per-component work happens in each component's own bounding box (whole-box masks cost ~1 ms each).
    boxes = ndimage.find_objects(comp)

    def voxels(lab: int) -> np.ndarray:
        sl = boxes[lab - 1]
        return np.argwhere(comp[sl] == lab) + np.array([b.start for b in sl])

    big = [lab for lab in big if _disc_shaped(comp[boxes[lab - 1]] == lab, grid.spacing)]
    if not big:
        return out, {}, lumbar_count or 5, "no disc of plausible size", unnamed(lumbar_count)
    centres = np.array(ndimage.center_of_mass(disc_mask, comp, big))
    groups = _fragment_groups(centres * grid.spacing)
    if len(groups) < len(big):
        # Pieces of one disc (a real disc can break up across a dark cleft or a herniation) become one candidate.
        lut = np.arange(comp.max() + 1)
        for g in groups:
            lut[[big[i] for i in g[1:]]] = big[g[0]]
        comp = lut[comp]
        boxes = ndimage.find_objects(comp)
        big = [big[g[0]] for g in groups]
        centres = np.array(ndimage.center_of_mass(disc_mask, comp, big))
    order = np.argsort(centres[:, 2])  # canonical k runs superior: most caudal first
    order = order[_longest_chain(centres[order] * grid.spacing)]
    big = [big[i] for i in order]
    centres_mm = centres[order] * grid.spacing
    offset = np.array([s.start for s in box])
    # Spine (bodies) continuing well below the lowest disc means the sacrum is in view: that disc is lumbosacral.
    sacrum_below = (
        spine_bottom_mm is not None and (offset[2] * grid.spacing + centres_mm[0, 2]) - spine_bottom_mm > 25.0
    )
    responses = np.zeros((len(big), heat4.shape[0]))
    for r, lab in enumerate(big):
        idx = voxels(lab) + offset  # 2 mm canonical voxels
        idx4 = np.clip(idx // 2 - offset4, 0, np.array(heat4.shape[1:]) - 1)
        vals = heat4[:, idx4[:, 0], idx4[:, 1], idx4[:, 2]]
        responses[r] = np.clip(vals.max(axis=1) / heatmap_levels.HEATMAP_PEAK, 0.0, 1.0)
    heights, areas = np.zeros(len(big)), np.zeros(len(big))
    for r, lab in enumerate(big):
        vox = voxels(lab)
        pts = vox * grid.spacing
        w = prob[tuple(vox.T)]
        c = np.average(pts, axis=0, weights=w)
        lam = np.sqrt(12.0 * np.clip(np.linalg.eigvalsh(np.cov((pts - c).T, aweights=w)), 0.0, None))
        heights[r] = lam[0]  # a slab of thickness t has variance t^2 / 12 across it
        areas[r] = lam[1] * lam[2]  # AP depth x width of the footprint (a rectangle's; only ratios are used)
    class_logp = None if classify is None else classify(centres_mm / grid.spacing + offset)
    if outside_spine and class_logp is not None and class_logp.shape[1] > heatmap_levels.NOT_A_DISC:
        # Outside a located spine, a chain is only believed if the classifier takes most of it for discs (noise
        # and soft tissue can line up too).
        if float(np.mean(np.exp(class_logp[:, heatmap_levels.NOT_A_DISC]))) >= 0.5:
            return out, {}, lumbar_count or 5, "no chain of discs found", unnamed(lumbar_count)
    by_count: dict[int, float] = {}
    overruled: dict = {}
    score, count, shift, names = match_sequence(
        responses,
        centres_mm,
        lumbar_count,
        heights_mm=heights,
        sacrum_below=sacrum_below,
        areas_mm2=areas,
        class_logp=class_logp,
        by_count=by_count,
        overruled=overruled,
    )
    confidences, per_disc = {}, {}
    for r, lab in enumerate(big):
        level = r + shift
        if level < 0 or level >= len(names):  # below: a sacral candidate, not a disc; above: beyond T8-T9
            continue
        upper = names[level].split("-")[0]
        code = disc_code(upper)
        region = tuple(voxels(lab).T)
        out[region] = code
        ch = heatmap_levels.level_channel(names[level])
        confidences[code] = float(responses[r, ch] * prob[region].mean()) if ch is not None else 0.0
        per_disc[code] = {
            "name": names[level],
            "disc_probability": float(prob[region].mean()),
            "heatmap_response": float(responses[r, ch]) if ch is not None else 0.0,
            "class_probability": (
                None if class_logp is None else float(np.exp(class_logp[r, heatmap_levels.class_of(names[level])]))
            ),
        }
    message = "ok" if shift <= 0 else f"the lowest {shift} disc(s) lie below the field of view"
    naming = naming_evidence(
        count, lumbar_count, by_count, [d["name"] for d in per_disc.values()], shift, overruled.get("count")
    )
    naming["discs"] = per_disc
    return out, confidences, count, message, naming
