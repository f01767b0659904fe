"""Running the axial structure network (train_structures.py) on real images: each network plane is a 256 x 256
grid of 0.75 mm pixels on (left, posterior) axes, sampled from the image, as the training slices were
(structure_slices.py); the classes come back onto the image's own pixels or onto a grid along a plan.

Two ways in:
- `segment_slices`: an axial slice stack (a slice group resliced along a plan, or an axial series): every slice is
  one network plane, so nothing is interpolated across the thick slices.
- `segment_along_plan`: a sagittal or 3D volume: per planned disc a stack of planes parallel to the disc, 0.75 mm
  apart, reaching half way to the next disc, merged into one 0.75 mm grid (each voxel from the disc whose slab it
  lies in); the grid is what the measurements read and what is written out for a reader to check.
The plane is centred where the spine is: on the image centre (or the planned disc), then once more on the centroid
of what the first pass found as body, disc and canal (the training slices lie within ~15 mm of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..volume_io import Volume
from . import MODEL_DIR, data
from .structure_classes import CLASS_INDEX, N_STRUCTURE_CLASSES
from .structure_slices import SLAB_SHAPE, SLAB_STEP_MM

STAGE = "structures"
BATCH = 8
_SPINE = (CLASS_INDEX["vertebral body"], CLASS_INDEX["disc"], CLASS_INDEX["dural sac"])


@dataclass
class PlaneFrame:
    """A network plane: its centre and its left / posterior axes (unit, LPS)."""

    centre: np.ndarray
    left: np.ndarray
    post: np.ndarray

    def points(self) -> np.ndarray:
        """World points of the plane's pixels, (256, 256, 3), indexed [u (left), v (posterior)]."""
        n_u, n_v = SLAB_SHAPE
        u = (np.arange(n_u) - (n_u - 1) / 2) * SLAB_STEP_MM
        v = (np.arange(n_v) - (n_v - 1) / 2) * SLAB_STEP_MM
        return self.centre + u[:, None, None] * self.left + v[None, :, None] * self.post

    def moved(self, u: float, v: float) -> PlaneFrame:
        return PlaneFrame(self.centre + u * self.left + v * self.post, self.left, self.post)


def load_structure_net(model_dir: Path = MODEL_DIR):
    """(callable: float32 N x 1 x 256 x 256 tensor -> logits, card); bf16 autocast where the CPU has it natively."""
    import torch

    from .model_cards import checked_weights
    from .runtime import native_bf16
    from .vnet import VNet

    state, card = checked_weights(model_dir, STAGE)
    arch = card["architecture"]
    net = VNet(arch["in_channels"], arch["out_channels"], arch["base_channels"], arch["levels"], dims=arch["dims"])
    net.load_state_dict(state)
    net.eval()
    bf16 = native_bf16()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return net(x).float()
            return net(x)

    return run, card


