"""Is a network's segmentation plausible enough to measure from? Anatomical checks in the measurement planes, so
that a segmentation that went wrong (an image unlike anything the network was trained on) gives "not measurable"
with the reason instead of numbers read off nonsense.

Checks, per disc mid-plane: the disc is one compact piece of a lumbar disc's size, with the dural sac behind it
near the midline; per psoas: one compact piece of a plausible size, lateral to and not behind the spine. The
ranges are wide (adult lumbar anatomy, small to large, with degeneration and atrophy): they catch a failed
segmentation, not an unusual patient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from SpineLocalizerLib.labels import STRUCTURE_CODES
from SpineLocalizerLib.volume_io import Volume

from .plane_sampling import LocalSampler, Plane2D

STEP = 0.5
# Lumbar disc cross-section: ~900-2500 mm^2 in adults (endplate areas, e.g. Tang et al. on CT, ~ 1000-2000 mm^2);
# wider limits for partial sections and large patients.
DISC_AREA_MM2 = (300.0, 4000.0)
PSOAS_AREA_MM2 = (80.0, 4500.0)  # from L1 (small, ~1-3 cm^2) to L4-L5 (up to ~25-40 cm^2 in large men)
MAIN_PIECE_SHARE = 0.8
SOLIDITY = 0.75  # area / convex hull area: a disc or psoas section is convex-ish, scattered pixels are not


def _pieces(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """The largest connected piece of a mask and its share of the mask."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask, 0.0
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    k = int(np.argmax(sizes)) + 1
    return lab == k, float(sizes.max() / sizes.sum())


def _solidity(mask: np.ndarray) -> float:
    from scipy.spatial import ConvexHull, QhullError

    pts = np.argwhere(mask)
    if len(pts) < 10:
        return 0.0
    try:
        hull = ConvexHull(pts)
    except QhullError:
        return 0.0
    return float(len(pts) / max(hull.volume + 0.5 * hull.area, 1.0))  # pixel-centre hull: add half its perimeter


def _compact(mask: np.ndarray, name: str, area_range: tuple[float, float]) -> str | None:
    area = float(mask.sum()) * STEP**2
    if not area_range[0] <= area <= area_range[1]:
        return f"{name} area {area:.0f} mm2 is outside {area_range[0]:.0f}-{area_range[1]:.0f}"
    main, share = _pieces(mask)
    if share < MAIN_PIECE_SHARE:
        return f"{name} is in pieces (largest {100 * share:.0f} %)"
    solidity = _solidity(main)
    if solidity < SOLIDITY:
        return f"{name} is ragged (solidity {solidity:.2f})"
    return None


def implausible_disc(labels: Volume, disc: dict[str, Any]) -> str | None:
    """Why the segmentation at this disc's mid-plane is not to be measured from, or None."""
    centre = np.asarray(disc["centroid_lps"], dtype=float)
    left, post = np.asarray(disc["left_lps"], dtype=float), np.asarray(disc["posterior_lps"], dtype=float)
    plane = Plane2D(centre, left, post, (-50.0, 50.0), (-45.0, 55.0), step=STEP)
    sampler = LocalSampler(labels, centre, 80.0)
    disc_mask = plane.sample(sampler, (int(disc["value"]),))
    why = _compact(disc_mask, "disc", DISC_AREA_MM2)
    if why:
        return why
    sac = plane.sample(sampler, (STRUCTURE_CODES["dural_sac"], STRUCTURE_CODES["spinal_cord"]))
    if not sac.any():
        return "no dural sac behind the disc"
    main, _ = _pieces(sac)
    iu, iv = np.nonzero(main)
    u, v = plane.u[iu].mean(), plane.v[iv].mean()
    du, dv = np.nonzero(disc_mask)
    disc_u, disc_back = plane.u[du].mean(), plane.v[dv].max()
    if v < disc_back - 5.0 or abs(u - disc_u) > 15.0:
        return f"the dural sac is not behind the disc (sac {u - disc_u:+.0f} mm left, {v - disc_back:+.0f} mm back)"
    return None


def implausible_psoas(labels: Volume, centre, left, post, side: str) -> str | None:
    """Why the `side` psoas in the plane (centre on the spine; left, posterior axes) is not to be measured."""
    plane = Plane2D(centre, left, post, (-115.0, 115.0), (-85.0, 45.0), step=STEP)
    sampler = LocalSampler(labels, centre, 125.0)
    m = plane.sample(sampler, (STRUCTURE_CODES[f"psoas_{side}"],))
    why = _compact(m, f"{side} psoas", PSOAS_AREA_MM2)
    if why:
        return why
    iu, iv = np.nonzero(_pieces(m)[0])
    u, v = plane.u[iu].mean() * (1 if side == "left" else -1), plane.v[iv].mean()
    if not 10.0 <= u <= 100.0 or v > 25.0:
        return f"the {side} psoas lies where no psoas is ({u:.0f} mm to its side, {v:+.0f} mm back of the spine)"
    return None
