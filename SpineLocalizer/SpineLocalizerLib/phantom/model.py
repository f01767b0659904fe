"""Evaluate the phantom at arbitrary points: structure label and tissue class of each point.

This one function is the single source of truth: image volumes are this model sampled on voxel grids, and the
ground-truth measurements are this model sampled on fine 2D grids in the measurement planes, so the truth and
the label maps cannot disagree.
"""

from __future__ import annotations

import numpy as np

from ..labels import STRUCTURE_CODES, VERTEBRA_CODES
from . import tissues
from .anatomy import Anatomy
from .parts import LAYER_BONE, LAYER_DISC, LAYER_HERNIATION, LAYER_JOINT, LAYER_ROOT, RigidPart
from .shapes import DiscWedge, truncated_ellipse, truncated_ellipse_depth

CHUNK = 600_000


def evaluate_world(anatomy: Anatomy, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and tissues at world LPS points (N, 3)."""
    return evaluate_body(anatomy, anatomy.pose.to_local(points_lps))


def evaluate_body(anatomy: Anatomy, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (uint8) and tissue ids (uint8) at body-frame points (N, 3)."""
    points = np.asarray(points, dtype=np.float64)
    labels = np.zeros(len(points), dtype=np.uint8)
    tissue = np.zeros(len(points), dtype=np.uint8)
    for start in range(0, len(points), CHUNK):
        sl = slice(start, start + CHUNK)
        labels[sl], tissue[sl] = _evaluate_chunk(anatomy, points[sl])
    return labels, tissue


def _spine_axis(anatomy: Anatomy, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    o = anatomy.origins
    order = np.argsort(o[:, 2])
    return np.interp(z, o[order, 2], o[order, 0]), np.interp(z, o[order, 2], o[order, 1])


def _evaluate_chunk(anatomy: Anatomy, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, tissue = _torso(anatomy, pts)
    x_sp, y_sp = _spine_axis(anatomy, pts[:, 2])
    origins = anatomy.origins
    z_lo, z_hi = origins[:, 2].min() - 130.0, origins[:, 2].max() + 40.0
    near = (
        (np.abs(pts[:, 0] - x_sp) < 125.0)
        & (pts[:, 1] - y_sp > -95.0)
        & (pts[:, 1] - y_sp < 135.0)
        & (pts[:, 2] > z_lo)
        & (pts[:, 2] < z_hi)
        & (labels != 0)
    )
    idx_near = np.nonzero(near)[0]
    if len(idx_near):
        sub_l, sub_t = _spine(anatomy, pts[idx_near], labels[idx_near], tissue[idx_near])
        labels[idx_near], tissue[idx_near] = sub_l, sub_t
    return labels, tissue


def _torso(anatomy: Anatomy, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tor = anatomy.torso
    x_sp, y_sp = _spine_axis(anatomy, pts[:, 2])
    a_x, a_y, fat = tor["half_width"], tor["half_depth"], tor["fat"]
    y_back = y_sp + 70.0 + fat
    dx, dy = pts[:, 0] - x_sp, pts[:, 1] - (y_back - a_y)
    r = np.sqrt((dx / a_x) ** 2 + (dy / a_y) ** 2)
    dist = np.sqrt(dx * dx + dy * dy)
    depth = dist * (1.0 / np.maximum(r, 1e-6) - 1.0)  # distance to the skin along the ray from the centre
    inside = r <= 1.0
    labels = np.zeros(len(pts), dtype=np.uint8)
    tissue = np.zeros(len(pts), dtype=np.uint8)
    skin = inside & (depth < 2.0)
    sub = inside & ~skin & (depth < 2.0 + fat)
    wall = inside & ~skin & ~sub & (depth < 12.0 + fat)
    core = inside & ~skin & ~sub & ~wall
    labels[skin], tissue[skin] = STRUCTURE_CODES["skin"], tissues.SKIN
    labels[sub], tissue[sub] = STRUCTURE_CODES["subcutaneous_fat"], tissues.FAT
    labels[wall], tissue[wall] = STRUCTURE_CODES["muscle_other"], tissues.MUSCLE
    anterior = core & (pts[:, 1] < y_sp - 8.0)
    ant = np.nonzero(anterior)[0]
    waves = np.cos(pts[ant] @ tor["viscera_waves"].T + tor["viscera_phases"]).sum(axis=1)
    bowel = np.zeros(len(pts), dtype=bool)
    bowel[ant[waves > 0.4]] = True
    vfat = anterior & ~bowel
    labels[bowel], tissue[bowel] = STRUCTURE_CODES["viscera"], tissues.VISCERA
    labels[vfat], tissue[vfat] = STRUCTURE_CODES["visceral_fat"], tissues.VISCERAL_FAT
    back = core & ~anterior
    labels[back], tissue[back] = STRUCTURE_CODES["muscle_other"], tissues.MUSCLE
    return labels, tissue


def _warp(anatomy: Anatomy, pts: np.ndarray):
    """Spine-following coordinates: bracketing key plane index, fraction t, local (u, v), clamped t_f."""
    normals, origins = anatomy.normals, anatomy.origins
    d = pts @ normals.T - np.sum(origins * normals, axis=1)  # one small GEMM instead of an (N, K, 3) temporary
    k = len(origins)
    count = (d >= 0).sum(axis=1)
    idx = np.clip(count - 1, 0, k - 2)
    rows = np.arange(len(pts))
    d0, d1 = d[rows, idx], d[rows, idx + 1]
    denom = d0 - d1
    t = np.where(np.abs(denom) > 1e-9, d0 / np.where(np.abs(denom) > 1e-9, denom, 1.0), 0.0)
    tf = np.clip(t, 0.0, 1.0)
    rot = np.stack([f.rotation for f in anatomy.frames])  # (K, 3, 3)
    u_ax = (1 - tf)[:, None] * rot[idx, :, 0] + tf[:, None] * rot[idx + 1, :, 0]
    v_ax = (1 - tf)[:, None] * rot[idx, :, 1] + tf[:, None] * rot[idx + 1, :, 1]
    u_ax /= np.linalg.norm(u_ax, axis=1, keepdims=True)
    v_ax /= np.linalg.norm(v_ax, axis=1, keepdims=True)
    o = (1 - tf)[:, None] * origins[idx] + tf[:, None] * origins[idx + 1]
    rel = pts - o
    lu = np.einsum("nj,nj->n", rel, u_ax)
    lv = np.einsum("nj,nj->n", rel, v_ax)
    return idx, t, tf, lu, lv, d


def _interp(profile: np.ndarray, idx: np.ndarray, tf: np.ndarray) -> np.ndarray:
    return (1 - tf) * profile[idx] + tf * profile[idx + 1]


def _spine(anatomy: Anatomy, pts: np.ndarray, labels: np.ndarray, tissue: np.ndarray):
    idx, t, tf, lu, lv, d = _warp(anatomy, pts)
    prof = {key: _interp(val, idx, tf) for key, val in anatomy.profiles.items()}
    k = len(anatomy.frames)
    first_d, last_d = d[:, 0], d[:, k - 1]

    def paint(mask, label, tis):
        labels[mask] = label
        tissue[mask] = tis

    # Soft tissue around the spine, kept inside the abdominal wall and the subcutaneous fat.
    inner = np.isin(
        labels, (STRUCTURE_CODES["muscle_other"], STRUCTURE_CODES["visceral_fat"], STRUCTURE_CODES["viscera"])
    ) & (tissue != tissues.SKIN)
    for side, sgn, pl, par in (
        ("l", 1.0, "psoas_left", "paraspinal_left"),
        ("r", -1.0, "psoas_right", "paraspinal_right"),
    ):
        ru, rv = prof[f"psoas_{side}_ru"], prof[f"psoas_{side}_rv"]
        ok = ru > 0.5
        q = ((lu - sgn * prof[f"psoas_{side}_u"]) / np.maximum(ru, 1e-3)) ** 2 + (
            (lv - prof[f"psoas_{side}_v"]) / np.maximum(rv, 1e-3)
        ) ** 2
        paint(ok & (q <= 1.0) & inner, STRUCTURE_CODES[pl], tissues.MUSCLE)
        q = ((lu - sgn * prof["para_u"]) / prof["para_ru"]) ** 2 + ((lv - prof["para_v"]) / prof["para_rv"]) ** 2
        paint((q <= 1.0) & (first_d > -70.0) & inner, STRUCTURE_CODES[par], tissues.MUSCLE)
    for name, code in (("aorta", STRUCTURE_CODES["aorta"]), ("ivc", STRUCTURE_CODES["vena_cava"])):
        r = prof[f"{name}_r"]
        q = (lu - prof[f"{name}_u"]) ** 2 + (lv - prof[f"{name}_v"]) ** 2
        paint((r > 1.0) & (q <= r * r), code, tissues.BLOOD)

    # Canal contents.
    p_, cb, hw = prof["p"], prof["canal_back"], prof["canal_hw"]
    vc, hv = 0.5 * (p_ + cb), 0.5 * (cb - p_)
    canal = (np.abs(lu / hw) ** 4 + np.abs((lv - vc) / hv) ** 4 <= 1.0) & (first_d > -60.0)
    paint(canal, STRUCTURE_CODES["epidural_fat"], tissues.EPIDURAL_FAT)
    sac_c = prof["sac_front"] + 0.5 * prof["sac_ap"]
    sac = ((lu / prof["sac_hw"]) ** 2 + ((lv - sac_c) / (0.5 * prof["sac_ap"])) ** 2 <= 1.0) & (first_d > -20.0)
    paint(sac, STRUCTURE_CODES["dural_sac"], tissues.CSF)
    cord = sac & (prof["cord_r"] > 0.8) & (lu**2 + (lv - sac_c) ** 2 <= prof["cord_r"] ** 2)
    paint(cord, STRUCTURE_CODES["spinal_cord"], tissues.CORD)

    parts_by_layer: dict[int, list[RigidPart]] = {}
    for part in anatomy.parts:
        parts_by_layer.setdefault(part.layer, []).append(part)
    # Rigid parts all lie within this box of spine coordinates; sorting the points in it by key interval lets
    # each part look only at the intervals it can reach.
    core = np.nonzero((np.abs(lu) < 75.0) & (lv > -50.0) & (lv < 100.0))[0]
    order = core[np.argsort(idx[core], kind="stable")]
    bounds = np.searchsorted(idx[order], np.arange(k + 1))

    def candidates(part: RigidPart) -> np.ndarray:
        # A part reaches at most into the neighbouring key intervals (a spinous process hangs over the disc
        # below; facet joints rise towards the vertebra above).
        lo = max(part.frame_index - 2, 0)
        hi = min(part.frame_index + 2, k - 1)
        cand = order[bounds[lo] : bounds[hi]]
        # Spine coordinates differ from the part's own frame by the small rotation between neighbouring
        # frames; an 8 mm margin covers it.
        blo, bhi = part.shape.bbox()
        m = 8.0
        keep = (lu[cand] >= blo[0] - m) & (lu[cand] <= bhi[0] + m) & (lv[cand] >= blo[1] - m) & (lv[cand] <= bhi[1] + m)
        return cand[keep]

    def paint_parts(layer: int) -> None:
        for part in parts_by_layer.get(layer, []):
            cand = candidates(part)
            if not len(cand):
                continue
            local = anatomy.frames[part.frame_index].to_local(pts[cand])
            blo, bhi = part.shape.bbox()
            inbox = np.all((local >= blo) & (local <= bhi), axis=1)
            sel = cand[inbox]
            hit = part.shape.contains(local[inbox])
            labels[sel[hit]] = part.label
            tissue[sel[hit]] = part.tissue

    paint_parts(LAYER_ROOT)
    paint_parts(LAYER_HERNIATION)

    # Vertebral bodies: the footprint tube minus the slabs of the discs, with a cortical rim.
    in_slab = np.zeros(len(pts), dtype=bool)
    near_slab = np.zeros(len(pts), dtype=bool)
    disc_parts = [p for p in parts_by_layer.get(LAYER_DISC, []) if isinstance(p.shape, DiscWedge)]
    for part in disc_parts:
        cand = candidates(part)
        wedge: DiscWedge = part.shape
        local = anatomy.frames[part.frame_index].to_local(pts[cand])
        u, v, w = local[:, 0], local[:, 1], local[:, 2]
        wide = (np.abs(u) < 1.4 * wedge.a_u) & (np.abs(v) < 1.4 * wedge.a_v)
        hh = wedge.half_height_at(u, v)
        in_slab[cand[wide & (np.abs(w) <= hh)]] = True
        near_slab[cand[wide & (np.abs(w) <= hh + 1.3)]] = True
    seg_vertebra = np.where(np.array(anatomy.kinds)[idx] == "vertebra", idx, idx + 1)
    seg_vertebra = np.where(t < 0, 0, seg_vertebra)
    seg_vertebra = np.clip(seg_vertebra, 0, k - 1)
    body_codes = np.array([VERTEBRA_CODES.get(n, 0) for n in anatomy.key_names], dtype=np.uint8)
    heights = {v.frame_index: v.height_mm for v in anatomy.vertebrae}
    fp = truncated_ellipse(lu, lv, prof["a_u"], prof["a_v"], p_)
    body = fp & ~in_slab & (first_d >= -heights[0] / 2) & (last_d <= heights[k - 1] / 2)
    depth = truncated_ellipse_depth(lu, lv, prof["a_u"], prof["a_v"], p_)
    depth = np.minimum(depth, np.minimum(first_d + heights[0] / 2, heights[k - 1] / 2 - last_d))
    rim = body & ((depth < 1.3) | near_slab)
    labels[body] = body_codes[seg_vertebra[body]]
    tissue[body] = tissues.MARROW
    tissue[rim] = tissues.CORTEX

    paint_parts(LAYER_BONE)
    paint_parts(LAYER_JOINT)
    paint_parts(LAYER_DISC)
    _paint_nuclei(anatomy, pts, labels, tissue, candidates, disc_parts)
    return labels, tissue


def _paint_nuclei(anatomy, pts, labels, tissue, candidates, disc_parts) -> None:
    degenerated = anatomy.params.degeneration
    names = {g.frame_index: g.name for g in anatomy.discs}
    for part in disc_parts:
        cand = candidates(part)
        cand = cand[labels[cand] == part.label]
        if not len(cand):
            continue
        wedge: DiscWedge = part.shape
        local = anatomy.frames[part.frame_index].to_local(pts[cand])
        u, v, w = local[:, 0], local[:, 1], local[:, 2]
        q = (u / (0.6 * wedge.a_u)) ** 2 + ((v + 0.1 * wedge.a_v) / (0.55 * wedge.a_v)) ** 2
        nucleus = (q <= 1.0) & (np.abs(w) <= 0.62 * wedge.half_height_at(u, v))
        degen = names.get(part.frame_index) in degenerated
        tissue[cand[nucleus]] = tissues.NUCLEUS_DEGENERATE if degen else tissues.NUCLEUS


def evaluate_grid(anatomy: Anatomy, origin, spacing, direction, size, block=(3, 3, 3)) -> tuple[np.ndarray, np.ndarray]:
    """Labels and tissues on a voxel grid, evaluated coarse-to-fine.

    The model is first sampled on a lattice every `block` voxels; a block whose eight corners agree on label and
    tissue is filled with that value, and only the voxels of the other blocks are evaluated one by one. Structures
    thinner than a block that fall entirely between the corners of a uniform block would be missed, so blocks are
    kept at or below ~3 mm, thinner than anything in the phantom that matters.
    """
    size = tuple(int(n) for n in size)
    spacing = np.asarray(spacing, dtype=float)
    direction = np.asarray(direction, dtype=float)
    origin = np.asarray(origin, dtype=float)

    def to_world(i, j, kk):
        ijk = np.stack([i, j, kk], axis=-1).astype(float) * spacing
        return origin + ijk @ direction.T

    lattice = []
    for n, b in zip(size, block):
        c = np.unique(np.r_[np.arange(0, n, b), n - 1])
        lattice.append(c if len(c) > 1 else np.array([0, 0]))
    ci, cj, ck = np.meshgrid(*lattice, indexing="ij")
    lab_c, tis_c = evaluate_world(anatomy, to_world(ci.ravel(), cj.ravel(), ck.ravel()))
    key = (lab_c.astype(np.uint16) * 32 + tis_c).reshape(ci.shape)
    uniform = np.ones(tuple(s - 1 for s in key.shape), dtype=bool)
    ref = key[:-1, :-1, :-1]
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                uniform &= (
                    key[di : di + key.shape[0] - 1, dj : dj + key.shape[1] - 1, dk : dk + key.shape[2] - 1] == ref
                )
    block_of = [
        np.minimum(np.searchsorted(c, np.arange(n), side="right") - 1, len(c) - 2) for c, n in zip(lattice, size)
    ]
    bi, bj, bk = np.ix_(*block_of)
    fine_uniform = uniform[bi, bj, bk]
    value = ref[bi, bj, bk].astype(np.uint16)
    todo = np.nonzero(~fine_uniform)
    if len(todo[0]):
        lab, tis = evaluate_world(anatomy, to_world(*todo))
        value[todo] = lab.astype(np.uint16) * 32 + tis
    return (value // 32).astype(np.uint8), (value % 32).astype(np.uint8)
