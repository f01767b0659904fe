"""Landmarks of one disc level from a label map, in its disc mid-plane and the planes beside it: disc heights,
the herniation (MSU class and ratio), canal, dural sac and lateral recesses, facet angles, foraminal heights;
then the shared geometry (geometry.py) turns the landmarks into values.

Each structure is sampled on the plane from its binary mask at 0.2 mm (plane_sampling.py); an extreme pixel
centre lies on average half a step inside the true edge, and the extractors correct for that.
Label codes: the project's (docs/phantom.md). Landmark definitions: docs/measurements.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage
from SpineLocalizerLib.labels import STRUCTURE_CODES
from SpineLocalizerLib.volume_io import Volume

from . import geometry
from .catalogue import Thresholds
from .plane_sampling import (
    MAX_DEPTH_FOR_HEIGHTS_MM,
    LocalSampler,
    Plane2D,
    column_max,
    column_min,
    fit_line,
    voxel_depth_along,
)
from .results import Row, make_row, not_measurable

BONY_POSTERIOR = (
    STRUCTURE_CODES["ligamentum_flavum"],
    STRUCTURE_CODES["lamina"],
    STRUCTURE_CODES["spinous_process"],
    STRUCTURE_CODES["inferior_articular_process"],
    STRUCTURE_CODES["superior_articular_process"],
)
SAC = (STRUCTURE_CODES["dural_sac"], STRUCTURE_CODES["spinal_cord"])
CONTENTS = (
    STRUCTURE_CODES["dural_sac"],
    STRUCTURE_CODES["spinal_cord"],
    STRUCTURE_CODES["epidural_fat"],
    STRUCTURE_CODES["herniation"],
    STRUCTURE_CODES["nerve_root"],
)
# The floor of the lateral recess is fitted to the posterior disc border over this span medial of the SAP tip:
# the border is straight there, and a few millimetres of a 0.8 mm staircase tilt the fitted line by several
# degrees (on 6 phantoms at 0.8 mm the recess-angle MAE was 5.0 deg with 4 mm, 3.2 with 8 mm, 2.9 with 12 mm).
FLOOR_SPAN_MM = 12.0


def measure_disc(labels: Volume, disc: Mapping[str, Any], thresholds: Thresholds, method: str = "auto") -> list[Row]:
    level = disc["label"]
    left, post, normal = (np.asarray(disc[k], dtype=float) for k in ("left_lps", "posterior_lps", "normal_lps"))
    edge = np.asarray(disc["posterior_edge_lps"], dtype=float)
    sampler = LocalSampler(labels, edge, 75.0)
    rows: list[Row] = []
    plane = Plane2D(edge, left, post, (-40.0, 40.0), (-45.0, 40.0))
    disc_mask = plane.sample(sampler, (disc["value"],))
    half = plane.step / 2
    u0 = int(np.argmin(np.abs(plane.u)))
    if not disc_mask.any():
        # No disc (a map without disc labels, or a plan off the map): what needs the disc is not measurable, the
        # canal, sac and facets still are.
        if str(disc.get("plane_from", "")).startswith("adjacent bodies"):
            no_disc = f"the label map has no disc {level} (its plane is taken between the two bodies)"
        else:
            no_disc = f"disc {level} not found in the label map at its planned plane"
        rows += [not_measurable(level, m, method, no_disc) for m in ("disc_height_mm", "canal_diameter_mm")]
        border = np.full(len(plane.u), np.nan)
    else:
        border = column_max(disc_mask, plane) + half  # posterior disc border per column
        rows += _disc_heights(labels, sampler, disc, edge, left, post, normal, thresholds, method)
    v_border = border[u0]
    border_pt = plane.world(0.0, v_border)

    # Canal diameter (LVP) and dural sac AP on the mid-sagittal line.
    bony = plane.sample(sampler, BONY_POSTERIOR)
    col = bony[u0] & (plane.v > v_border)
    if disc_mask.any() and col.any():
        v_first = plane.v[col].min() - half
        rows.append(
            make_row(
                level,
                "canal_diameter_mm",
                v_first - v_border,
                method,
                {"disc_posterior_mid": border_pt, "posterior_arch": plane.world(0.0, v_first)},
                thresholds,
            )
        )
    elif disc_mask.any():
        rows.append(not_measurable(level, "canal_diameter_mm", method, "no posterior arch found behind the disc"))
    sac = plane.sample(sampler, SAC)
    on = sac[u0]
    if on.any():
        a, b = plane.v[on].min() - half, plane.v[on].max() + half
        rows.append(
            make_row(
                level,
                "dural_sac_ap_mm",
                b - a,
                method,
                {"sac_anterior": plane.world(0, a), "sac_posterior": plane.world(0, b)},
                thresholds,
            )
        )
        rows.append(
            make_row(
                level,
                "canal_area_mm2",
                float(sac.sum()) * plane.step**2,
                method,
                {"sac_centroid": plane.world(*mask_centroid(sac, plane))},
                thresholds,
            )
        )
    else:
        for m in ("dural_sac_ap_mm", "canal_area_mm2"):
            rows.append(not_measurable(level, m, method, "no dural sac at the mid-disc level"))

    # Facets, recesses.
    sap = plane.sample(sampler, (STRUCTURE_CODES["superior_articular_process"],))
    joint = plane.sample(sampler, (STRUCTURE_CODES["facet_joint"],))
    if not joint.any():
        joint = contact_band(sap, plane.sample(sampler, (STRUCTURE_CODES["inferior_articular_process"],)), plane)
    flavum = plane.sample(sampler, (STRUCTURE_CODES["ligamentum_flavum"],))
    # Midline: disc centre to the flavum; without them, the plane's own AP axis (u = 0), which a plan or the
    # measurement planes put in the mid-sagittal plane.
    disc_c = mask_centroid(disc_mask, plane) if disc_mask.any() else (0.0, -20.0)
    arch_c = mask_centroid(flavum, plane) if flavum.any() else (0.0, 30.0)
    tips = {}
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        side_cols = plane.u * sgn > 1.0
        s_mask = sap & side_cols[:, None]
        if not s_mask.any():
            for m in (f"lateral_recess_depth_{side}_mm", f"lateral_recess_angle_{side}_deg", f"facet_angle_{side}_deg"):
                rows.append(not_measurable(level, m, method, f"no superior articular process on the {side}"))
            continue
        cols = np.nonzero(s_mask.any(axis=1))[0]
        tip_col = cols[np.argmin(np.abs(plane.u[cols]))]
        tip_u = plane.u[tip_col] - sgn * half
        tip_v = float(np.mean(plane.v[s_mask[tip_col]]))
        tips[side] = (tip_u, tip_v)
        tip_pt = plane.world(tip_u, tip_v)
        # Floor: the posterior disc border under and medial of the tip.
        floor_cols = (plane.u * sgn >= abs(tip_u) - FLOOR_SPAN_MM) & (plane.u * sgn <= abs(tip_u) + 0.5)
        floor = fit_line(plane.u[floor_cols], border[floor_cols])
        # Roof: the anterior face of the SAP from the tip to its most anterior point.
        front = column_min(s_mask, plane) - half
        lateral = np.nonzero((plane.u * sgn >= abs(tip_u)) & np.isfinite(front))[0]
        roof = None
        if len(lateral) >= 3:
            order = lateral[np.argsort(plane.u[lateral] * sgn)]
            k_min = int(np.argmin(front[order]))
            seg = order[: max(k_min + 1, 3)]
            # Both ends of the face are corners that interpolation rounds off; trim 0.6 mm at each end when the
            # face is long enough to keep at least 1.5 mm.
            trim = int(round(0.6 / plane.step))
            if len(seg) - 2 * trim >= int(round(1.5 / plane.step)):
                seg = seg[trim : len(seg) - trim]
            roof = fit_line(plane.u[seg], front[seg])
        if floor is not None:
            fa, fb = plane.world(*floor[0]), plane.world(*floor[1])
            rows.append(
                make_row(
                    level,
                    f"lateral_recess_depth_{side}_mm",
                    geometry.point_line_distance(tip_pt, fa, fb),
                    method,
                    {f"sap_tip_{side}": tip_pt, f"floor_{side}_a": fa, f"floor_{side}_b": fb},
                    thresholds,
                )
            )
            if roof is not None:
                ra, rb = plane.world(*roof[0]), plane.world(*roof[1])
                rows.append(
                    make_row(
                        level,
                        f"lateral_recess_angle_{side}_deg",
                        geometry.line_angle_deg(fa, fb, ra, rb),
                        method,
                        {f"floor_{side}_a": fa, f"floor_{side}_b": fb, f"roof_{side}_a": ra, f"roof_{side}_b": rb},
                        thresholds,
                    )
                )
            else:
                rows.append(
                    not_measurable(
                        level, f"lateral_recess_angle_{side}_deg", method, "the SAP's anterior face is too short to fit"
                    )
                )
        else:
            for m in (f"lateral_recess_depth_{side}_mm", f"lateral_recess_angle_{side}_deg"):
                rows.append(not_measurable(level, m, method, "no posterior disc border under the SAP"))
        j_mask = joint & side_cols[:, None]
        if j_mask.sum() >= 10:
            uu, vv = np.nonzero(j_mask)
            pts = np.stack([plane.u[uu], plane.v[vv]], axis=1)
            c = pts.mean(axis=0)
            _, vecs = np.linalg.eigh(np.cov((pts - c).T))
            d = vecs[:, 1]
            ja, jb = plane.world(*(c - 6 * d)), plane.world(*(c + 6 * d))
            ma, mb = plane.world(*disc_c), plane.world(*arch_c)
            rows.append(
                make_row(
                    level,
                    f"facet_angle_{side}_deg",
                    geometry.line_angle_deg(ma, mb, ja, jb),
                    method,
                    {
                        "midline_anterior": ma,
                        "midline_posterior": mb,
                        f"facet_{side}_anterior": ja,
                        f"facet_{side}_posterior": jb,
                    },
                    thresholds,
                )
            )
        else:
            rows.append(not_measurable(level, f"facet_angle_{side}_deg", method, f"no facet joint space on the {side}"))
    angles = {r.measurement: r.value for r in rows if r.measurement.startswith("facet_angle") and r.status == "ok"}
    if len(angles) == 2:
        rows.append(
            make_row(
                level,
                "facet_tropism_deg",
                abs(angles["facet_angle_left_deg"] - angles["facet_angle_right_deg"]),
                method,
                {},
                thresholds,
            )
        )

    rows += _herniation(level, plane, sampler, border, tips, left, post, thresholds, method)
    rows += _foramina(level, sampler, disc, edge, left, post, normal, thresholds, method)
    return rows


# Half-width of the band where the superior and inferior articular processes meet, read as the facet joint when a
# map has no joint-space label (SPINEPS and others label the two processes only).
CONTACT_MM = 1.0


def contact_band(sap: np.ndarray, iap: np.ndarray, plane: Plane2D) -> np.ndarray:
    """Pixels within `CONTACT_MM` of both processes: the joint between them, as a thin band along the joint line."""
    if not sap.any() or not iap.any():
        return np.zeros_like(sap)
    r = max(1, int(round(CONTACT_MM / plane.step)))
    near_sap = ndimage.distance_transform_edt(~sap) <= r
    near_iap = ndimage.distance_transform_edt(~iap) <= r
    return near_sap & near_iap


def mask_centroid(mask: np.ndarray, plane: Plane2D) -> tuple[float, float]:
    uu, vv = np.nonzero(mask)
    return float(plane.u[uu].mean()), float(plane.v[vv].mean())


def _disc_heights(labels, sampler, disc, edge, left, post, normal, thresholds, method) -> list[Row]:
    """Heights along the normal in the disc's mid-sagittal plane: at the AP midpoint and 10 % from each edge."""
    level = disc["label"]
    depth = voxel_depth_along(labels, normal)
    if depth > MAX_DEPTH_FOR_HEIGHTS_MM:
        why = f"the map's voxels are {depth:.1f} mm deep along the disc normal (axial slices): measure heights on sagittal images"
        return [not_measurable(level, "disc_height_mm", method, why)]
    sag = Plane2D(edge, post, normal, (-70.0, 8.0), (-14.0, 14.0), step=0.1)
    m = sag.sample(sampler, (disc["value"],))
    mid_row = m[:, int(np.argmin(np.abs(sag.v)))]
    if not mid_row.any():
        return [not_measurable(level, "disc_height_mm", method, "the disc's mid-sagittal section is empty")]
    half = sag.step / 2
    a, b = sag.u[mid_row].min() - half, sag.u[mid_row].max() + half
    out = []
    heights = {}
    for name, pos in (
        ("disc_height_mm", 0.5 * (a + b)),
        ("disc_height_anterior_mm", a + 0.1 * (b - a)),
        ("disc_height_posterior_mm", b - 0.1 * (b - a)),
    ):
        col = m[int(np.argmin(np.abs(sag.u - pos)))]
        if not col.any():
            out.append(not_measurable(level, name, method, "no disc at that AP position"))
            continue
        lo, hi = sag.v[col].min() - half, sag.v[col].max() + half
        heights[name] = hi - lo
        out.append(
            make_row(
                level,
                name,
                hi - lo,
                method,
                {"disc_superior": sag.world(pos, hi), "disc_inferior": sag.world(pos, lo)},
                thresholds,
            )
        )
    if "disc_height_mm" in heights:
        # Disc height index: height over AP depth of the disc (a common normalisation).
        out.append(make_row(level, "disc_height_index", heights["disc_height_mm"] / (b - a), method, {}, thresholds))
    return out


