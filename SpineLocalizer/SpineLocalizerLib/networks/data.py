"""Training data: phantom label maps on a canonical grid, and randomised MR-like images synthesised from them.

Training never sees a fixed contrast. Each sample draws a new image from the phantom's tissue map (the
SynthSeg idea, Billot et al., Med Image Anal 2023): random signal per tissue or a jittered T1/T2 table, contrast
inversion, smooth bias field, gamma, blur, noise, thick-slice resampling along a random axis, random field of
view, left-right flips. Targets come from the label map: the spine mask (bodies + discs), the disc mask, and one
Gaussian heatmap per disc level (peak 256, LVP).

Users' own data: a folder with `<case>_image.nii.gz` + `<case>_labels.nii.gz` pairs (labels in the project codes:
VerSe vertebrae, 100 + upper vertebra for discs) is read by `user_cases`; images are used as they are (resample
them to the localizer geometry you will run on). Labelled vertebral bodies alone are enough for the level
classifier (disc positions are derived from them, `body_references.level_targets`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as functional
from scipy import ndimage

from ..labels import CODE_TO_VERTEBRA, DISC_CODE_OFFSET, is_disc_code, is_vertebra_code
from ..parallel import process_pool
from ..phantom.anatomy import build_anatomy
from ..phantom.model import evaluate_grid, evaluate_world
from ..phantom.params import sample_params
from ..phantom.tissues import N_TISSUES, signal_table
from .heatmap_levels import HEATMAP_PEAK, LEVELS, level_channel

CANONICAL_SPACING_MM = 2.0
CANONICAL_FOV_MM = (320.0, 300.0, 400.0)  # L-R, A-P, S-I
HEATMAP_SIGMA_MM = 6.0


@dataclass
class Case:
    labels: np.ndarray  # (i, j, k) on the canonical grid, i = L, j = P, k = S
    tissue: np.ndarray | None  # tissue classes (phantoms) or None (user data with a real image)
    image: np.ndarray | None  # real image for user data
    discs: dict[int, dict]  # code -> {"name", "centroid_vox"}
    # User data only: (canonical voxel, what lies there: a disc name or "not a disc") for the level classifier,
    # derived from the labelled bodies (networks/body_references.py).
    level_targets: list[tuple[list[float], str]] = field(default_factory=list)
    # What samples read from the whole case again and again (`spine_voxels`), computed once per case: the sample
    # worker keeps its cases, and a whole-grid search cost more than synthesising a classifier patch.
    derived: dict = field(default_factory=dict, repr=False)


def spine_voxels(case: Case) -> np.ndarray:
    """Indices (n x 3, int16) of the case's spine voxels (bodies + discs), found once per case."""
    if "spine" not in case.derived:
        case.derived["spine"] = np.argwhere(spine_mask(case.labels)).astype(np.int16)
    return case.derived["spine"]


def label_voxels(case: Case, code: int) -> np.ndarray:
    """Indices (n x 3, int16) of the voxels labelled `code`, found once per case."""
    key = f"label {code}"
    if key not in case.derived:
        case.derived[key] = np.argwhere(case.labels == code).astype(np.int16)
    return case.derived[key]


def canonical_axes(fov_mm=CANONICAL_FOV_MM, spacing=CANONICAL_SPACING_MM):
    size = tuple(int(round(f / spacing)) for f in fov_mm)
    origin = -(np.array(size) - 1) * spacing / 2.0
    return size, origin


def make_phantom_case(seed: int, folder: Path) -> Path:
    """Sample phantom `seed` on the canonical 2 mm LPS grid and store labels + tissues (npz)."""
    params = sample_params(seed)
    anatomy = build_anatomy(params)
    size, origin = canonical_axes()
    labels, tissue = evaluate_grid(anatomy, origin, (CANONICAL_SPACING_MM,) * 3, np.eye(3), size, block=(2, 2, 2))
    names = {g.code: g.name for g in anatomy.discs}
    discs = {}
    for code in np.unique(labels):
        if is_disc_code(int(code)) and int(code) in names:
            idx = np.argwhere(labels == code)
            if len(idx) >= 20:
                discs[int(code)] = {"name": names[int(code)], "centroid_vox": idx.mean(axis=0).tolist()}
    path = folder / f"phantom_{seed:06d}.npz"
    np.savez_compressed(path, labels=labels, tissue=tissue, discs=json.dumps(discs), seed=seed)
    return path


