"""Image grids of the phantom and MR-like image synthesis on them.

A grid is an oriented voxel lattice in world LPS (origin, spacing, direction columns), the same description
SimpleITK and NIfTI use. Images are the model's tissue classes mapped to T1/T2-like signal, blurred for partial
volume, averaged across thick slices, shaded by a smooth coil bias field and given Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..geometry import rotation_from_euler_deg
from .anatomy import Anatomy
from .model import evaluate_grid
from .tissues import MARROW, signal_table

# Sagittal acquisition: i runs anterior->posterior, j superior->inferior, k left->right (right-handed).
SAGITTAL_AXES = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
# Coronal acquisition: i runs right->left, j superior->inferior, k anterior->posterior.
CORONAL_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Grid:
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: np.ndarray  # world LPS of voxel (0, 0, 0)
    direction: np.ndarray  # columns: world direction of the i, j, k axes

    @staticmethod
    def centred(center: np.ndarray, direction: np.ndarray, fov_mm, spacing) -> Grid:
        spacing = tuple(float(s) for s in spacing)
        nx, ny, nz = (max(1, int(round(f / s))) for f, s in zip(fov_mm, spacing))
        size = (nx, ny, nz)
        half = (np.array(size) - 1) * np.array(spacing) / 2.0
        origin = np.asarray(center, dtype=float) - direction @ half
        return Grid(size, spacing, origin, np.asarray(direction, dtype=float))

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        return self.origin + (np.asarray(ijk, dtype=float) * np.array(self.spacing)) @ self.direction.T

    def world_points(self) -> np.ndarray:
        """World coordinates of every voxel centre, in C order of (i, j, k)."""
        ii, jj, kk = np.meshgrid(*(np.arange(n) for n in self.size), indexing="ij")
        return self.index_to_world(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1))


def localizer_grid(anatomy: Anatomy) -> Grid:
    p = anatomy.params
    direction = rotation_from_euler_deg(*p.grid_tilt_deg) @ SAGITTAL_AXES
    lr, ap, si = p.localizer_fov_mm
    return Grid.centred(np.zeros(3), direction, (ap, si, lr), (p.localizer_spacing_mm,) * 3)


def highres_grid(anatomy: Anatomy) -> Grid:
    """Diagnostic-resolution volume covering T12 to the sacrum, tilted differently from the localizer."""
    p = anatomy.params
    direction = rotation_from_euler_deg(*(-0.5 * np.asarray(p.grid_tilt_deg))) @ SAGITTAL_AXES
    names = anatomy.key_names
    top = anatomy.world_frame(names.index("T12")).origin
    bottom = anatomy.world_frame(0).origin
    center = 0.5 * (top + bottom)
    si = float(np.linalg.norm(top - bottom)) + 70.0
    return Grid.centred(center, direction, (200.0, si, 190.0), (p.highres_spacing_mm,) * 3)


def stack_grids(anatomy: Anatomy) -> dict[str, Grid]:
    """Multi-slice sagittal and coronal localizers: thick slices with gaps, fine in plane, large FOV."""
    p = anatomy.params
    spine_center = anatomy.pose.to_parent(np.mean(anatomy.origins, axis=0))
    lr, ap, si = p.localizer_fov_mm
    step = p.stack_thickness_mm + p.stack_gap_mm
    tilt = rotation_from_euler_deg(*(0.3 * np.asarray(p.grid_tilt_deg)))
    sag = Grid.centred(
        spine_center,
        tilt @ SAGITTAL_AXES,
        (ap, si, step * p.stack_slices),
        (p.stack_inplane_mm, p.stack_inplane_mm, step),
    )
    cor_center = spine_center + anatomy.pose.rotation @ np.array([0.0, 15.0, 0.0])
    cor = Grid.centred(
        cor_center, tilt @ CORONAL_AXES, (lr, si, step * p.stack_slices), (p.stack_inplane_mm, p.stack_inplane_mm, step)
    )
    return {"sagittal_stack": sag, "coronal_stack": cor}


def _block_for(grid: Grid, thick: bool) -> tuple[int, int, int]:
    """Coarse-to-fine block (voxels) of at most 4 voxels and about 4 mm; thick-slice stacks are never blocked across slices."""
    b = [max(1, min(4, int(4.5 // s))) for s in grid.spacing]
    if thick:
        b[2] = 1
    return (b[0], b[1], b[2])


def sample_labels(
    anatomy: Anatomy, grid: Grid, *, thick: bool = False, k_shift_mm: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    origin = grid.origin + grid.direction[:, 2] * k_shift_mm
    return evaluate_grid(anatomy, origin, grid.spacing, grid.direction, grid.size, _block_for(grid, thick))


def _smooth_field(grid: Grid, func, step_vox: int = 6) -> np.ndarray:
    """Evaluate a smooth function of world position on a coarse lattice and interpolate it to the grid."""
    axes = [np.unique(np.r_[np.arange(0, n, step_vox), n - 1]) for n in grid.size]
    ci, cj, ck = np.meshgrid(*axes, indexing="ij")
    world = grid.index_to_world(np.stack([ci.ravel(), cj.ravel(), ck.ravel()], axis=1))
    field = func(world).reshape(ci.shape).astype(np.float32)
    # Separable linear interpolation, one axis at a time: much cheaper than a 3D map_coordinates.
    for axis, (n, a) in enumerate(zip(grid.size, axes)):
        pos = np.interp(np.arange(n), a, np.arange(len(a)))
        i0 = np.minimum(np.floor(pos).astype(int), len(a) - 1)
        i1 = np.minimum(i0 + 1, len(a) - 1)
        shape = [1, 1, 1]
        shape[axis] = n
        frac = (pos - i0).astype(np.float32).reshape(shape)
        field = np.take(field, i0, axis=axis) * (1 - frac) + np.take(field, i1, axis=axis) * frac
    return field


def _texture(anatomy: Anatomy, grid: Grid) -> np.ndarray:
    """Gentle smooth texture so marrow and muscle do not look painted."""
    rng = np.random.default_rng([anatomy.params.seed, 31])
    waves = rng.normal(size=(4, 3)) * (2 * np.pi / 25.0)
    phase = rng.uniform(0, 2 * np.pi, size=4)
    return _smooth_field(
        grid, lambda w: np.cos(w @ waves.T + phase).sum(axis=1) / 4.0, step_vox=max(1, int(4 // min(grid.spacing)))
    )


def _bias(anatomy: Anatomy, grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative coil sensitivity: the spine coil lies under the back, signal falls anteriorly."""
    strength = anatomy.params.bias_strength
    coeffs = rng.uniform(-1, 1, size=3)
    y_back = anatomy.origins[:, 1].max() + 70.0 + anatomy.torso["fat"]

    def field(world):
        body = anatomy.pose.to_local(world)
        # Receive sensitivity of a posterior spine array decays roughly exponentially with depth into the body.
        falloff = np.exp(-np.clip(y_back - body[:, 1], 0, None) * max(strength, 0.02) / 60.0)
        smooth = coeffs[0] * body[:, 0] / 200.0 + coeffs[1] * body[:, 2] / 250.0 + coeffs[2] * (body[:, 0] / 200.0) ** 2
        return np.clip(falloff * (1.0 + 0.5 * strength * smooth), 0.05, 2.0)

    return _smooth_field(grid, field, step_vox=max(1, int(10 // min(grid.spacing))))


def _signal(anatomy: Anatomy, tissue: np.ndarray, texture: np.ndarray) -> np.ndarray:
    table = signal_table(anatomy.params.contrast)
    amp = np.where(tissue == MARROW, 0.12, 0.04).astype(np.float32)
    return table[tissue] * (1.0 + amp * texture)


def synthesize(
    anatomy: Anatomy, grid: Grid, *, subsamples: int = 1, seed_offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Image (int16) and label map (uint8) on `grid`.

    With `subsamples` > 1 each voxel is a thick slice along k: the signal is averaged over that many planes
    spread over the slice thickness (the slice profile), and the label is the one at the slice centre.
    """
    p = anatomy.params
    rng = np.random.default_rng([p.seed, 104729, seed_offset])
    texture = _texture(anatomy, grid)
    if subsamples > 1:
        offsets = ((np.arange(subsamples) + 0.5) / subsamples - 0.5) * p.stack_thickness_mm
        vol = np.zeros(grid.size, dtype=np.float32)
        for off in offsets:
            _, t_sub = sample_labels(anatomy, grid, thick=True, k_shift_mm=float(off))
            vol += _signal(anatomy, t_sub, texture)
        vol /= subsamples
        labels, _ = sample_labels(anatomy, grid, thick=True)
    else:
        labels, tissue = sample_labels(anatomy, grid)
        vol = _signal(anatomy, tissue, texture)
    # Partial volume in plane: a blur of about half a voxel.
    sigmas = [0.45 if s < 2.5 else 0.35 for s in grid.spacing]
    if subsamples > 1:
        sigmas[2] = 0.0
    vol = ndimage.gaussian_filter(vol, sigma=sigmas)
    vol *= _bias(anatomy, grid, rng)
    noise = p.noise_fraction * float(vol.max() if vol.size else 1.0)
    re = vol + rng.normal(0.0, noise, size=vol.shape).astype(np.float32)
    im = rng.normal(0.0, noise, size=vol.shape).astype(np.float32)
    image = np.clip(np.sqrt(re * re + im * im) * 1000.0, 0, 32767).astype(np.int16)
    return image, labels