def _herniation(level, plane: Plane2D, sampler, border, tips, left, post, thresholds, method) -> list[Row]:
    hern = plane.sample(sampler, (STRUCTURE_CODES["herniation"],))
    contents = plane.sample(sampler, CONTENTS)
    rows = []
    if "left" in tips and "right" in tips:
        inside = (
            (plane.u[:, None] <= tips["left"][0]) & (plane.u[:, None] >= tips["right"][0]) & (plane.v[None, :] >= 0.0)
        )
        area_contents = float((contents & inside).sum()) * plane.step**2
        area_h = float(hern.sum()) * plane.step**2
        if area_contents > 0:
            rows.append(make_row(level, "herniation_ratio", area_h / area_contents, method, {}, thresholds))
        if hern.any():
            vmax = np.where(hern, plane.v[None, :], -np.inf).max()
            cols = np.nonzero((hern & (plane.v[None, :] >= vmax - 1e-6)).any(axis=1))[0]
            u_apex = float(plane.u[cols].mean())
            apex = plane.world(u_apex, vmax + plane.step / 2)
            col = int(np.argmin(np.abs(plane.u - u_apex)))
            b = border[col] if np.isfinite(border[col]) else 0.0
            border_pt = plane.world(u_apex, b)
            tl, tr = plane.world(*tips["left"]), plane.world(*tips["right"])
            size, zone, ratio = geometry.msu_class(apex, border_pt, tl, tr, left, post)
            rows.append(
                make_row(
                    level,
                    "msu_class",
                    f"{size}-{zone}",
                    method,
                    {"herniation_apex": apex, "herniation_border": border_pt, "sap_tip_left": tl, "sap_tip_right": tr},
                    thresholds,
                )
            )
        else:
            rows.append(make_row(level, "msu_class", "none", method, {}, thresholds))
    else:
        for m in ("herniation_ratio", "msu_class"):
            rows.append(not_measurable(level, m, method, "both facet joints are needed to bound the canal"))
    return rows