def build_cache(seeds: list[int], folder: Path, processes: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    todo = [s for s in seeds if not (folder / f"phantom_{s:06d}.npz").exists()]
    if todo:
        with process_pool(processes) as pool:
            list(pool.map(make_phantom_case, todo, [folder] * len(todo)))
    return [folder / f"phantom_{s:06d}.npz" for s in seeds]


FINE_MARGIN_2MM = 3  # 2 mm voxels kept around the spine's box in the 1 mm class map


def fine_classes(labels: np.ndarray) -> np.ndarray:
    """Classes of the 1 mm targets: 0 background, 1 vertebral body, 2 disc."""
    return np.where(disc_mask(labels), 2, np.where(spine_mask(labels), 1, 0)).astype(np.uint8)


def make_fine_classes(seed: int, folder: Path) -> Path:
    """Classes (0 background, 1 vertebral body, 2 disc) of phantom `seed` on the 1 mm grid of the canonical one
    (networks/fine.py: 2 mm voxel i covers 1 mm voxels 2i, 2i + 1), inside the spine's 2 mm box + a margin only:
    everything outside is background. The 2 mm case must be in `folder`.

    The 2 mm labels already hold the phantom at the 2 mm voxel centres, so only the 1 mm voxels whose eight
    surrounding 2 mm centres disagree on the class are evaluated from the model; the others take the class the
    eight agree on. This is `phantom.model.evaluate_grid`'s coarse-to-fine rule with the 2 mm centres as its
    lattice (2 mm apart instead of its 3 mm blocks): ~4 % of the voxels are evaluated, the 1 mm cache takes
    0.3 s per phantom with two processes instead of 2 s, and it differs from evaluating every voxel
    in ~1e-5 of them (a test checks a slab against the model voxel by voxel)."""
    with np.load(folder / f"phantom_{seed:06d}.npz") as z:
        labels2 = z["labels"]
    idx = np.argwhere(spine_mask(labels2))
    lo = np.maximum(idx.min(axis=0) - FINE_MARGIN_2MM, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + FINE_MARGIN_2MM, labels2.shape)
    # Classes of the 2 mm centres lo - 1 .. hi (the grid's edge repeated beyond it): index a is centre lo - 1 + a.
    coarse = np.pad(fine_classes(labels2), 1, mode="edge")[tuple(slice(a, b + 2) for a, b in zip(lo, hi))]
    size1 = 2 * (hi - lo)
    # 1 mm voxel m sits 0.25 of a 2 mm voxel before (m even) or after (m odd) the centre m // 2: its lower
    # neighbouring centre is (m - 1) // 2, which is (m - 1) // 2 + 1 in `coarse`.
    below = [(np.arange(n) - 1) // 2 + 1 for n in size1]
    lowest = np.full(tuple(size1), 255, dtype=np.uint8)
    highest = np.zeros(tuple(size1), dtype=np.uint8)
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                corner = coarse[np.ix_(below[0] + di, below[1] + dj, below[2] + dk)]
                np.minimum(lowest, corner, out=lowest)
                np.maximum(highest, corner, out=highest)
    classes = lowest
    todo = np.nonzero(lowest != highest)
    _, origin = canonical_axes()
    origin1 = origin + lo * CANONICAL_SPACING_MM - CANONICAL_SPACING_MM / 4
    points = origin1 + np.stack(todo, axis=-1) * (CANONICAL_SPACING_MM / 2)
    labels1, _ = evaluate_world(build_anatomy(sample_params(seed)), points)
    classes[todo] = fine_classes(labels1)
    path = folder / f"phantom_fine_{seed:06d}.npz"
    np.savez_compressed(path, classes=classes, lo=lo, seed=seed)
    return path


def build_fine_cache(seeds: list[int], folder: Path, processes: int = 2) -> list[Path]:
    build_cache(seeds, folder, processes)
    todo = [s for s in seeds if not (folder / f"phantom_fine_{s:06d}.npz").exists()]
    if todo:
        with process_pool(processes) as pool:
            list(pool.map(make_fine_classes, todo, [folder] * len(todo)))
    return [folder / f"phantom_fine_{s:06d}.npz" for s in seeds]


def load_fine_classes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(1 mm classes, their first voxel as a 2 mm canonical index)."""
    with np.load(path) as z:
        return z["classes"], z["lo"]


def fine_classes_in(classes: np.ndarray, lo: np.ndarray, box2: tuple[slice, ...]) -> np.ndarray:
    """1 mm classes of the 2 mm box `box2` (background outside the stored part)."""
    out = np.zeros(tuple(2 * (s.stop - s.start) for s in box2), dtype=np.uint8)
    src, dst = [], []
    for s, first, n in zip(box2, lo, classes.shape):
        a, b = 2 * (s.start - first), 2 * (s.stop - first)
        a0, b0 = max(a, 0), min(b, n)
        if b0 <= a0:
            return out
        src.append(slice(a0, b0))
        dst.append(slice(a0 - a, b0 - a))
    out[tuple(dst)] = classes[tuple(src)]
    return out


def load_case(path: Path) -> Case:
    with np.load(path) as z:
        discs = {int(k): v for k, v in json.loads(str(z["discs"])).items()}
        return Case(labels=z["labels"], tissue=z["tissue"], image=None, discs=discs)


def user_pair_problem(image, labels) -> str | None:
    """What makes an image + label pair unusable for training, or None."""
    from ..labels import is_vertebra_code

    if not labels.same_grid(image):
        return "the label map is not on the image's grid (resample it onto the image)"
    if not np.all(np.isfinite(image.array)) or float(np.ptp(image.array)) == 0.0:
        return "the image is constant or holds NaN/infinite values"
    values = np.unique(labels.array)
    if not np.allclose(values, np.round(values)):
        return "the label map holds fractional values (labels must be whole numbers)"
    if not any(is_disc_code(int(v)) or is_vertebra_code(int(v)) for v in values if v > 0):
        return "the label map holds no vertebra or disc code of the project (docs/phantom.md)"
    return None


def user_cases(folder: Path) -> list[Case]:
    """Image + label pairs from a user's folder, resampled to the canonical grid around their centre."""
    from ..volume_io import read_volume
    from .body_references import level_targets
    from .canonical import to_canonical

    cases = []
    pairs = []
    problems = []
    for image_path in sorted(Path(folder).glob("*_image.nii.gz")):
        label_path = image_path.with_name(image_path.name.replace("_image.nii.gz", "_labels.nii.gz"))
        if not label_path.exists():
            raise FileNotFoundError(f"{image_path}: no matching {label_path.name} (labels must sit beside images)")
        try:
            image, labels = read_volume(image_path), read_volume(label_path)
            problem = user_pair_problem(image, labels)
        except ValueError as err:
            problem = str(err)
        if problem:
            problems.append(f"{image_path.name.split('_image')[0]}: {problem}")
        else:
            pairs.append((image, labels))
    # Every pair is checked before any is used (and before the slow part of training starts).
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"{folder}: {len(problems)} pair(s) cannot be trained on: " + "; ".join(problems[:5]) + more)
    for image, labels in pairs:
        img_c, grid = to_canonical(image)
        lab_c, _ = to_canonical(labels, grid=grid, labels=True)
        discs = {}
        for code in np.unique(lab_c):
            if is_disc_code(int(code)):
                upper = CODE_TO_VERTEBRA[int(code) - DISC_CODE_OFFSET]
                idx = np.argwhere(lab_c == code)
                discs[int(code)] = {"name": f"{upper}-?", "centroid_vox": idx.mean(axis=0).tolist()}
        targets = [(grid.world_to_index(point).tolist(), what) for point, what in level_targets(grid.as_volume(lab_c))]
        cases.append(Case(lab_c.astype(np.uint8), None, img_c, discs, targets))
    return cases


# ---------------------------------------------------------------------------------------------- synthesis


def random_signal_table(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.35:
        table = rng.uniform(0.0, 1.0, size=N_TISSUES).astype(np.float32)
        table[0] = rng.uniform(0.0, 0.08)  # air stays dark-ish
        return table
    table = signal_table("t1" if rng.random() < 0.4 else "t2")
    table = np.clip(table + rng.normal(0.0, 0.07, size=table.shape), 0.0, 1.2).astype(np.float32)
    return table


def _smooth_random_field(shape, rng, scale_vox: float) -> np.ndarray:
    """Gaussian noise on a coarse grid (one value per `scale_vox` voxels), interpolated linearly corner to corner
    onto `shape`: what `ndimage.zoom(order=1)` does, 3-15x faster with torch on a localize crop (sample synthesis,
    not the network, bounds the localize and classifier training)."""
    small = tuple(max(2, int(np.ceil(s / scale_vox))) for s in shape)
    coarse = torch.from_numpy(rng.normal(size=small).astype(np.float32))[None, None]
    with torch.inference_mode():
        field = functional.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)
    return field[0, 0].numpy()


def thick_slices(vol: np.ndarray, axis: int, thickness_vox: float, step_vox: float) -> np.ndarray:
    """Average over slabs `thickness_vox` thick every `step_vox` along `axis`, then interpolate back."""
    n = vol.shape[axis]
    smoothed = ndimage.uniform_filter1d(vol, size=max(1, int(round(thickness_vox))), axis=axis)
    centres = np.arange(0, n, step_vox)
    taken = np.take(smoothed, np.round(centres).astype(int).clip(0, n - 1), axis=axis)
    pos = np.arange(n) / step_vox
    i0 = np.floor(pos).astype(int).clip(0, len(centres) - 1)
    i1 = (i0 + 1).clip(0, len(centres) - 1)
    frac = (pos - i0).clip(0, 1)
    shape = [1, 1, 1]
    shape[axis] = n
    frac = frac.reshape(shape).astype(np.float32)
    return np.take(taken, i0, axis=axis) * (1 - frac) + np.take(taken, i1, axis=axis) * frac


def normalise_levels(image: np.ndarray) -> tuple[float, float]:
    """The intensities `normalise` maps to 0 and 1: the 0.5th percentile, and the 99.5th percentile of the voxels
    above the 5th (the non-background ones).

    Percentiles are taken on every 7th voxel (a prime stride, so no grid axis aliases): the same numbers to a
    fraction of a percent at a seventh of the cost.
    """
    sample = np.ascontiguousarray(image.ravel()[::7] if image.size > 70_000 else image.ravel())
    lo, p5 = np.percentile(sample, [0.5, 5]) if sample.size else (0.0, 0.0)
    fg = sample[sample > p5]
    hi = np.percentile(fg, 99.5) if fg.size else 1.0
    return float(lo), float(hi)


def normalise(image: np.ndarray, levels: tuple[float, float] | None = None) -> np.ndarray:
    """Robust scaling to ~[0, 1] (`normalise_levels`, or given `levels`: a part of an image scaled as the whole)."""
    lo, hi = levels or normalise_levels(image)
    # One float32 copy scaled in place rather than a new whole-volume temporary per operation.
    out = np.array(image, dtype=np.float32)
    out -= np.float32(lo)
    out *= np.float32(1.0 / max(hi - lo, 1e-6))
    return np.clip(out, 0.0, 1.5, out=out)


def synthesize_image(case: Case, rng: np.random.Generator) -> np.ndarray:
    if case.image is not None:
        img = case.image.astype(np.float32)
    else:
        img = random_signal_table(rng)[case.tissue]
        img = img * (1.0 + 0.05 * _smooth_random_field(img.shape, rng, 8.0))
    if rng.random() < 0.1:
        img = img.max() - img
    img = ndimage.gaussian_filter(img, sigma=rng.uniform(0.0, 1.0))
    bias = np.exp(rng.uniform(0.1, 0.6) * _smooth_random_field(img.shape, rng, 40.0))
    img = img * bias
    if rng.random() < 0.45:
        axis = 0 if rng.random() < 0.7 else 1  # sagittal stacks (thick in L-R) are the common case
        thick = rng.uniform(4.0, 7.0) / CANONICAL_SPACING_MM
        img = thick_slices(img, axis, thick, thick + rng.uniform(0.0, 1.5) / CANONICAL_SPACING_MM)
    img = normalise(img)
    img = np.clip(img, 0, None) ** rng.uniform(0.7, 1.4)
    # float32 draws: the same distribution as float64 ones cast down, at a third of the cost on a whole grid.
    sigma = np.float32(rng.uniform(0.01, 0.06))
    noise = rng.standard_normal(size=img.shape, dtype=np.float32)
    noise *= sigma
    img = img.astype(np.float32, copy=False) + noise
    return np.abs(img, out=img)


def random_fov_mask(shape, rng: np.random.Generator, center_lr: float | None = None) -> np.ndarray | None:
    """With some probability keep only part of the volume: a random sub-box (lumbar-only or off-centre fields of
    view), or a thin left-right slab around the spine, which is all a multi-slice sagittal localizer covers."""
    u = rng.random()
    if u < 0.2 and center_lr is not None:
        half = rng.uniform(25.0, 45.0) / CANONICAL_SPACING_MM
        c = center_lr + rng.uniform(-5.0, 5.0) / CANONICAL_SPACING_MM
        mask = np.zeros(shape, dtype=bool)
        mask[int(max(c - half, 0)) : int(min(c + half, shape[0]))] = True
        return mask
    if u > 0.45:
        return None
    mask = np.zeros(shape, dtype=bool)
    lo = [int(rng.uniform(0, 0.25) * s) for s in shape]
    hi = [int(s - rng.uniform(0, 0.25) * s) for s in shape]
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


# ---------------------------------------------------------------------------------------------- targets


def spine_mask(labels: np.ndarray) -> np.ndarray:
    lut = np.array([is_disc_code(v) or is_vertebra_code(v) for v in range(256)])
    return lut[labels]


def disc_mask(labels: np.ndarray) -> np.ndarray:
    lut = np.array([is_disc_code(v) for v in range(256)])
    return lut[labels]


def heatmaps(shape, discs: dict[int, dict], spacing_mm: float, scale: float = 1.0) -> np.ndarray:
    """One Gaussian (peak 256, sigma 6 mm) per level channel at the disc centroid; `scale` maps 2 mm voxels."""
    out = np.zeros((len(LEVELS),) + tuple(shape), dtype=np.float32)
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij", sparse=True)
    for info in discs.values():
        ch = level_channel(info["name"])
        if ch is None:
            continue
        c = np.asarray(info["centroid_vox"]) * scale
        d2 = sum((g - ci) ** 2 for g, ci in zip(grids, c)) * spacing_mm**2
        out[ch] = np.maximum(out[ch], HEATMAP_PEAK * np.exp(-d2 / (2 * HEATMAP_SIGMA_MM**2)))
    return out


def downsample2(vol: np.ndarray) -> np.ndarray:
    """2x2x2 block mean (the 4 mm image is the partial-volume average of the 2 mm one); an odd last row is dropped.

    torch's average pooling does it 4x faster than a numpy reshape-mean (0.045 -> 0.012 s on a 2 mm localizer
    grid), on float32 as the networks see it."""
    with torch.inference_mode():
        pooled = torch.nn.functional.avg_pool3d(torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None], 2)
    return pooled[0].numpy()
