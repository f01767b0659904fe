"""Ground truth of a phantom: exact geometry and the true value of every measurement.

Geometric quantities (normals, edges, angles, canal AP, recess depth) come straight from the construction.
Quantities that depend on how structures overlap (areas, dural sac AP, foraminal height, centroids) are
measured on the continuous model itself, sampled on fine grids in the plane where the measurement is defined
(0.05-0.3 mm), so they are what an ideal reader would measure on a perfect image.

Measurement definitions (documented in docs/phantom.md, following shared/DOMAIN.md section 3):
- disc mid-plane: the disc frame's w = 0 plane; mid-sagittal line: u = 0 in it.
- disc_height_mm: height along the disc normal at the midpoint of the disc's mid-sagittal AP extent.
- canal_diameter_mm (LVP): from the midpoint of the posterior disc edge to the anterior border of the posterior
  arch (ligamentum flavum / spinolaminar junction) on the mid-sagittal line of the mid-disc plane.
- dural_sac_ap_mm: AP extent of the dural sac on that line; canal_area_mm2: dural sac cross-section there.
- lateral_recess_depth_*: from the medial tip of the superior articular process perpendicular to the posterior
  disc border; lateral_recess_angle_*: between that border (floor) and the SAP's anterior face (roof).
- facet_angle_*: between the mid-sagittal line and the facet joint line.
- herniation_ratio: herniation area / area of the canal contents between the two SAP tips, mid-disc plane.
- msu_class: "<size>-<zone>" (Mysliwiec et al. 2010) relative to the intra-facet line through the SAP tips.
- foraminal_height_*: in the parasagittal plane through the pedicles, from the lowest point of the upper pedicle
  to the highest point of the lower pedicle, along the disc normal.
- psoas_area_*: psoas cross-section in the mid-vertebral plane.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..geometry import Frame
from ..labels import STRUCTURE_CODES
from .anatomy import Anatomy
from .model import evaluate_body
from .parts import DiscGeometry, VertebraGeometry

CANAL_CONTENTS = (
    STRUCTURE_CODES["dural_sac"],
    STRUCTURE_CODES["spinal_cord"],
    STRUCTURE_CODES["epidural_fat"],
    STRUCTURE_CODES["herniation"],
    STRUCTURE_CODES["nerve_root"],
)


def _plane_grid(frame: Frame, u_range, v_range, step: float, w: float = 0.0):
    us = np.arange(u_range[0], u_range[1] + step / 2, step)
    vs = np.arange(v_range[0], v_range[1] + step / 2, step)
    uu, vv = np.meshgrid(us, vs, indexing="ij")
    local = np.stack([uu.ravel(), vv.ravel(), np.full(uu.size, w)], axis=1)
    return local, frame.to_parent(local)


def _lps(anatomy: Anatomy, body_point: np.ndarray) -> list[float]:
    return [round(float(x), 4) for x in anatomy.pose.to_parent(body_point)]


def _dir_lps(anatomy: Anatomy, body_dir: np.ndarray) -> list[float]:
    return [round(float(x), 6) for x in anatomy.pose.rotation @ body_dir]


def disc_truth(anatomy: Anatomy, g: DiscGeometry, vertebrae: dict[str, VertebraGeometry]) -> dict:
    frame = anatomy.frames[g.frame_index]
    wedge = g.wedge
    # Centroid of the continuous disc by sampling its bounding box at 0.3 mm.
    lo, hi = wedge.bbox()
    axes = [np.arange(a + 0.15, b, 0.3) for a, b in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = wedge.contains(grid)
    centroid_local = grid[inside].mean(axis=0)
    v_mid = 0.5 * (wedge.p - wedge.a_v)
    ap_depth = wedge.p + wedge.a_v
    out = {
        "label": g.name,
        "value": g.code,
        "upper": g.upper,
        "lower": g.lower,
        "centroid_lps": _lps(anatomy, frame.to_parent(centroid_local)),
        "center_lps": _lps(anatomy, frame.origin),
        "normal_lps": _dir_lps(anatomy, frame.w),
        "left_lps": _dir_lps(anatomy, frame.u),
        "posterior_lps": _dir_lps(anatomy, frame.v),
        "posterior_edge_lps": _lps(anatomy, frame.to_parent(np.array([0.0, wedge.p, 0.0]))),
        "anterior_edge_lps": _lps(anatomy, frame.to_parent(np.array([0.0, -wedge.a_v, 0.0]))),
        "disc_height_mm": round(2 * float(wedge.half_height_at(0.0, v_mid)), 4),
        "disc_height_anterior_mm": round(2 * float(wedge.half_height_at(0.0, -wedge.a_v + 0.1 * ap_depth)), 4),
        "disc_height_posterior_mm": round(2 * float(wedge.half_height_at(0.0, wedge.p - 0.1 * ap_depth)), 4),
        "degeneration_height_factor": anatomy.params.degeneration.get(g.name, 1.0),
    }
    if not g.lumbar:
        return out
    out.update(_canal_truth(anatomy, g, frame))
    out.update(_foraminal_truth(anatomy, g, frame, vertebrae))
    return out


def _canal_truth(anatomy: Anatomy, g: DiscGeometry, frame: Frame) -> dict:
    p = g.wedge.p
    step = 0.2  # counting pixel centres is unbiased; 0.2 mm keeps the area error well under 1%
    half = max(g.facet_tip_u_mm) + 16.0
    local, pts = _plane_grid(frame, (-half, half), (p - 4.0, p + g.canal_ap_mm + 6.0), step)
    labels, _ = evaluate_body(anatomy, pts)
    sac = np.isin(labels, (STRUCTURE_CODES["dural_sac"], STRUCTURE_CODES["spinal_cord"]))
    # Dural sac AP along the mid-sagittal line, sampled finely.
    line = np.stack([np.zeros(2001), np.linspace(p - 2.0, p + g.canal_ap_mm + 4.0, 2001), np.zeros(2001)], axis=1)
    line_labels, _ = evaluate_body(anatomy, frame.to_parent(line))
    on = np.isin(line_labels, (STRUCTURE_CODES["dural_sac"], STRUCTURE_CODES["spinal_cord"]))
    sac_ap = float(line[on, 1].max() - line[on, 1].min()) if on.any() else 0.0
    u_left, u_right = g.facet_tip_u_mm
    between = (local[:, 0] <= u_left) & (local[:, 0] >= -u_right) & (local[:, 1] >= p)
    contents = between & np.isin(labels, CANAL_CONTENTS)
    hern_area = float(np.count_nonzero(labels == STRUCTURE_CODES["herniation"])) * step * step
    contents_area = float(np.count_nonzero(contents)) * step * step
    msu = _visible_msu(g, local, labels) if g.herniation is not None else None
    return {
        "canal_diameter_mm": round(g.canal_ap_mm, 4),
        "dural_sac_ap_mm": round(sac_ap, 4),
        "canal_area_mm2": round(float(np.count_nonzero(sac)) * step * step, 3),
        "canal_contents_area_mm2": round(contents_area, 3),
        "facet_angle_left_deg": round(g.facet_angle_deg[0], 4),
        "facet_angle_right_deg": round(g.facet_angle_deg[1], 4),
        "facet_tropism_deg": round(abs(g.facet_angle_deg[0] - g.facet_angle_deg[1]), 4),
        "lateral_recess_depth_left_mm": round(g.recess_depth_mm[0], 4),
        "lateral_recess_depth_right_mm": round(g.recess_depth_mm[1], 4),
        "lateral_recess_angle_left_deg": round(g.recess_angle_deg[0], 4),
        "lateral_recess_angle_right_deg": round(g.recess_angle_deg[1], 4),
        "herniation_area_mm2": round(hern_area, 3),
        "herniation_ratio": round(hern_area / contents_area, 5) if contents_area > 0 else 0.0,
        "msu_class": msu,
        "facet_tip_left_lps": _lps(anatomy, frame.to_parent(np.array([u_left, p + g.recess_depth_mm[0], 0.0]))),
        "facet_tip_right_lps": _lps(anatomy, frame.to_parent(np.array([-u_right, p + g.recess_depth_mm[1], 0.0]))),
    }


def _visible_msu(g: DiscGeometry, local: np.ndarray, labels: np.ndarray) -> str | None:
    """MSU class of the herniation as it appears (bone painted over it may hide part of its reach).

    Size: reach of the most posterior herniation point behind the disc border over the distance from the border
    to the intra-facet line (through both SAP tips) at that point's lateral position; zone from that position
    along the line (A: central half, B: out to the facet edges, C: beyond). Mysliwiec et al. 2010.
    """
    hern = labels == STRUCTURE_CODES["herniation"]
    if not hern.any():
        return None
    p = g.wedge.p
    v_max = local[hern, 1].max()
    u_apex = float(local[hern & (local[:, 1] >= v_max - 1e-6), 0].mean())
    u_left, u_right = g.facet_tip_u_mm
    tl = np.array([u_left, p + g.recess_depth_mm[0]])
    tr = np.array([-u_right, p + g.recess_depth_mm[1]])
    frac = (u_apex - tr[0]) / (tl[0] - tr[0])
    line_v = tr[1] + np.clip(frac, 0.0, 1.0) * (tl[1] - tr[1])
    ratio = (v_max + 0.1 - p) / (line_v - p)  # + half the 0.2 mm sampling step: the edge, not the pixel centre
    size = 1 if ratio <= 0.5 else (2 if ratio <= 1.0 else 3)
    zone = "A" if 0.25 <= frac <= 0.75 else ("B" if 0.0 <= frac <= 1.0 else "C")
    return f"{size}-{zone}"


def _foraminal_truth(anatomy: Anatomy, g: DiscGeometry, frame: Frame, vertebrae: dict) -> dict:
    out: dict[str, float | None] = {}
    up, lo = vertebrae.get(g.upper), vertebrae.get(g.lower)
    if up is None or lo is None:
        out["foraminal_height_left_mm"] = None
        out["foraminal_height_right_mm"] = None
        return out
    u_ped = 0.5 * (up.pedicle_u_mm + lo.pedicle_u_mm)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        # Coarse pass (0.25 mm) to find the columns where the pedicles come closest, then a 0.01 mm pass there.
        vs = np.arange(g.wedge.p - 2.0, g.wedge.p + 14.0, 0.5)
        coarse = _pedicle_extremes(anatomy, frame, sgn * u_ped, vs, np.arange(-45.0, 45.0, 0.25))
        if coarse is None:
            out[f"foraminal_height_{side}_mm"] = None
            continue
        low_upper, high_lower = coarse
        cols = np.unique(np.r_[vs[np.argsort(low_upper)[:3]], vs[np.argsort(-high_lower)[:3]]])
        w_up = np.nanmin(low_upper)
        w_lo = np.nanmax(high_lower)
        fine_ws = np.r_[np.arange(w_up - 0.3, w_up + 0.3, 0.01), np.arange(w_lo - 0.3, w_lo + 0.3, 0.01)]
        fine = _pedicle_extremes(anatomy, frame, sgn * u_ped, cols, fine_ws)
        lu_f, hl_f = fine if fine is not None else coarse
        out[f"foraminal_height_{side}_mm"] = round(float(np.nanmin(lu_f) - np.nanmax(hl_f)), 4)
    return out


def _pedicle_extremes(anatomy: Anatomy, frame: Frame, u: float, vs: np.ndarray, ws: np.ndarray):
    """Per v column: lowest w of the upper pedicle and highest w of the lower one (NaN where absent)."""
    vv, ww = np.meshgrid(vs, ws, indexing="ij")
    local = np.stack([np.full(vv.size, u), vv.ravel(), ww.ravel()], axis=1)
    labels, _ = evaluate_body(anatomy, frame.to_parent(local))
    ped = (labels == STRUCTURE_CODES["pedicle"]).reshape(vv.shape)
    upper = np.where(ped & (ww > 0), ww, np.inf).min(axis=1)
    lower = np.where(ped & (ww < 0), ww, -np.inf).max(axis=1)
    if not np.isfinite(upper).any() or not np.isfinite(lower).any():
        return None
    return np.where(np.isfinite(upper), upper, np.nan), np.where(np.isfinite(lower), lower, np.nan)


def vertebra_truth(anatomy: Anatomy, v: VertebraGeometry) -> dict:
    frame = anatomy.frames[v.frame_index]
    step = 1.6
    axes = [
        np.arange(-v.a_u + step / 2, v.a_u, step),
        np.arange(-v.a_v + step / 2, v.p, step),
        np.arange(-v.height_mm / 2 - 8 + step / 2, v.height_mm / 2 + 8, step),
    ]
    local = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    labels, _ = evaluate_body(anatomy, frame.to_parent(local))
    body = labels == v.code
    out: dict[str, Any] = {
        "label": v.name,
        "value": v.code,
        "center_lps": _lps(anatomy, frame.origin),
        "centroid_lps": _lps(anatomy, frame.to_parent(local[body].mean(axis=0))) if body.any() else None,
        "axes_lps": {
            "left": _dir_lps(anatomy, frame.u),
            "posterior": _dir_lps(anatomy, frame.v),
            "superior": _dir_lps(anatomy, frame.w),
        },
        "height_mm": round(v.height_mm, 4),
    }
    if v.lumbar_index:
        prof = anatomy.profiles
        i = v.frame_index
        for side, key, code in (
            ("l", "left", STRUCTURE_CODES["psoas_left"]),
            ("r", "right", STRUCTURE_CODES["psoas_right"]),
        ):
            ru, rv = prof[f"psoas_{side}_ru"][i], prof[f"psoas_{side}_rv"][i]
            cu = (1 if side == "l" else -1) * prof[f"psoas_{side}_u"][i]
            cv = prof[f"psoas_{side}_v"][i]
            step_a = 0.4
            _, pts = _plane_grid(frame, (cu - ru - 1, cu + ru + 1), (cv - rv - 1, cv + rv + 1), step_a)
            lab, _ = evaluate_body(anatomy, pts)
            out[f"psoas_area_{key}_mm2"] = round(float(np.count_nonzero(lab == code)) * step_a * step_a, 2)
        out["psoas_asymmetry_mm2"] = round(out["psoas_area_left_mm2"] - out["psoas_area_right_mm2"], 2)
    return out


def anatomy_truth(anatomy: Anatomy) -> dict:
    vertebrae = {v.name: v for v in anatomy.vertebrae}
    return {
        "discs": [disc_truth(anatomy, g, vertebrae) for g in anatomy.discs],
        "vertebrae": [vertebra_truth(anatomy, v) for v in anatomy.vertebrae],
        "lumbar_count": anatomy.params.lumbar_count,
    }
