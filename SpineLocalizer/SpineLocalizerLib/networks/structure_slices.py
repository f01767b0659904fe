"""Training slices of the axial structure network: phantom planes near each lumbar disc and vertebra, evaluated
from the model (labels + tissues), and MR-like images synthesised from them at every draw.

Each stored slab is `SLAB_SHAPE` pixels of `SLAB_STEP_MM` in a plane near a disc's or a vertebra's mid-plane
(moved along its normal, tilted, turned and shifted in the plane, as the slices of a real slice group are), with
`SUB_SLICES` tissue planes `SUB_STEP_MM` apart along the normal, so a draw can average them into a thick slice
(partial volume, as a 3-5 mm axial slice has). Targets are the labels of the middle plane.

Image synthesis follows the localizer networks' (data.py, the SynthSeg idea): a random signal per tissue or a
jittered T1/T2 table, inversion, bias field, blur, coarser acquisition resolution, gamma, noise, left-right flips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..parallel import process_pool
from ..phantom.anatomy import build_anatomy
from ..phantom.model import evaluate_grid
from ..phantom.params import sample_params
from . import data
from .structure_classes import classes_of

SLAB_SHAPE = (256, 256)  # u (left) x v (posterior)
SLAB_STEP_MM = 0.75  # 192 mm across: both psoas muscles and the canal at every lumbar level
SUB_SLICES = 5
SUB_STEP_MM = 1.0
DRAWS_PER_PLANE = 2
TRAIN_SEEDS = range(1, 161)
VAL_SEEDS = range(50001, 50009)
LUMBAR_NAMES = ("T12-L1", "L1", "L1-L2", "L2", "L2-L3", "L3", "L3-L4", "L4", "L4-L5", "L5", "L5-L6", "L6")


def _is_lumbar_plane(name: str) -> bool:
    return name in LUMBAR_NAMES or name.endswith("-S1")


def _rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * (k @ k)


def make_slabs(seed: int, folder: Path) -> Path:
    """Slabs of phantom `seed` near each lumbar disc and vertebra, `DRAWS_PER_PLANE` random poses each (npz)."""
    anatomy = build_anatomy(sample_params(seed))
    labels_out, tissue_out, names = [], [], []
    for index, name in enumerate(anatomy.key_names):
        if not _is_lumbar_plane(name):
            continue
        frame = anatomy.world_frame(index)
        is_disc = anatomy.kinds[index] == "disc"
        for draw in range(DRAWS_PER_PLANE):
            rng = np.random.default_rng((seed, index, draw))
            u, v, w = frame.u, frame.v, frame.w
            # Tilt about a random in-plane axis (a slice group off its disc), then turn in the plane.
            tilt = _rotation(u * np.cos(a := rng.uniform(0, 2 * np.pi)) + v * np.sin(a), np.radians(rng.uniform(0, 9)))
            turn = _rotation(w, np.radians(rng.uniform(-12, 12)))
            axes = turn @ tilt @ np.stack([u, v, w], axis=1)
            reach = 8.0 if is_disc else 6.0  # the outer slices of a 5-slice group lie ~8 mm from its centre
            along = rng.uniform(-reach, reach) if draw else rng.uniform(-2.0, 2.0)
            shift = np.array([rng.uniform(-15, 15), rng.uniform(-10, 20), along])
            centre = frame.origin + axes @ shift
            size = (*SLAB_SHAPE, SUB_SLICES)
            spacing = (SLAB_STEP_MM, SLAB_STEP_MM, SUB_STEP_MM)
            origin = centre - axes @ (np.array([(n - 1) * s for n, s in zip(size, spacing)]) / 2)
            lab, tis = evaluate_grid(anatomy, origin, spacing, axes, size, block=(3, 3, 1))
            labels_out.append(classes_of(lab[:, :, SUB_SLICES // 2]))
            tissue_out.append(np.moveaxis(tis, -1, 0))
            names.append(f"{name}#{draw}")
    path = folder / f"slabs_{seed:06d}.npz"
    np.savez_compressed(path, classes=np.stack(labels_out), tissue=np.stack(tissue_out), names=np.array(names))
    return path


def build_slab_cache(seeds, folder: Path, processes: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    todo = [s for s in seeds if not (folder / f"slabs_{s:06d}.npz").exists()]
    if todo:
        with process_pool(processes) as pool:
            list(pool.map(make_slabs, todo, [folder] * len(todo)))
    return [folder / f"slabs_{s:06d}.npz" for s in seeds]


def load_slabs(paths) -> tuple[np.ndarray, np.ndarray]:
    """(classes n x 256 x 256, tissues n x 5 x 256 x 256) of all slabs in `paths`."""
    classes, tissue = [], []
    for p in paths:
        with np.load(p) as z:
            classes.append(z["classes"])
            tissue.append(z["tissue"])
    return np.concatenate(classes), np.concatenate(tissue)


def synthesize_slice(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MR-like slice (float32, ~0..1) from a slab's tissue planes: random contrast, slice thickness,
    acquisition resolution, bias, gamma and noise."""
    table = data.random_signal_table(rng)
    planes = table[tissue]  # (5, H, W)
    half = int(rng.choice([0, 1, 2], p=[0.3, 0.3, 0.4]))  # thin, ~3 mm, ~5 mm slices
    mid = SUB_SLICES // 2
    img = planes[mid - half : mid + half + 1].mean(axis=0)
    img = img * (1.0 + 0.05 * data._smooth_random_field((1, *img.shape), rng, 8.0)[0])
    if rng.random() < 0.1:
        img = img.max() - img
    coarse = rng.uniform(1.0, 1.6)  # acquired at 0.75-1.2 mm, shown on the 0.75 mm grid
    if coarse > 1.05:
        small = ndimage.zoom(img, 1 / coarse, order=1)
        img = ndimage.zoom(small, np.array(img.shape) / np.array(small.shape), order=1)
    img = ndimage.gaussian_filter(img, sigma=rng.uniform(0.0, 0.8))
    img = img * np.exp(rng.uniform(0.1, 0.6) * data._smooth_random_field((1, *img.shape), rng, 60.0)[0])
    img = data.normalise(img)
    img = np.clip(img, 0, None) ** rng.uniform(0.7, 1.4)
    img = img + rng.uniform(0.01, 0.06) * rng.standard_normal(img.shape)
    img = np.abs(img).astype(np.float32)
    if rng.random() < 0.3:  # a field of view smaller than the slice: zero beyond its edges
        lo = rng.integers(0, 40, size=2)
        hi = np.array(img.shape) - rng.integers(0, 40, size=2)
        kept = np.zeros_like(img, dtype=bool)
        kept[lo[0] : hi[0], lo[1] : hi[1]] = True
        img[~kept] = 0.0
    return img


