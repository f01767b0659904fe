"""Muscle cross-sectional areas per axial slice of a muscle mask (e.g. a reader's or a network's psoas mask)."""

from __future__ import annotations

import numpy as np
from SpineLocalizerLib.volume_io import Volume


def areas_per_slice(mask: Volume, code: int) -> list[tuple[int, float]]:
    """(slice index, area mm^2) of label `code` in every slice of the voxel axis closest to superior-inferior.

    The area of one voxel in the slice is the cross product of the two in-plane voxel edges, so oblique
    acquisitions are handled; slices without the label are left out.
    """
    axis = int(np.argmax(np.abs(mask.direction[2, :])))
    inplane = [i for i in range(3) if i != axis]
    edges = [mask.direction[:, i] * mask.spacing[i] for i in inplane]
    pixel_mm2 = float(np.linalg.norm(np.cross(edges[0], edges[1])))
    counts = np.count_nonzero(mask.array == code, axis=tuple(inplane))
    return [(int(k), float(c) * pixel_mm2) for k, c in enumerate(counts) if c > 0]