def _foramina(level, sampler: LocalSampler, disc, edge, left, post, normal, thresholds, method) -> list[Row]:
    depth = voxel_depth_along(sampler.labels, normal)
    if depth > MAX_DEPTH_FOR_HEIGHTS_MM:
        why = (
            f"the map's voxels are {depth:.1f} mm deep along the disc normal (axial slices): measure on sagittal images"
        )
        return [not_measurable(level, f"foraminal_height_{side}_mm", method, why) for side in ("left", "right")]
    pts = sampler.voxels((STRUCTURE_CODES["pedicle"],))
    rows = []
    rel = pts - edge
    u, v, w = rel @ left, rel @ post, rel @ normal
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        near = (u * sgn > 5.0) & (np.abs(w) < 40.0) & (v > -5.0) & (v < 30.0)
        if near.sum() < 10 or not (near & (w > 0)).any() or not (near & (w < 0)).any():
            rows.append(
                not_measurable(
                    level,
                    f"foraminal_height_{side}_mm",
                    method,
                    f"pedicles above and below the {side} foramen not found",
                )
            )
            continue
        u_ped = float(u[near].mean())
        origin = edge + u_ped * left
        # AP columns every 0.5 mm are enough; heights need the fine step along the normal.
        par = Plane2D(origin, post, normal, (-2.0, 14.0), (-40.0, 40.0), step=0.05, u_step=0.5)
        m = par.sample(sampler, (STRUCTURE_CODES["pedicle"],))
        upper = m & (par.v[None, :] > 0)
        lower = m & (par.v[None, :] < 0)
        if not upper.any() or not lower.any():
            rows.append(
                not_measurable(
                    level, f"foraminal_height_{side}_mm", method, "pedicles not cut by the parasagittal plane"
                )
            )
            continue
        w_up = np.where(upper, par.v[None, :], np.inf).min()
        w_lo = np.where(lower, par.v[None, :], -np.inf).max()
        h = (w_up - w_lo) - par.step
        c_up = np.nonzero((upper & (par.v[None, :] == w_up)).any(axis=1))[0][0]
        c_lo = np.nonzero((lower & (par.v[None, :] == w_lo)).any(axis=1))[0][0]
        rows.append(
            make_row(
                level,
                f"foraminal_height_{side}_mm",
                h,
                method,
                {
                    f"upper_pedicle_inferior_{side}": par.world(par.u[c_up], w_up - par.step / 2),
                    f"lower_pedicle_superior_{side}": par.world(par.u[c_lo], w_lo + par.step / 2),
                },
                thresholds,
            )
        )
    return rows