def _elastic(img: np.ndarray, cls: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random displacement (up to ~4 mm, over ~40 mm) of image and classes alike: shapes the phantom's
    geometric models do not make."""
    amp = rng.uniform(0.0, 5.0)  # pixels
    du, dv = (amp * data._smooth_random_field((1, *img.shape), rng, 50.0)[0] for _ in range(2))
    iu, iv = np.indices(img.shape, dtype=np.float32)
    coords = np.stack([iu + du, iv + dv])
    return (
        ndimage.map_coordinates(img, coords, order=1, mode="nearest"),
        ndimage.map_coordinates(cls, coords, order=0, mode="nearest"),
    )


def _clutter(img: np.ndarray, cls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random blobs of random signal on the background class (bowel, vessels, fat septa, organs the phantom has
    not): the network must find the spine and muscles by shape and place, not by a quiet surround."""
    out = img.copy()
    bg = cls == 0
    iu, iv = np.indices(img.shape)
    for _ in range(int(rng.integers(0, 25))):
        cu, cv = rng.uniform(0, img.shape[0]), rng.uniform(0, img.shape[1])
        ru, rv = rng.uniform(2, 25, size=2)
        ang = rng.uniform(0, np.pi)
        x, y = iu - cu, iv - cv
        q = ((x * np.cos(ang) + y * np.sin(ang)) / ru) ** 2 + ((-x * np.sin(ang) + y * np.cos(ang)) / rv) ** 2
        out[(q <= 1.0) & bg] = rng.uniform(0.0, 1.0)
    return out


def realistic(img: np.ndarray, cls: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Appearance and shape beyond the phantom's, for real images: elastic shapes, background clutter, texture,
    a reformat's blur across the sagittal slices and its narrow left-right field of view."""
    if rng.random() < 0.7:
        img, cls = _elastic(img, cls, rng)
    if rng.random() < 0.6:
        img = _clutter(img, cls, rng)
    if rng.random() < 0.7:  # texture: fine multiplicative fields, the marrow, fat septa and muscle grain of real MR
        img = img * (
            1.0 + rng.uniform(0.05, 0.3) * data._smooth_random_field((1, *img.shape), rng, rng.uniform(2, 6))[0]
        )
    if rng.random() < 0.3:  # axial reformat of a sagittal acquisition: blurred along left-right
        img = ndimage.gaussian_filter1d(img, sigma=rng.uniform(1.0, 3.0), axis=0)
    if rng.random() < 0.25:  # ... with its left-right field of view of a sagittal slab
        half = rng.uniform(35.0, 80.0) / SLAB_STEP_MM
        centre = img.shape[0] / 2 + rng.uniform(-15, 15)
        u = np.arange(img.shape[0])
        img = img * (np.abs(u - centre) <= half)[:, None]
    return img.astype(np.float32), cls


def batch(
    classes: np.ndarray,
    tissue: np.ndarray,
    rng: np.random.Generator,
    size: int,
    rare=None,
    n_rare: int = 0,
    real_like: bool = False,
):
    """(images N x 1 x H x W, classes N x H x W) of `size` random slabs, each synthesised anew, half flipped;
    `n_rare` of them drawn from the slab indices `rare` (e.g. the few slabs that show a herniation); with
    `real_like` each also goes through `realistic`."""
    idx = rng.integers(0, len(classes), size=size)
    if rare is not None and len(rare) and n_rare:
        idx[:n_rare] = rng.choice(rare, size=n_rare)
    images, targets = [], []
    for i in idx:
        img, cls = synthesize_slice(tissue[i], rng), classes[i]
        if real_like:
            img, cls = realistic(img, cls, rng)
        if rng.random() < 0.5:
            img, cls = img[::-1], cls[::-1]
        images.append(img)
        targets.append(cls)
    return np.stack(images)[:, None].astype(np.float32), np.stack(targets).astype(np.int64)
