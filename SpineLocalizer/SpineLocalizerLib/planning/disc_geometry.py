"""Geometry of each labelled disc from a label map: PCA frame, centroid, posterior and anterior edge points.

Definitions (LVP Methods, module 4, made precise here):
- normal: of the three principal directions of the disc's voxel positions (LPS mm), the one nearest the
  cranio-caudal axis, pointing cranially. For any disc flatter than it is wide this is also the direction of
  least variance; `normal_is_thinnest` records whether that held.
- mid-plane section: the mask sampled (linear interpolation, threshold 0.5) on the plane through the centroid
  with that normal, at 0.5 mm. A disc thicker on one side (lateral wedge in scoliosis) keeps a symmetric section,
  so the section, not the 3D voxel cloud, defines the in-plane geometry.
- posterior axis: the section's principal direction nearest the patient's AP axis, pointing posteriorly. When the
  section is nearly round (eigenvalue ratio < 1.15) its principal axes are unreliable and the patient's AP axis
  projected into the disc plane is used instead.
- posterior edge point: where the disc's mid-sagittal line (through the section centroid, along the posterior
  axis, in the mid-plane) leaves the disc. It is found with sub-voxel precision: the mask is interpolated linearly along
  five parallel lines in the mid-plane around that line (up to +-4 mm laterally), each line's 0.5 crossing is
  found, and the median crossing distance is placed on the mid-sagittal line. The anterior edge
  point is the same construction in the opposite direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..labels import CODE_TO_VERTEBRA, DISC_CODE_OFFSET, codes_present, is_disc_code, vertebra_sequence
from ..volume_io import Volume

CRANIAL = np.array([0.0, 0.0, 1.0])
POSTERIOR = np.array([0.0, 1.0, 0.0])
MIN_DISC_VOLUME_MM3 = 250.0


@dataclass
class DiscMeasure:
    label: str
    value: int
    centroid: np.ndarray
    normal: np.ndarray
    posterior: np.ndarray
    left: np.ndarray
    posterior_edge: np.ndarray
    anterior_edge: np.ndarray
    volume_mm3: float
    voxel_count: int
    normal_is_thinnest: bool
    eigenvalues: np.ndarray
    points: np.ndarray  # voxel centres (LPS), kept for slab and band placement
    confidence: float = 1.0


def disc_names(codes: list[int], lumbar_count: int | None) -> dict[int, str]:
    """Name each disc code; the lowest disc is lumbosacral when `lumbar_count` says so.

    Codes only say which vertebra is above a disc. The lowest lumbar disc is named '<Ln>-S1' where n is the given
    lumbar count; without a count, five lumbar vertebrae are assumed unless the code itself is L6's.
    """
    count = lumbar_count
    if count is None:
        count = 6 if DISC_CODE_OFFSET + 25 in codes else 5
    sequence = vertebra_sequence(count)
    names = {}
    for code in codes:
        upper = CODE_TO_VERTEBRA.get(code - DISC_CODE_OFFSET)
        if upper is None or upper not in sequence[:-1]:
            raise ValueError(
                f"disc code {code} ({upper or 'unknown'} above) does not exist with {count} lumbar vertebrae; "
                "check --lumbar-count"
            )
        lower = sequence[sequence.index(upper) + 1]
        names[code] = f"{upper}-{lower}"
    return names


def disc_codes_in(labels: Volume) -> list[int]:
    return [v for v in codes_present(labels.array) if is_disc_code(v)]


def measure_discs(
    labels: Volume,
    *,
    lumbar_count: int | None = None,
    confidences: dict[int, float] | None = None,
    probability: np.ndarray | None = None,
) -> list[DiscMeasure]:
    """Measure every disc in a disc label map (project disc codes), top to bottom.

    `probability` (a disc probability on the same grid, e.g. the network's) makes the geometry soft: PCA weights
    each voxel by it and edges are its 0.5 crossings, which places surfaces between voxel centres instead of on
    the staircase of a binary mask. It is used only around each labelled disc (2 voxels of margin).
    """
    codes = disc_codes_in(labels)
    names = disc_names(codes, lumbar_count)
    voxel_mm3 = float(np.prod(labels.spacing))
    mask_all = labels.array
    boxes = ndimage.find_objects(mask_all.astype(np.int32))
    out = []
    for code in sorted(codes):
        # Work in the disc's bounding box (+3 voxels, more than the 2-voxel dilation below): whole-volume masks
        # for each of ten discs cost half a second on a 2 mm localizer grid.
        lo = [max(sl.start - 3, 0) for sl in boxes[code - 1]]
        crop = tuple(slice(a, min(sl.stop + 3, n)) for a, sl, n in zip(lo, boxes[code - 1], mask_all.shape))
        sub = Volume(mask_all[crop], labels.spacing, labels.index_to_world(np.array(lo)), labels.direction)
        mask = sub.array == code
        count = int(np.count_nonzero(mask))
        if count * voxel_mm3 < MIN_DISC_VOLUME_MM3:
            continue  # a few stray voxels are not a disc
        soft = None
        if probability is not None:
            near = ndimage.binary_dilation(mask, iterations=2)
            soft = np.where(near, probability[crop], 0.0).astype(np.float32)
        try:
            out.append(_measure_one(sub, mask, code, names[code], count * voxel_mm3, count, soft))
        except ValueError:
            continue  # not disc-shaped (e.g. a network's fragment): leave it out rather than plan on it
        if confidences and code in confidences:
            out[-1].confidence = float(confidences[code])
    return out


def _measure_one(
    labels: Volume, mask: np.ndarray, code: int, name: str, volume: float, count: int, soft=None
) -> DiscMeasure:
    if soft is None:
        pts = labels.index_to_world(np.argwhere(mask))
        weights = np.ones(len(pts))
    else:
        idx = np.argwhere(soft > 0.05)
        pts = labels.index_to_world(idx)
        weights = soft[tuple(idx.T)].astype(float)
    centroid = np.average(pts, axis=0, weights=weights)
    evals, evecs = np.linalg.eigh(np.cov((pts - centroid).T, aweights=weights))
    cc = np.abs(evecs.T @ CRANIAL)
    k_normal = int(np.argmax(cc))
    normal = evecs[:, k_normal] * np.sign(evecs[:, k_normal] @ CRANIAL)
    thinnest = k_normal == 0
    # In-plane axes and the mid-sagittal line come from the disc's mid-plane section, not from the 3D voxels:
    # a laterally wedged disc (scoliosis) is thicker on one side, which would pull a volume-weighted centre and
    # axes towards that side, while its mid-plane section (the footprint) stays symmetric.
    mask_f = mask.astype(np.float32) if soft is None else soft
    helper = POSTERIOR - normal * (POSTERIOR @ normal)
    helper /= np.linalg.norm(helper)
    side = np.cross(helper, normal)
    g = np.arange(-60.0, 60.0 + 1e-6, 0.5)
    uu, vv = np.meshgrid(g, g, indexing="ij")
    plane_pts = centroid + uu.ravel()[:, None] * side + vv.ravel()[:, None] * helper
    section = (
        ndimage.map_coordinates(mask_f, labels.world_to_index(plane_pts).T, order=1, mode="constant", cval=0.0) >= 0.5
    )
    su, sv = uu.ravel()[section], vv.ravel()[section]
    if len(su) < 20:
        raise ValueError(f"{name}: the disc's mid-plane section is empty; the mask is not disc-shaped")
    c2 = np.array([su.mean(), sv.mean()])
    cov2 = np.cov(np.stack([su - c2[0], sv - c2[1]]))
    w2, v2 = np.linalg.eigh(cov2)
    if w2[1] / max(w2[0], 1e-9) >= 1.15:
        k_ap = int(np.argmax(np.abs(v2[1, :])))  # the axis nearest the helper (AP) direction
        posterior = v2[0, k_ap] * side + v2[1, k_ap] * helper
    else:
        posterior = helper.copy()
    posterior = posterior - normal * (posterior @ normal)
    posterior /= np.linalg.norm(posterior)
    if posterior @ POSTERIOR < 0:
        posterior = -posterior
    left = np.cross(posterior, normal)
    section_center = centroid + c2[0] * side + c2[1] * helper
    post_t = _edge_distance(labels, mask_f, section_center, posterior, left, normal)
    ant_t = _edge_distance(labels, mask_f, section_center, -posterior, left, normal)
    return DiscMeasure(
        label=name,
        value=code,
        centroid=centroid,
        normal=normal,
        posterior=posterior,
        left=left,
        posterior_edge=section_center + post_t * posterior,
        anterior_edge=section_center - ant_t * posterior,
        volume_mm3=volume,
        voxel_count=count,
        normal_is_thinnest=thinnest,
        eigenvalues=evals,
        points=pts,
    )


def _edge_distance(labels: Volume, mask: np.ndarray, origin, direction, left, normal, max_mm: float = 80.0) -> float:
    step = 0.1
    t = np.arange(0.0, max_mm, step)
    crossings = []
    # Lines stay in the mid-plane: a lordotic disc can be only a few mm high at its posterior edge, so lines
    # above or below the mid-plane would leave through an endplate first.
    for a in (-4.0, -2.0, 0.0, 2.0, 4.0):
        for b in (0.0,):
            line = origin + a * left + b * normal + t[:, None] * direction
            values = ndimage.map_coordinates(mask, labels.world_to_index(line).T, order=1, mode="constant", cval=0.0)
            inside = values >= 0.5
            if not inside[0]:
                continue
            out = np.nonzero(~inside)[0]
            if not len(out):
                continue
            j = out[0]
            # Linear interpolation of the 0.5 crossing between samples j-1 and j.
            v0, v1 = values[j - 1], values[j]
            frac = (v0 - 0.5) / (v0 - v1) if v0 != v1 else 0.0
            crossings.append(t[j - 1] + frac * step)
    if not crossings:
        raise ValueError("disc edge not found: the disc mask does not contain its own centroid")
    return float(np.median(crossings))
