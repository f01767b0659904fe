"""A diagnostic image turned into a localizer-like volume: thick sagittal slices (the slice thickness averaged, as
a thick slice does) on a coarse in-plane grid, the geometry the networks plan on. For preparing one's own
training pairs (`spine-localizer train --user-data`) and for validating on real diagnostic images."""

from __future__ import annotations

import numpy as np

from ..volume_io import Volume


def resample_to_localizer(
    volume: Volume, *, thick_mm: float = 4.0, inplane_mm: float = 1.5, labels: bool = False
) -> Volume:
    """A localizer-like sagittal grid: `thick_mm` slices along L-R (averaged), `inplane_mm` in plane."""
    import SimpleITK as sitk

    from ..volume_io import from_sitk, to_sitk

    if not labels:
        # Average across the slice thickness before sampling, as a thick slice does.
        from scipy import ndimage

        lr_axis = int(np.argmax(np.abs(volume.direction[0, :])))
        size = max(1, int(round(thick_mm / volume.spacing[lr_axis])))
        volume = Volume(
            ndimage.uniform_filter1d(volume.array.astype(np.float32), size, axis=lr_axis),
            volume.spacing,
            volume.origin,
            volume.direction,
        )
    image = to_sitk(volume)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float) * (
        np.array(volume.array.shape) - 1
    )
    world = volume.index_to_world(corners)
    lo, hi = world.min(axis=0), world.max(axis=0)
    # Sagittal grid: i posterior, j inferior, k right; spacing (in-plane, in-plane, thick).
    direction = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    spacing = np.array([inplane_mm, inplane_mm, thick_mm])
    extent = np.abs(direction.T @ (hi - lo))
    size = [max(2, int(e / s)) for e, s in zip(extent, spacing)]
    center = 0.5 * (lo + hi)
    origin = center - direction @ ((np.array(size) - 1) * spacing / 2)
    out = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkNearestNeighbor if labels else sitk.sitkLinear,
        origin.tolist(),
        spacing.tolist(),
        direction.ravel().tolist(),
        0,
    )
    return from_sitk(out)
