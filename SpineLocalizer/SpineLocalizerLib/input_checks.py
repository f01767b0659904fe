"""What a localizer must look like before the networks read it, checked in milliseconds so that an input that
cannot be planned is refused at once (a constant image or a 20 mm grid used to cost 20-40 s and several GB
before failing), with a sentence saying what the input looks like and what to give instead."""

from __future__ import annotations

import numpy as np

from .volume_io import Volume

MAX_SPACING_MM = 12.0  # the thickest localizer slices the networks were trained on are 10 mm (+ gaps)
MIN_SPACING_MM = 0.05
MIN_HEAD_FOOT_MM = 100.0  # T12-L1 to L5-S1 spans ~150-190 mm in adults; a lumbar localizer covers most of it
THICK_RATIO = 2.0  # a grid this much coarser along one axis than the others is a stack of slices along it
AXIS_NAMES = ("left-right", "anterior-posterior", "head-foot")
PLANE_OF_NORMAL = ("sagittal", "coronal", "axial")


def slice_plane(volume: Volume) -> str | None:
    """ "sagittal", "coronal" or "axial" for a stack of thick slices (the coarse axis' world direction), None for
    a near-isotropic 3D volume."""
    sp = np.asarray(volume.spacing, dtype=float)
    thick = int(np.argmax(sp))
    if sp[thick] < THICK_RATIO * np.min(np.delete(sp, thick)):
        return None
    world = np.abs(np.asarray(volume.direction, dtype=float)[:, thick])
    return PLANE_OF_NORMAL[int(np.argmax(world))]


def head_foot_extent_mm(volume: Volume) -> float:
    """How far the field of view reaches from head to foot (voxel centres plus one voxel: 12 slices of 4 mm
    cover 48 mm)."""
    shape = np.array(volume.array.shape) - 1
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float) * shape
    world = volume.index_to_world(corners)
    voxel = float(np.abs(np.asarray(volume.direction, dtype=float)[2, :]) @ np.asarray(volume.spacing, dtype=float))
    return float(np.ptp(world[:, 2])) + voxel


def check_localizer(volume: Volume, name: str = "the image", role: str = "sagittal") -> None:
    """Refuse what the networks cannot plan on; `role` "sagittal" (the planning localizer, sagittal or 3D) or
    "coronal" (a coronal localizer fused with it)."""
    if volume.array.ndim != 3 or min(volume.array.shape) < 2:
        raise ValueError(f"{name}: a 3D localizer is needed (got shape {volume.array.shape})")
    if np.iscomplexobj(volume.array):
        raise ValueError(f"{name}: holds complex values; give the magnitude image")
    sp = np.asarray(volume.spacing, dtype=float)
    if np.any(sp < MIN_SPACING_MM) or np.any(sp > MAX_SPACING_MM):
        what = "a coarser one is" if np.any(sp < MIN_SPACING_MM) else "a finer localizer is"
        raise ValueError(
            f"{name}: voxel spacing ({', '.join(f'{v:g}' for v in sp)}) mm; the networks read localizers of "
            f"{MIN_SPACING_MM}-{MAX_SPACING_MM:.0f} mm (slices up to 10 mm thick): check the header's spacing, or "
            f"{what} needed"
        )
    if not np.all(np.isfinite(volume.array)):
        raise ValueError(f"{name}: the image contains NaN or infinite values; fix or mask them before planning")
    low, high = float(np.min(volume.array)), float(np.max(volume.array))
    if high <= low:
        raise ValueError(f"{name}: every voxel is {low:g}: the image holds no anatomy; check the export")
    extent = head_foot_extent_mm(volume)
    if extent < MIN_HEAD_FOOT_MM:
        raise ValueError(
            f"{name}: covers only {extent:.0f} mm from head to foot; a lumbar localizer covers at least "
            f"{MIN_HEAD_FOOT_MM:.0f} mm (an axial stack or a crop?): give the sagittal localizer"
        )
    plane = slice_plane(volume)
    if plane is not None and plane != role:
        what = {"sagittal": "the sagittal (or 3D) localizer", "coronal": "a coronal localizer"}[role]
        raise ValueError(f"{name}: is a stack of {plane} slices; {what} is needed here")
