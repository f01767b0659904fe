"""Scoring a trainee's plane against a reference plane (the AI's or an expert's), with advice in words."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class PlaneScore:
    offset_angle_deg: float
    center_distance_mm: float
    tilt_sagittal_deg: float  # + : the trainee's plane is rotated so its posterior edge is lower than the reference
    tilt_coronal_deg: float  # + : its left side is lower
    shift_cranial_mm: float  # + : centre cranial of the reference
    shift_posterior_mm: float  # + : centre posterior of the reference
    passed: bool
    advice: str

    def as_dict(self) -> dict:
        return asdict(self)


def score_plane(
    center, normal, ref_center, ref_normal, ref_posterior, *, max_angle_deg: float = 3.0, max_distance_mm: float = 5.0
) -> PlaneScore:
    n = np.asarray(normal, dtype=float)
    n = n / np.linalg.norm(n)
    rn = np.asarray(ref_normal, dtype=float)
    rn = rn / np.linalg.norm(rn)
    if n @ rn < 0:
        n = -n  # a plane has no side: compare like with like
    post = np.asarray(ref_posterior, dtype=float)
    post = post - rn * (post @ rn)
    post /= np.linalg.norm(post)
    left = np.cross(post, rn)
    angle = float(np.degrees(np.arccos(np.clip(n @ rn, -1.0, 1.0))))
    tilt_sag = float(np.degrees(np.arctan2(n @ post, n @ rn)))
    tilt_cor = float(np.degrees(np.arctan2(n @ left, n @ rn)))
    d = np.asarray(center, dtype=float) - np.asarray(ref_center, dtype=float)
    cranial, posterior = float(d @ rn), float(d @ post)
    dist = float(np.linalg.norm(d))
    passed = angle <= max_angle_deg and dist <= max_distance_mm
    tips = []
    if abs(tilt_sag) > max_angle_deg / 2:
        tips.append(
            f"too {'steep' if tilt_sag > 0 else 'flat'}: rotate about the left-right axis so the posterior edge moves {'up' if tilt_sag > 0 else 'down'} by {abs(tilt_sag):.1f} deg"
        )
    if abs(tilt_cor) > max_angle_deg / 2:
        tips.append(
            f"tilted sideways: raise the patient's {'left' if tilt_cor > 0 else 'right'} side by {abs(tilt_cor):.1f} deg"
        )
    if abs(cranial) > max_distance_mm / 2:
        tips.append(f"too {'cranial' if cranial > 0 else 'caudal'} by {abs(cranial):.1f} mm")
    if abs(posterior) > max_distance_mm / 2:
        tips.append(
            f"centre too {'posterior' if posterior > 0 else 'anterior'} by {abs(posterior):.1f} mm (centre it on the posterior disc edge)"
        )
    advice = "well placed" if not tips else "; ".join(tips)
    return PlaneScore(angle, dist, tilt_sag, tilt_cor, cranial, posterior, passed, advice)
