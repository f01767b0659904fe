"""The rigid parts of a phantom (LVP's structures that are not swept profiles): per vertebra the pedicles,
transverse processes, lamina and spinous process; per disc the disc itself, the articular processes, facet
joints, nerve roots, ligamentum flavum and any herniation; with their painting layers and the key-frame
geometry they are built from (`DiscGeometry`, `VertebraGeometry`). Lengths in mm, in the body frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..labels import STRUCTURE_CODES, VERTEBRA_CODES
from . import tissues
from .shapes import Capsule, DiscWedge, EllipticRod, HalfEllipsoid, Prism

# Painting order: later layers overwrite earlier ones.
LAYER_SOFT, LAYER_CANAL, LAYER_SAC, LAYER_ROOT, LAYER_HERNIATION = 1, 2, 3, 4, 5
LAYER_BODY, LAYER_BONE, LAYER_JOINT, LAYER_DISC = 6, 7, 8, 9


@dataclass(frozen=True)
class RigidPart:
    name: str
    frame_index: int
    shape: Any  # a shape of phantom/shapes.py: bbox() and contains(points)
    label: int
    tissue: int
    layer: int


@dataclass
class DiscGeometry:
    name: str
    code: int
    upper: str
    lower: str
    frame_index: int
    wedge: DiscWedge
    canal_ap_mm: float
    facet_angle_deg: tuple[float, float]  # (left, right)
    recess_depth_mm: tuple[float, float]
    recess_angle_deg: tuple[float, float]
    facet_tip_u_mm: tuple[float, float]  # |u| of the SAP medial tips (left, right)
    herniation: dict | None = None
    lumbar: bool = True


@dataclass
class VertebraGeometry:
    name: str
    code: int
    frame_index: int
    height_mm: float
    a_u: float
    a_v: float
    p: float
    pedicle_u_mm: float
    pedicle_w_mm: float
    lumbar_index: int  # 1..6 for lumbar vertebrae, 0 otherwise


def herniation_geometry(h, p, wedge: DiscWedge, depth, tip_u, rng) -> dict:
    """Place a herniation whose MSU class is unambiguous: its apex sits well inside a zone and its extent
    well inside a size band (Mysliwiec et al., Eur Spine J 2010)."""
    side = 1.0 if h.side == "left" else -1.0
    tip = tip_u[0] if side > 0 else tip_u[1]
    if h.zone == "A":
        u_h = float(rng.uniform(-0.2, 0.2) * tip)
        r_u = float(rng.uniform(5.5, 7.5))
    elif h.zone == "B":
        u_h = side * float(rng.uniform(0.66, 0.84) * tip)
        r_u = float(rng.uniform(3.5, 4.5))
    else:
        u_h = side * float(tip + rng.uniform(3.0, 5.0))
        r_u = float(rng.uniform(3.0, 4.0))
    # Distance from the disc border to the intra-facet line (through both SAP tips) at u_h.
    m_left = np.array([tip_u[0], p + depth[0]])
    m_right = np.array([-tip_u[1], p + depth[1]])
    frac = (u_h - m_right[0]) / (m_left[0] - m_right[0])
    line_v = m_right[1] + np.clip(frac, 0.0, 1.0) * (m_left[1] - m_right[1])
    dist = float(line_v - p)
    ratio = {1: rng.uniform(0.25, 0.4), 2: rng.uniform(0.62, 0.85), 3: rng.uniform(1.2, 1.45)}[h.size]
    extent = float(ratio * dist)
    r_w = float(min(0.33 * 2 * wedge.half_height, 4.0))
    return {
        "size": h.size,
        "zone": h.zone,
        "side": h.side,
        "center_u": u_h,
        "extent_mm": extent,
        "radius_u": r_u,
        "radius_w": r_w,
        "shape": HalfEllipsoid(center=(u_h, p, 0.0), radii=(r_u, extent, r_w), v_min=p - 1.0),
    }


def vertebra_parts(i, name, H, a_u, a_v, p, u_ped, w_ped, c_ap, li, scale) -> list[RigidPart]:
    parts = []
    cb = p + c_ap
    bone = tissues.CORTEX
    r_pu, r_pw = 4.5 * scale, 7.0 * scale
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        parts.append(
            RigidPart(
                f"{name} pedicle {side}",
                i,
                EllipticRod((sgn * u_ped, w_ped), (r_pu, r_pw), p - 4.0, cb + 2.0, 1),
                STRUCTURE_CODES["pedicle"],
                bone,
                LAYER_BONE,
            )
        )
    if name == "S1":
        code = VERTEBRA_CODES["S1"]
        parts.append(
            RigidPart(
                "S1 ala",
                i,
                EllipticRod((0.0, 2.0), (2.2 * a_u, 0.85 * a_v), -H / 2 - 8, H / 2 - 4, 2),
                code,
                tissues.MARROW,
                LAYER_BONE,
            )
        )
        for s in range(1, 5):
            top = -H / 2 - 16.0 * (s - 1) + 2
            parts.append(
                RigidPart(
                    f"S{s + 1}",
                    i,
                    EllipticRod((0.0, 5.0 * s), (a_u * (1.0 - 0.17 * s), a_v * (0.75 - 0.1 * s)), top - 17.0, top, 2),
                    code,
                    tissues.MARROW,
                    LAYER_BONE,
                )
            )
        parts.append(
            RigidPart(
                "sacral lamina",
                i,
                Prism(((-u_ped, cb), (u_ped, cb), (u_ped - 2, cb + 6), (-u_ped + 2, cb + 6)), -H / 2 - 50, H / 2 - 4),
                code,
                bone,
                LAYER_BONE,
            )
        )
        return parts
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        tp_len = {1: 16.0, 2: 22.0, 3: 28.0, 4: 24.0, 5: 20.0, 6: 18.0}.get(li, 14.0) * scale
        lo, hi = (u_ped, u_ped + tp_len) if sgn > 0 else (-u_ped - tp_len, -u_ped)
        parts.append(
            RigidPart(
                f"{name} transverse process {side}",
                i,
                EllipticRod((p + 7.0, w_ped), (3.5, 4.5), lo, hi, 0),
                STRUCTURE_CODES["transverse_process"],
                bone,
                LAYER_BONE,
            )
        )
    parts.append(
        RigidPart(
            f"{name} lamina",
            i,
            Prism(
                ((-u_ped - 3, cb), (u_ped + 3, cb), (u_ped - 1, cb + 7), (-u_ped + 1, cb + 7)), w_ped - 7.0, H / 2 - 1.0
            ),
            STRUCTURE_CODES["lamina"],
            bone,
            LAYER_BONE,
        )
    )
    sp = ((cb + 5.0, H / 2 - 3.0), (cb + 5.0, -H / 2 + 1.0), (cb + 34.0, -H / 2 - 8.0), (cb + 38.0, -H / 2 + 6.0))
    parts.append(
        RigidPart(
            f"{name} spinous process",
            i,
            Prism(sp, -3.5 * scale, 3.5 * scale, axes=(1, 2, 0)),
            STRUCTURE_CODES["spinous_process"],
            bone,
            LAYER_BONE,
        )
    )
    return parts


def disc_parts(g: DiscGeometry, sac_hw: float, scale: float) -> list[RigidPart]:
    """The disc and the facet joints, ligamentum flavum, exiting roots and herniation at its level."""
    w = g.wedge
    p = w.p
    parts = [RigidPart(f"{g.name} disc", g.frame_index, w, g.code, tissues.ANNULUS, LAYER_DISC)]
    w_lo, w_hi = -6.0, 12.0
    lj, gap, t_iap = 14.0 * scale, 1.5, 5.5 * scale
    for k, (side, sgn) in enumerate((("left", 1.0), ("right", -1.0))):
        alpha, beta = np.deg2rad(g.facet_angle_deg[k]), np.deg2rad(g.recess_angle_deg[k])
        m = np.array([g.facet_tip_u_mm[k], p + g.recess_depth_mm[k]])
        d = np.array([np.sin(alpha), np.cos(alpha)])  # joint line, running posterolaterally
        n = np.array([-np.cos(alpha), np.sin(alpha)])  # towards the inferior articular process
        roof = np.array([np.cos(beta), -np.sin(beta)])  # lateral recess roof, towards the floor
        roof_len = min(9.0 * scale, (g.recess_depth_mm[k] - 0.8) / np.sin(beta))
        r_end = m + roof_len * roof
        j = m + lj * d

        def mirror(poly, sgn=sgn):
            return tuple((sgn * x, y) for x, y in poly)

        sap = (m, j, j + (r_end - m), r_end)
        joint = (m, j, j + gap * n, m + gap * n)
        m1 = m + gap * n + 3.0 * d
        iap = (m1, m + gap * n + lj * d, m + (gap + t_iap) * n + lj * d, m1 + t_iap * n)
        parts.append(
            RigidPart(
                f"{g.name} SAP {side}",
                g.frame_index,
                Prism(mirror(sap), w_lo, w_hi),
                STRUCTURE_CODES["superior_articular_process"],
                tissues.CORTEX,
                LAYER_BONE,
            )
        )
        parts.append(
            RigidPart(
                f"{g.name} IAP {side}",
                g.frame_index,
                Prism(mirror(iap), w_lo, w_hi),
                STRUCTURE_CODES["inferior_articular_process"],
                tissues.CORTEX,
                LAYER_BONE,
            )
        )
        parts.append(
            RigidPart(
                f"{g.name} facet joint {side}",
                g.frame_index,
                Prism(mirror(joint), w_lo, w_hi),
                STRUCTURE_CODES["facet_joint"],
                tissues.JOINT,
                LAYER_JOINT,
            )
        )
        parts.append(
            RigidPart(
                f"{g.name} root {side}",
                g.frame_index,
                Capsule((sgn * (sac_hw - 2.0), p + 3.0, 8.0), (sgn * (m[0] + 16.0), p - 1.0, 3.0), 2.2 * scale),
                STRUCTURE_CODES["nerve_root"],
                tissues.NERVE,
                LAYER_ROOT,
            )
        )
    cb = p + g.canal_ap_mm
    u_lf = max(g.facet_tip_u_mm) + 3.0
    lf = ((-u_lf, cb), (u_lf, cb), (u_lf - 2.0, cb + 4.5), (-u_lf + 2.0, cb + 4.5))
    parts.append(
        RigidPart(
            f"{g.name} ligamentum flavum",
            g.frame_index,
            Prism(lf, w_lo, w_hi),
            STRUCTURE_CODES["ligamentum_flavum"],
            tissues.LIGAMENT,
            LAYER_BONE,
        )
    )
    if g.herniation is not None:
        parts.append(
            RigidPart(
                f"{g.name} herniation",
                g.frame_index,
                g.herniation["shape"],
                STRUCTURE_CODES["herniation"],
                tissues.HERNIATION,
                LAYER_HERNIATION,
            )
        )
    return parts