def sample_points(image: Volume, points: np.ndarray, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """The image at world `points` (..., 3): linear for intensities, `order` 0 for label maps; `cval` outside."""
    idx = image.world_to_index(points.reshape(-1, 3)).T
    arr = image.array.astype(np.float32, copy=False) if order else image.array
    out = ndimage.map_coordinates(arr, idx, order=order, mode="constant", cval=cval)
    return out.reshape(points.shape[:-1])


def predict(run, image: Volume, frames: list[PlaneFrame]) -> np.ndarray:
    """Class probabilities (N, C, 256, 256) on each frame."""
    import torch

    planes = np.stack([data.normalise(sample_points(image, f.points())) for f in frames]).astype(np.float32)
    out = np.empty((len(frames), N_STRUCTURE_CLASSES, *SLAB_SHAPE), dtype=np.float32)
    for i in range(0, len(frames), BATCH):
        logits = run(torch.from_numpy(planes[i : i + BATCH, None]))
        out[i : i + BATCH] = torch.softmax(logits, dim=1).numpy()
    return out


def recentred(frames: list[PlaneFrame], probs: np.ndarray) -> list[PlaneFrame]:
    """Frames moved onto the centroid of the spine (body, disc, canal) the network found in them, one shared shift
    (the median over the planes: the slices of one stack show the same spine)."""
    n_u, n_v = SLAB_SHAPE
    shifts = []
    for p in probs:
        spine = np.isin(p.argmax(axis=0), _SPINE)
        if spine.sum() < 200:
            continue
        iu, iv = np.nonzero(spine)
        shifts.append(((iu.mean() - (n_u - 1) / 2) * SLAB_STEP_MM, (iv.mean() - (n_v - 1) / 2) * SLAB_STEP_MM))
    if not shifts:
        return frames
    du, dv = np.median(np.array(shifts), axis=0)
    return [f.moved(du, dv) for f in frames]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def slice_axes(image: Volume) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(slice axis, left, posterior, normal) of an axial slice stack: the slice axis is the image axis closest to
    head-foot; left / posterior are its in-plane axes turned to point to the patient's left and back."""
    d = np.asarray(image.direction, dtype=float)
    axis = int(np.argmax(np.abs(d[2])))
    a, b = (d[:, k] for k in range(3) if k != axis)
    left = a if abs(a[0]) >= abs(b[0]) else b
    left = left * np.sign(left[0])
    normal = d[:, axis] * np.sign(d[2, axis])
    post = _unit(np.cross(normal, left))
    left = _unit(np.cross(post, normal))
    return axis, left, post, normal


def stack_frames(run, image: Volume) -> list[PlaneFrame]:
    """The network plane of every slice of an axial stack, centred on the spine the network finds in it."""
    axis, left, post, _ = slice_axes(image)
    shape = np.array(image.array.shape)
    frames = []
    for k in range(shape[axis]):
        centre_idx = (shape - 1) / 2.0
        centre_idx[axis] = k
        frames.append(PlaneFrame(image.index_to_world(centre_idx[None])[0], left, post))
    return recentred(frames, predict(run, image, frames))


def segment_slices(run, image: Volume) -> tuple[np.ndarray, list[PlaneFrame]]:
    """Classes (uint8, the image's shape) of every slice of an axial stack, and the frame of each slice."""
    axis = slice_axes(image)[0]
    frames = stack_frames(run, image)
    probs = predict(run, image, frames)
    out = np.zeros(image.array.shape, dtype=np.uint8)
    grid = np.indices(image.array.shape).reshape(3, -1).T
    for k, (frame, p) in enumerate(zip(frames, probs)):
        sel = grid[grid[:, axis] == k]
        out[tuple(sel.T)] = _classes_at(frame, p, image.index_to_world(sel))
    return out, frames


def _classes_at(frame: PlaneFrame, probs: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Argmax of the frame's probabilities (C, 256, 256), interpolated linearly, at world `points` of its plane;
    background outside the frame."""
    rel = points - frame.centre
    n_u, n_v = SLAB_SHAPE
    iu = rel @ frame.left / SLAB_STEP_MM + (n_u - 1) / 2
    iv = rel @ frame.post / SLAB_STEP_MM + (n_v - 1) / 2
    coords = np.stack([iu, iv])
    stacked = np.stack([ndimage.map_coordinates(c, coords, order=1, mode="constant", cval=0.0) for c in probs])
    stacked[0] += (iu < 0) | (iu > n_u - 1) | (iv < 0) | (iv > n_v - 1)  # outside: background
    return stacked.argmax(axis=0).astype(np.uint8)


@dataclass
class DiscSlab:
    """The planes of one planned disc: frames at offsets `w` (mm along the normal) and their class maps."""

    disc: dict
    normal: np.ndarray
    w: np.ndarray
    frames: list[PlaneFrame]
    classes: np.ndarray  # (n, 256, 256) uint8


def _reach(discs: list[dict], i: int) -> tuple[float, float]:
    """(below, above) reach in mm along disc i's normal: half way to the neighbouring discs (the nearer one's
    distance mirrored at the ends), and 6 mm more: where neighbouring discs are not parallel (lordosis, scoliosis)
    the half-way plane of one is not the other's, and the slabs must overlap to leave no wedge between them
    (each voxel then takes the slab whose disc is nearest)."""
    c = np.asarray(discs[i]["centroid_lps"], dtype=float)
    n = _unit(discs[i]["normal_lps"])
    gaps = [float((np.asarray(d["centroid_lps"], dtype=float) - c) @ n) for j, d in enumerate(discs) if j != i]
    above = [g for g in gaps if g > 0]
    below = [-g for g in gaps if g < 0]
    default = min(above + below) if gaps else 36.0
    return 0.5 * min(below, default=default) + 6.0, 0.5 * min(above, default=default) + 6.0


def segment_along_plan(run, image: Volume, plan: dict, discs: list[dict] | None = None) -> list[DiscSlab]:
    """Per planned disc, class maps on planes parallel to it, 0.75 mm apart, half way to its neighbours."""
    discs = discs if discs is not None else plan["discs"]
    slabs = []
    for i, disc in enumerate(discs):
        normal = _unit(disc["normal_lps"])
        normal = normal * np.sign(normal[2] or 1.0)
        left = _unit(np.asarray(disc["left_lps"], dtype=float) - normal * (np.asarray(disc["left_lps"]) @ normal))
        post = _unit(np.cross(normal, left))
        below, above = _reach(discs, i)
        w = np.arange(-below, above + 1e-6, SLAB_STEP_MM)
        centre = np.asarray(disc["centroid_lps"], dtype=float)
        frames = [PlaneFrame(centre + x * normal, left, post) for x in w]
        mid = [len(w) // 2 + k for k in (-6, 0, 6) if 0 <= len(w) // 2 + k < len(w)]
        shift = recentred([frames[k] for k in mid], predict(run, image, [frames[k] for k in mid]))[0]
        du, dv = (shift.centre - frames[mid[0]].centre) @ left, (shift.centre - frames[mid[0]].centre) @ post
        frames = [f.moved(du, dv) for f in frames]
        classes = predict(run, image, frames).argmax(axis=1).astype(np.uint8)
        slabs.append(DiscSlab(disc, normal, w, frames, classes))
    return slabs


def slabs_grid(slabs: list[DiscSlab], image: Volume) -> Volume:
    """An empty 0.75 mm grid on the image's axes covering every slab (clipped to the image's extent)."""
    corners = []
    for s in slabs:
        for f in (s.frames[0], s.frames[-1]):
            pts = f.points()
            corners += [pts[0, 0], pts[0, -1], pts[-1, 0], pts[-1, -1]]
    d = np.asarray(image.direction, dtype=float)
    shape = np.array(image.array.shape)
    img_corners = image.index_to_world(np.array(np.meshgrid(*[[0, n - 1] for n in shape])).reshape(3, -1).T)
    local = np.array(corners) @ d
    local_img = img_corners @ d
    lo = np.maximum(local.min(axis=0), local_img.min(axis=0))
    hi = np.minimum(local.max(axis=0), local_img.max(axis=0))
    size = np.maximum(np.ceil((hi - lo) / SLAB_STEP_MM).astype(int) + 1, 1)
    return Volume(np.zeros(tuple(size), dtype=np.uint8), (SLAB_STEP_MM,) * 3, d @ lo, d)


def merge_slabs(slabs: list[DiscSlab], grid: Volume, codes_of) -> tuple[Volume, np.ndarray]:
    """The grid filled from the slabs: each voxel from the slab whose disc it lies nearest to along that disc's
    normal, within the slab's reach; `codes_of(slab, classes, u, w)` turns classes into label codes (u: mm to
    the patient's left of the slab's midline, w: mm above the disc). Also returns which voxels a slab covered."""
    flat = np.zeros(grid.array.size, dtype=np.uint8)
    covered = np.zeros(grid.array.size, dtype=bool)
    all_idx = np.indices(grid.array.shape).reshape(3, -1).T
    for start in range(0, len(all_idx), 1_000_000):  # in chunks: a lumbar grid has ~20 M voxels
        pts = grid.index_to_world(all_idx[start : start + 1_000_000])
        stop = start + len(pts)
        flat[start:stop], covered[start:stop] = _merge_chunk(slabs, pts, codes_of)
    vol = Volume(flat.reshape(grid.array.shape), grid.spacing, grid.origin, grid.direction)
    return vol, covered.reshape(grid.array.shape)


def _merge_chunk(slabs: list[DiscSlab], pts: np.ndarray, codes_of) -> tuple[np.ndarray, np.ndarray]:
    best = np.full(len(pts), np.inf)
    out = np.zeros(len(pts), dtype=np.uint8)
    n_u, n_v = SLAB_SHAPE
    for s in slabs:
        w = (pts - s.frames[0].centre) @ s.normal + s.w[0]
        inside = (w >= s.w[0] - SLAB_STEP_MM / 2) & (w <= s.w[-1] + SLAB_STEP_MM / 2) & (np.abs(w) < best)
        if not inside.any():
            continue
        sel = np.nonzero(inside)[0]
        k = np.clip(np.rint((w[sel] - s.w[0]) / SLAB_STEP_MM).astype(int), 0, len(s.w) - 1)
        r = pts[sel] - s.frames[0].centre
        iu = np.rint(r @ s.frames[0].left / SLAB_STEP_MM + (n_u - 1) / 2).astype(int)
        iv = np.rint(r @ s.frames[0].post / SLAB_STEP_MM + (n_v - 1) / 2).astype(int)
        ok = (iu >= 0) & (iu < n_u) & (iv >= 0) & (iv < n_v)
        sel, k, iu, iv = sel[ok], k[ok], iu[ok], iv[ok]
        u_mm = (iu - (n_u - 1) / 2) * SLAB_STEP_MM
        out[sel] = codes_of(s, s.classes[k, iu, iv], u_mm, w[sel])
        best[sel] = np.abs(w[sel])
    return out, np.isfinite(best)
