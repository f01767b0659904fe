"""Geometry of one phantom: a chain of vertebra and disc frames, cross-section profiles and rigid parts.

The spine is built from the sacrum upwards. Each vertebra has a rigid frame at the centre of its body; the disc
above it has a frame rotated by half of the joint rotation, the next vertebra by the whole of it. Because the
two endplates of a disc are the mirror images of each other through the disc's mid-plane, the disc frame's w
axis is the exact normal the planner must find.

Structures come in two kinds:
- *profiles* (vertebral bodies, canal, dural sac, psoas, paraspinal muscles, vessels): cross-sections given at
  every key plane (the disc mid-planes and the mid-vertebral planes) and interpolated between them along the
  spine, so they follow every bend continuously and are exact on the planes where measurements are defined;
- *rigid parts* (discs, pedicles, laminae, processes, facet joints, nerve roots, herniations, sacrum) defined in
  one key frame.
All lengths are mm in the body frame (patient-aligned LPS before the random pose is applied).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import Frame, half_rotation, rotation_about, rotation_from_euler_deg
from ..labels import VERTEBRA_CODES, disc_code, disc_name, vertebra_sequence
from .params import PSOAS_AREA_MM2, PhantomParams
from .parts import (
    DiscGeometry,
    RigidPart,
    VertebraGeometry,
    disc_parts,
    herniation_geometry,
    vertebra_parts,
)
from .shapes import DiscWedge


@dataclass
class Anatomy:
    params: PhantomParams
    frames: list[Frame]  # key frames, bottom (S1) to top, in the body frame
    kinds: list[str]  # "vertebra" or "disc" per key frame
    key_names: list[str]
    arc_mm: np.ndarray  # cumulative distance along the chain of key origins
    profiles: dict[str, np.ndarray]
    parts: list[RigidPart]
    discs: list[DiscGeometry]
    vertebrae: list[VertebraGeometry]
    pose: Frame  # body frame -> world LPS
    torso: dict = field(default_factory=dict)

    @property
    def normals(self) -> np.ndarray:
        return np.stack([f.w for f in self.frames])

    @property
    def origins(self) -> np.ndarray:
        return np.stack([f.origin for f in self.frames])

    def world_frame(self, index: int) -> Frame:
        return self.pose.compose(self.frames[index])


def _joint_angles(params: PhantomParams, names_bottom_up: list[str]) -> list[tuple[float, float, float]]:
    """(flexion, lateral bend, axial rotation) in degrees for each joint from the bottom."""
    n_joints = len(names_bottom_up) - 1
    lumbar_joints = params.lumbar_count  # L1-L2 ... Ln-S1, counted from the bottom
    weights = np.arange(lumbar_joints, 0, -1, dtype=float)  # more lordosis caudally
    weights /= weights.sum()
    angles = []
    half = lumbar_joints / 2.0
    for j in range(n_joints):
        if j < lumbar_joints:
            flex = params.lordosis_deg * weights[j]
            side = 1.0 if j < half else -1.0
            bend = side * params.scoliosis_deg / max(half, 1.0)
            rot = side * params.axial_rotation_deg
        elif j == lumbar_joints:  # T12-L1: the thoracolumbar junction is nearly straight
            flex, bend, rot = 0.0, 0.0, 0.0
        else:
            flex, bend, rot = -params.thoracic_kyphosis_deg_per_level, 0.0, 0.0
        angles.append((flex, bend, rot))
    return angles


def _vertebra_dims(name: str, scale: float) -> dict:
    if name.startswith("L") or name == "S1":
        idx = 6 if name == "S1" else int(name[1:])
        return {
            "H": (24.5 + 0.6 * min(idx, 5)) * scale,
            "a_u": (20.5 + 0.9 * min(idx, 5)) * scale,
            "a_v": (15.5 + 0.45 * min(idx, 5)) * scale,
            "lumbar_index": 0 if name == "S1" else idx,
        }
    t = int(name[1:])  # T8..T12
    return {
        "H": (19.0 + 0.9 * (t - 8)) * scale,
        "a_u": (15.5 + 0.8 * (t - 8)) * scale,
        "a_v": (13.5 + 0.4 * (t - 8)) * scale,
        "lumbar_index": 0,
    }


_LEVEL_HEIGHT_FACTOR = {1: 0.82, 2: 0.9, 3: 0.98, 4: 1.04, 5: 0.96, 6: 0.92}


def build_anatomy(params: PhantomParams) -> Anatomy:
    names = vertebra_sequence(params.lumbar_count)
    bottom_up = names[::-1]
    scale = params.size_scale
    joints = _joint_angles(params, bottom_up)
    dims = {n: _vertebra_dims(n, scale) for n in bottom_up}
    rng = np.random.default_rng(params.seed + 7919)

    sigma = np.deg2rad(params.sacral_slope_deg)
    rot = rotation_about(np.array([1.0, 0, 0]), sigma)  # S1 endplate faces anterior-superior
    origin = np.zeros(3)
    frames = [Frame(origin.copy(), rot.copy())]
    kinds, key_names = ["vertebra"], ["S1"]
    wedges: list[DiscWedge] = []
    for j, (lower, upper) in enumerate(zip(bottom_up[:-1], bottom_up[1:])):
        flex, bend, axial = joints[j]
        rotvec = np.deg2rad(np.array([-flex, bend, 0.0]))
        angle = float(np.linalg.norm(rotvec))
        joint = rotation_about(rotvec, angle) if angle > 0 else np.eye(3)
        jh = half_rotation(joint)
        lumbar = upper.startswith("L") or lower == "S1"
        dname = disc_name(upper, lower)
        if lumbar:
            level = int(upper[1:]) if upper.startswith("L") else 0
            h_mid = params.disc_height_mm * _LEVEL_HEIGHT_FACTOR.get(level, 0.85)
            h_mid *= params.degeneration.get(dname, 1.0)
        else:
            h_mid = 5.5 * scale
        # A strongly lordotic, degenerated disc would pinch to nothing before its posterior border; keep at least
        # 2 mm of posterior height so the posterior edge point exists (real discs do not close either).
        p_est = 0.78 * 0.5 * (dims[lower]["a_v"] + dims[upper]["a_v"])
        h_mid = max(h_mid, 2.0 * p_est * np.tan(np.deg2rad(abs(flex)) / 2) + 2.0)
        r_disc = rot @ jh
        o_disc = origin + rot[:, 2] * dims[lower]["H"] / 2 + r_disc[:, 2] * h_mid / 2
        n_up = jh @ np.array([0.0, 0.0, 1.0])
        d_lo, d_up = dims[lower], dims[upper]
        wedges.append(
            DiscWedge(
                a_u=0.5 * (d_lo["a_u"] + d_up["a_u"]) + 0.8,
                a_v=0.5 * (d_lo["a_v"] + d_up["a_v"]) + 0.8,
                p=0.78 * 0.5 * (d_lo["a_v"] + d_up["a_v"]),
                half_height=h_mid / 2,
                slope_u=-n_up[0] / n_up[2],
                slope_v=-n_up[1] / n_up[2],
            )
        )
        frames.append(Frame(o_disc, r_disc))
        kinds.append("disc")
        key_names.append(dname)
        rot = r_disc @ jh @ rotation_about(np.array([0, 0, 1.0]), np.deg2rad(axial))
        origin = o_disc + r_disc[:, 2] * h_mid / 2 + rot[:, 2] * dims[upper]["H"] / 2
        frames.append(Frame(origin.copy(), rot.copy()))
        kinds.append("vertebra")
        key_names.append(upper)

    # Stand the lumbar spine upright in the body frame: the S1-L1 line becomes the superior axis.
    l1 = key_names.index("L1")
    align = _rotation_onto(frames[l1].origin - frames[0].origin, np.array([0.0, 0.0, 1.0]))
    frames = [Frame(align @ f.origin, align @ f.rotation) for f in frames]

    arc = np.concatenate(
        [[0.0], np.cumsum(np.linalg.norm(np.diff(np.stack([f.origin for f in frames]), axis=0), axis=1))]
    )

    vertebrae: list[VertebraGeometry] = []
    discs: list[DiscGeometry] = []
    parts: list[RigidPart] = []
    k = len(frames)
    prof = {
        key: np.zeros(k)
        for key in (
            "a_u",
            "a_v",
            "p",
            "canal_hw",
            "canal_back",
            "sac_front",
            "sac_ap",
            "sac_hw",
            "cord_r",
            "psoas_l_u",
            "psoas_l_v",
            "psoas_l_ru",
            "psoas_l_rv",
            "psoas_r_u",
            "psoas_r_v",
            "psoas_r_ru",
            "psoas_r_rv",
            "para_u",
            "para_v",
            "para_ru",
            "para_rv",
            "aorta_u",
            "aorta_v",
            "aorta_r",
            "ivc_u",
            "ivc_v",
            "ivc_r",
        )
    }

    sign = 1.0 if rng.random() < 0.5 else -1.0  # which psoas is the larger one
    for i, (kind, name) in enumerate(zip(kinds, key_names)):
        if kind != "vertebra":
            continue
        d = dims[name]
        a_u, a_v, p = d["a_u"] * 0.96, d["a_v"] * 0.96, 0.78 * d["a_v"]
        li = d["lumbar_index"]
        c_ap_v = (16.5 if (li or name == "S1") else 14.5) * scale
        u_ped = 0.55 * a_u + 4.0 * scale
        w_ped = 0.12 * d["H"]
        vertebrae.append(VertebraGeometry(name, VERTEBRA_CODES[name], i, d["H"], a_u, a_v, p, u_ped, w_ped, li))
        prof["a_u"][i], prof["a_v"][i], prof["p"][i] = a_u, a_v, p
        prof["canal_hw"][i] = u_ped - 3.5 * scale
        prof["canal_back"][i] = p + c_ap_v
        prof["sac_front"][i] = p + 1.5
        prof["sac_ap"][i] = min(13.0 * scale, c_ap_v - 3.0) if name != "S1" else 5.0
        prof["sac_hw"][i] = (8.5 if li else 7.5) * scale if name != "S1" else 4.5
        if name.startswith("T") and name != "T12":
            prof["cord_r"][i] = 4.2
        elif name == "T12":
            prof["cord_r"][i] = 3.8
        elif name == "L1":
            prof["cord_r"][i] = 2.0
        area = PSOAS_AREA_MM2.get(li, 0.0) * params.psoas_scale
        if name == "S1":
            area = PSOAS_AREA_MM2[params.lumbar_count] * params.psoas_scale
        if area > 0:
            a_left = area * (1 + sign * params.psoas_asymmetry / 2)
            a_right = area * (1 - sign * params.psoas_asymmetry / 2)
            for side, a_side in (("l", a_left), ("r", a_right)):
                ru = np.sqrt(a_side / (np.pi * 1.15))
                rv = 1.15 * ru
                shift = 12.0 if name == "S1" else 0.0
                prof[f"psoas_{side}_u"][i] = a_u + 1.5 + ru + shift
                prof[f"psoas_{side}_v"][i] = min(p + 1.5 - rv, -0.2 * a_v) - shift
                prof[f"psoas_{side}_ru"][i] = ru
                prof[f"psoas_{side}_rv"][i] = rv
        para_ru = (18.0 + 2.5 * min(li, 5)) * scale if li else 17.0 * scale
        para_rv = 20.0 * scale
        prof["para_ru"][i], prof["para_rv"][i] = para_ru, para_rv
        prof["para_u"][i] = 4.0 + para_ru
        prof["para_v"][i] = p + c_ap_v + 3.0 + para_rv
        aortic = not (li >= params.lumbar_count - 1 and li > 0) and name != "S1"
        prof["aorta_r"][i] = 10.5 * scale if aortic else 0.0
        prof["aorta_u"][i], prof["aorta_v"][i] = 0.45 * a_u, -a_v - 13.0
        prof["ivc_r"][i] = 11.0 * scale if name != "S1" else 0.0
        prof["ivc_u"][i], prof["ivc_v"][i] = -0.75 * a_u, -a_v - 11.0
        parts.extend(vertebra_parts(i, name, d["H"], a_u, a_v, p, u_ped, w_ped, c_ap_v, li, scale))

    lumbar_names = [f"L{j}" for j in range(1, params.lumbar_count + 1)]
    for i, (kind, name) in enumerate(zip(kinds, key_names)):
        if kind != "disc":
            continue
        upper, lower = name.split("-")
        wedge = wedges[(i - 1) // 2]
        lumbar = upper in lumbar_names
        p = wedge.p
        if lumbar:
            c_ap = params.canal_ap_mm.get(name, 15.0 * scale)
            alpha = params.facet_angle_deg.get(name, (40.0, 40.0))
            depth = params.recess_depth_mm.get(name, (5.0, 5.0))
            beta = params.recess_angle_deg.get(name, (38.0, 38.0))
        else:
            c_ap = 14.0 * scale
            alpha, depth, beta = (62.0, 62.0), (5.0, 5.0), (40.0, 40.0)
        tip_u = (0.42 * wedge.a_u + 1.0, 0.42 * wedge.a_u + 1.0)
        sac_front = p + 1.0
        sac_ap = float(np.clip(c_ap - 1.0 - 2.0, 3.5, 13.0 * scale))
        sac_hw = min(8.5 * scale, tip_u[0] + 1.0)
        prof["a_u"][i], prof["a_v"][i], prof["p"][i] = wedge.a_u, wedge.a_v, p
        prof["canal_hw"][i] = tip_u[0] + 12.0
        prof["canal_back"][i] = p + c_ap
        prof["sac_front"][i], prof["sac_ap"][i], prof["sac_hw"][i] = sac_front, sac_ap, sac_hw
        below, above = i - 1, i + 1
        for key in prof:
            if key in ("a_u", "a_v", "p", "canal_hw", "canal_back", "sac_front", "sac_ap", "sac_hw"):
                continue
            prof[key][i] = 0.5 * (prof[key][below] + prof[key][above])
        if name.endswith("-S1"):
            prof["sac_ap"][i], prof["sac_hw"][i] = min(sac_ap, 9.0), min(sac_hw, 6.5)
        herniation = None
        for h in params.herniations:
            if h.disc == name:
                herniation = herniation_geometry(h, p, wedge, depth, tip_u, rng)
        geom = DiscGeometry(
            name=name,
            code=disc_code(upper),
            upper=upper,
            lower=lower,
            frame_index=i,
            wedge=wedge,
            canal_ap_mm=c_ap,
            facet_angle_deg=(float(alpha[0]), float(alpha[1])),
            recess_depth_mm=(float(depth[0]), float(depth[1])),
            recess_angle_deg=(float(beta[0]), float(beta[1])),
            facet_tip_u_mm=tip_u,
            herniation=herniation,
            lumbar=lumbar,
        )
        discs.append(geom)
        parts.extend(disc_parts(geom, sac_hw, scale))

    pose_rot = rotation_from_euler_deg(*params.pose_tilt_deg)
    lumbar_keys = [i for i, n in enumerate(key_names) if n.startswith("L") and "-" not in n]
    centre = np.mean([frames[i].origin for i in lumbar_keys], axis=0)
    pose = Frame(np.asarray(params.pose_offset_mm, dtype=float) - pose_rot @ centre, pose_rot)
    torso = {
        "half_width": params.torso_half_width_mm,
        "half_depth": params.torso_half_depth_mm,
        "fat": params.subcutaneous_fat_mm,
        "viscera_waves": rng.normal(size=(6, 3)) * (2 * np.pi / rng.uniform(35, 70, size=(6, 1))),
        "viscera_phases": rng.uniform(0, 2 * np.pi, size=6),
    }
    return Anatomy(
        params=params,
        frames=frames,
        kinds=kinds,
        key_names=key_names,
        arc_mm=arc,
        profiles=prof,
        parts=parts,
        discs=discs[::-1],  # top to bottom, the order people read them
        vertebrae=vertebrae[::-1],
        pose=pose,
        torso=torso,
    )


def _rotation_onto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction a onto direction b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return np.eye(3)
    return rotation_about(axis, float(np.arctan2(s, float(a @ b))))
