"""The localizer pipeline: localize the spine, segment the discs, label them, fuse, and hand over to planning.

1. The input (one localizer, or a sagittal + coronal pair averaged) is resampled to the canonical grid (2 mm,
   L, P, S axes; or the localizer's own axes, `grid_axes="localizer"`) and normalised; a 4 mm copy goes to the
   localization/labeling V-Net.
2. Spine probability -> largest connected component -> bounding box (+ 12 mm). If fewer than four discs turn up
   in that box (on real T2 the phantom-trained spine network can take the bowel or vessels for the spine), the
   discs are searched in the whole image and the longest chain of candidates stacked like a spine is kept.
3. The disc V-Net segments the box at 2 mm (background / vertebral body / disc; bodies + discs are the 2 mm spine
   output). Disc candidates: components above 0.25 that reach 0.5 somewhere, 250-40 000 mm^3, disc-shaped,
   mostly inside the image and near the spine.
4. Labeling and fusion (LVP module 3): the disc components are ordered from the most caudal upwards. Each
   hypothesis "lumbar count n, lowest component = level s above the lumbosacral disc" assigns consecutive levels;
   its score is the summed heatmap response of the assigned level channels on each component (the lumbosacral
   channel anchors the chain) minus LVP's sequence-matching term, the squared deviations of neighbouring
   distances from the template (patient scale divided out), plus the log-likelihood of the thoracic / lumbar /
   lumbosacral naming under the level classifier (networks/levels.py, a small CNN on a 96 mm patch around each
   candidate; without its weights, a logistic model of each disc's thickness and footprint), a sacrum-below term
   and a weak prior for five lumbar vertebrae.
   The best hypothesis names the components; the lumbar count can be forced. Confidence = heatmap response x
   mean disc probability.
5. Output label maps (networks/output_maps.py), drawn when first asked for (`discs_on`, `spine_on`): log-odds
   of the output network at 1 mm (networks/fine.py; without it, of the disc network) from a pass on the box,
   widened to at least `OUTPUT_BOX_MIN_SIDE_MM` on every side, and from a second pass on that box shifted half a
   voxel, averaged on the input's grid; each disc voxel keeps the code of the named component it belongs to.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ..input_checks import check_localizer
from ..progress import Progress, Report, as_progress
from ..volume_io import Volume
from . import MODEL_DIR, data
from . import levels as level_classifier
from .canonical import CanonicalGrid, canonical_grid_for, to_canonical
from .labeling import label_discs
from .loaded import loaded_networks
from .output_maps import OutputMap, draw_output_maps, margin_on
from .runtime import torch_threads

SPINE_MARGIN_MM = 12.0
# The output network draws the label maps on the naming box widened to at least this on every side. The naming
# box can be as thin as 68 mm from front to back on a multi-slice stack (the spine network finds the bodies but
# not all the sacrum behind them): the sacrum's posterior part then lies outside, and the V-Net's instance
# normalisation, which reads the whole box, shifts the surfaces. 40 tuning phantoms (seeds 60000+, output network
# of seed 26), spine / disc Dice: naming box 0.950 / 0.934, every side grown 12 mm 0.952 / 0.931 (thin boxes
# gain, wide ones lose), at least 112 mm 0.954 / 0.934, at least 128 mm 0.954 / 0.933.
OUTPUT_BOX_MIN_SIDE_MM = 112.0
# The spine network over-segments at 0.5: on 8 tuning phantoms (seeds 60000+, shipped weights) the mean spine
# Dice on the input grid was 0.847 at 0.5, 0.868 at 0.7, 0.871 at 0.8 and 0.869 at 0.85. The bounding box still
# comes from the 0.5 mask, which errs on the generous side. The disc probability is best cut where it is trained
# (0.5: Dice 0.863; 0.4: 0.864, 0.6: 0.852).
SPINE_THRESHOLD = 0.8
SPINE_THRESHOLD_2MM = 0.5  # the disc network's body + disc probability is cut where it is trained
DISC_THRESHOLD = 0.5


@dataclass
class PipelineResult:
    discs_canonical: np.ndarray  # disc codes on the canonical grid
    spine_canonical: np.ndarray
    disc_probability: np.ndarray | None  # disc probability on the canonical grid (0 outside the spine box)
    grid: CanonicalGrid
    confidences: dict[int, float]
    lumbar_count: int
    timings_s: dict[str, float]
    message: str
    spine_probability_4mm: np.ndarray | None = None  # the spine network's probability (largest component)
    # Bodies + discs from the disc network at 2 mm in the spine's box (three-class disc networks only).
    spine_probability_box: np.ndarray | None = None
    box: tuple | None = None
    # What the output label maps are drawn from (naming and planning read the probabilities above): log-odds of
    # disc and of spine on the box's grids (networks/output_maps.py), drawn on first use by `maps()`.
    output_maps: list[OutputMap] | None = None
    map_drawer: Callable[[], list[OutputMap]] | None = field(default=None, repr=False, compare=False)
    # How the discs were named and the lumbar count decided (sequence_matching.naming_evidence), with per-disc evidence.
    naming: dict = field(default_factory=dict)

    def maps(self) -> list[OutputMap] | None:
        """The output maps, drawn when first asked for (`discs_on`, `spine_on`).

        Why deferred: the plan does not read them, and the half-voxel-shifted disc-network pass behind them
        costs ~0.1-0.3 s; a caller that only plans (the scanner waiting for the slice groups) does not pay for
        it, one that writes the label maps pays it there (timed as "output_maps"; README, Latency).
        """
        if self.output_maps is None and self.map_drawer is not None:
            t = time.perf_counter()
            self.output_maps, self.map_drawer = self.map_drawer(), None
            self.timings_s["output_maps"] = time.perf_counter() - t
            _return_freed_memory()
        return self.output_maps

    @property
    def spine_probability(self) -> np.ndarray | None:
        """Spine probability on the 2 mm grid (computed when asked: it is an output, not a step of the plan).

        From the disc network's body + disc classes in the box when it has them (the box holds the whole located
        spine), else the 4 mm localization upsampled linearly.
        """
        if self.spine_probability_box is not None and self.box is not None:
            out = np.zeros(self.grid.size, dtype=np.float32)
            out[self.box] = self.spine_probability_box
            return out
        if self.spine_probability_4mm is None:
            return None
        return _upsample_probability(self.spine_probability_4mm, self.grid.size)

    @property
    def spine_threshold(self) -> float:
        return SPINE_THRESHOLD_2MM if self.spine_probability_box is not None else SPINE_THRESHOLD


def _pad(arr: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, ...]]:
    shape = arr.shape
    target = [int(np.ceil(s / multiple) * multiple) for s in shape]
    return np.pad(arr, [(0, t - s) for s, t in zip(shape, target)]), shape


def _run(net, image: np.ndarray) -> np.ndarray:
    padded, shape = _pad(image, net.multiple)
    with torch.inference_mode():
        out = net(torch.from_numpy(np.ascontiguousarray(padded[None, None])))[0].contiguous().numpy()
    return out[:, : shape[0], : shape[1], : shape[2]]


GRID_AXES = ("lps", "localizer")


def prepare_input(images: list[Volume], grid_axes: str = "lps") -> tuple[np.ndarray, CanonicalGrid]:
    """Canonical 2 mm image from one localizer or several (their normalised average where they overlap), on
    L, P, S axes or on the first localizer's own axes (`canonical_grid_for`)."""
    image, grid, _ = _prepare(images, grid_axes)
    return image, grid


def _prepare(images: list[Volume], grid_axes: str) -> tuple[np.ndarray, CanonicalGrid, list]:
    """`prepare_input` and the intensity levels of each image (for more grids scaled the same way)."""
    if grid_axes not in GRID_AXES:
        raise ValueError(f"grid axes must be one of {GRID_AXES}, got {grid_axes!r}")
    for k, vol in enumerate(images):
        check_localizer(
            vol, "the localizer" if k == 0 else "the coronal localizer", "sagittal" if k == 0 else "coronal"
        )
    grid = canonical_grid_for(images[0], align=grid_axes == "localizer")
    arrays = [to_canonical(vol, grid)[0] for vol in images]
    levels = [data.normalise_levels(arr) for arr in arrays]
    return _canonical_image(images, grid, levels, arrays), grid, levels


def _canonical_image(images: list[Volume], grid: CanonicalGrid, levels: list, arrays: list | None = None) -> np.ndarray:
    """The images resampled onto `grid` (or given as `arrays`, already resampled), each scaled by its levels,
    averaged where they overlap."""
    arrays = arrays or [to_canonical(vol, grid)[0] for vol in images]
    if len(images) == 1:
        return data.normalise(arrays[0], levels[0])
    acc = np.zeros(grid.size, dtype=np.float32)
    weight = np.zeros(grid.size, dtype=np.float32)
    for vol, lv, arr in zip(images, levels, arrays):
        inside, _ = to_canonical(
            Volume(np.ones(vol.array.shape, dtype=np.float32), vol.spacing, vol.origin, vol.direction), grid
        )
        acc += data.normalise(arr, lv) * (inside > 0.5)
        weight += inside > 0.5
    return np.where(weight > 0, acc / np.maximum(weight, 1), 0).astype(np.float32)


def run_pipeline(
    images: list[Volume], *, threads: int = 2, progress: Progress | Report | None = None, **options
) -> PipelineResult:
    """The localizer networks on `images` (options: see `_run_pipeline`) with torch on `threads` threads while
    they run, the deferred output maps included; the process's own setting is given back after each. Steps go to
    `progress` (progress.py), which may stop the run between them."""
    with torch_threads(threads):
        result = _run_pipeline(images, threads=threads, progress=as_progress(progress), **options)
    drawer = result.map_drawer
    if drawer is not None:

        def draw_with_threads() -> list[OutputMap]:
            with torch_threads(threads):
                return drawer()

        result.map_drawer = draw_with_threads
    return result


def _run_pipeline(
    images: list[Volume],
    *,
    lumbar_count: int | None = None,
    model_dir: Path = MODEL_DIR,
    threads: int = 2,
    grid_axes: str = "lps",
    fine_output: bool = True,
    shifted_output: bool = True,
    progress: Progress | None = None,
    search_whole_image: bool = True,
    before_wide_search: Callable[[], None] | None = None,
) -> PipelineResult:
    """`fine_output`: draw the output disc and spine maps from the output disc network at 1 mm when its weights
    are in `model_dir` (networks/fine.py); False: from the 2 mm disc network that names the discs.
    `shifted_output`: average them with a second pass on the box sampled half a voxel further
    (networks/output_maps.py). `search_whole_image`: look for discs in the whole image when the spine network's
    box holds too few (False: report what the box holds; the orientation check's re-plans, where it cost ~7 s);
    `before_wide_search` is called first and may refuse the image by raising (pipeline.py: a flipped image)."""
    timings = {}
    step = progress or Progress()
    t0 = time.perf_counter()
    step(0.0, "Loading the networks")
    nets = loaded_networks(Path(model_dir), threads, fine_output)
    loc_net, disc_net, output_net, level_net = nets.localize, nets.discs, nets.output, nets.levels
    n_disc_classes = nets.n_disc_classes
    timings["load_models"] = time.perf_counter() - t0
    step(0.1, "Finding the spine")
    t = time.perf_counter()
    image2, grid, levels = _prepare(images, grid_axes)
    image4 = data.downsample2(image2)
    timings["resample"] = time.perf_counter() - t
    t = time.perf_counter()
    out4 = _run(loc_net, image4)
    timings["localize_and_label"] = time.perf_counter() - t
    spine_p4 = _softmax1(out4[:2])
    spine4 = spine_p4 > 0.5
    heat4 = out4[2:] * data.HEATMAP_PEAK
    t = time.perf_counter()
    spine_lab, n = ndimage.label(spine4)
    empty = np.zeros(grid.size, dtype=np.uint8)
    if n == 0:
        return PipelineResult(empty, empty, None, grid, {}, lumbar_count or 5, timings, "no spine found in the image")
    sizes = ndimage.sum(spine4, spine_lab, range(1, n + 1))
    spine4 = spine_lab == (1 + int(np.argmax(sizes)))
    if spine4.sum() * 64.0 < 20_000:  # less than about one vertebra
        return PipelineResult(empty, empty, None, grid, {}, lumbar_count or 5, timings, "no spine found in the image")
    idx4 = np.argwhere(spine4)
    m = int(round(SPINE_MARGIN_MM / grid.spacing))
    lo = np.maximum(idx4.min(axis=0) * 2 - m, 0)
    hi = np.minimum(idx4.max(axis=0) * 2 + 2 + m, grid.size)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    spine_p4 = spine_p4 * ndimage.binary_dilation(spine4, iterations=1)
    spine2 = np.zeros(grid.size, dtype=np.uint8)
    up = np.repeat(np.repeat(np.repeat(spine_p4 >= SPINE_THRESHOLD, 2, axis=0), 2, axis=1), 2, axis=2)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(up.shape, grid.size))
    spine2[sl] = up[sl]
    timings["box"] = time.perf_counter() - t
    classify = None
    if level_net is not None:

        def classify(centres_vox: np.ndarray) -> np.ndarray:
            return level_classifier.class_log_probabilities(level_net, image2, centres_vox)

    def discs_in(box, near_spine: bool):
        """Segment the discs of `box` at 2 mm and label them; candidates must lie near the located spine, or
        (without a trustworthy spine) on the longest chain of candidates stacked like a spine."""
        t = time.perf_counter()
        raw = _run(disc_net, image2[box])
        disc_probs = _softmax(raw)
        prob = disc_probs[-1]  # the disc class is the last one of both heads (two or three classes)
        spine_box = disc_probs[1] + disc_probs[2] if len(disc_probs) == 3 else None
        timings["discs"] = timings.get("discs", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        # Heatmap values only matter on the candidates: the box's part of the heatmaps is all that is searched.
        box4 = tuple(slice(b.start // 2, (b.stop + 1) // 2) for b in box)
        usable = _inside_images(images, grid, box)
        if near_spine:
            # Near the spine as either network sees it: on real images the 4 mm spine network often stops a few
            # vertebrae short of the top of its own box, where the disc network still sees bodies and discs.
            spine_here = spine2[box] > 0
            if spine_box is not None:
                spine_here |= spine_box > SPINE_THRESHOLD_2MM
            usable &= ndimage.binary_dilation(spine_here, iterations=3)
        spine_bottom = float(idx4[:, 2].min() * 2 * grid.spacing) if near_spine else None
        labelled = label_discs(
            prob,
            heat4[(slice(None),) + box4],
            np.array([b.start for b in box4]),
            box,
            grid,
            lumbar_count,
            spine_bottom,
            usable=usable,
            classify=classify,
            outside_spine=not near_spine,
        )
        timings["labels"] = timings.get("labels", 0.0) + time.perf_counter() - t
        return labelled, prob, spine_box, box, raw

    step(0.35, "Segmenting and naming the discs")
    (discs_box, conf, count, message, naming), prob, spine_box, box, raw = discs_in(box, near_spine=True)
    searched_wide = False
    if len(conf) < MIN_DISCS_NEAR_SPINE and search_whole_image:
        if before_wide_search is not None:
            before_wide_search()
        step(0.7, "Searching the whole image for discs")
        # Few discs where the spine network put the spine: on real images it can take the bowel or the great
        # vessels for the spine. The disc network is more reliable there; look for discs in the whole image.
        wide = discs_in(_footprint_box(images, grid), near_spine=False)
        if len(wide[0][1]) > len(conf):
            (discs_box, conf, count, message, naming), prob, spine_box, box, raw = wide
            searched_wide = True
            message = f"{message}; spine located from the discs (the spine network's box held too few)"
    discs = np.zeros(grid.size, dtype=np.uint8)
    discs[box] = discs_box
    if conf and max(conf.values()) < MIN_BEST_CONFIDENCE:
        message = (
            f"no disc looks like one (best confidence {max(conf.values()):.3f} < {MIN_BEST_CONFIDENCE}): "
            "no spine found in the image"
        )
        discs[:], conf = 0, {}
    probability = np.zeros(grid.size, dtype=np.float32)
    probability[box] = prob
    drawer = None
    if output_net is not None or n_disc_classes == 3:
        map_box = box
        if searched_wide and discs.any():
            # The box of a search of the whole image: the maps are drawn around the discs found, not over the whole
            # field of view (a front-back flipped localizer took 36 s and 4.3 GB for maps of empty space).
            map_box = _around_labels(discs, box, grid, AROUND_DISCS_MM)
        if output_net is not None:
            map_box = widened_box(map_box, grid, OUTPUT_BOX_MIN_SIDE_MM)
        # The disc network's maps reuse the naming pass where they keep its box.
        first = raw if output_net is None and map_box == box else None

        def drawer() -> list[OutputMap]:
            return draw_output_maps(
                lambda arr: _run(output_net or disc_net, arr),
                lambda g: _canonical_image(images, g, levels),
                grid,
                map_box,
                first,
                fine=output_net is not None,
                shifted=shifted_output,
            )

    del raw
    timings["total_inference"] = time.perf_counter() - t0 - timings["load_models"]
    _return_freed_memory()
    return PipelineResult(
        discs_canonical=discs,
        spine_canonical=spine2,
        disc_probability=probability,
        grid=grid,
        confidences=conf,
        lumbar_count=count,
        timings_s=timings,
        message=message,
        spine_probability_4mm=spine_p4,
        spine_probability_box=spine_box,
        box=box,
        map_drawer=drawer,
        naming=naming if conf else {},
    )


TRIM_ABOVE_MB = 1200.0


def _return_freed_memory() -> None:
    """Hand freed heap pages back to the system when the process has grown large (glibc's malloc_trim; Linux).

    The networks' activations are freed after each run but stay in the allocator's per-thread arenas; a process
    that plans one localizer after another (Slicer, a batch) grew from 1.36 to 1.77 GB resident over 16 runs.
    Trimming after every run kept it at 1.3 GB but cost ~0.1 s per run (the next run faults the pages in again),
    so it only happens above `TRIM_ABOVE_MB` resident.
    """
    try:
        with open("/proc/self/statm") as fh:
            resident_mb = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        if resident_mb > TRIM_ABOVE_MB:
            ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, ValueError, IndexError):
        pass  # not Linux/glibc: nothing to do


# A labelled spine has at least one convincing disc (confidence = heatmap response x mean disc probability). The
# most confident disc of each of 17 real T2 localizers and the sct_t2_lumbar image scored 0.21-0.35; pure noise,
# which an earlier localize network took for spine, gave 0.027. The gate sits between, on a log scale.
MIN_BEST_CONFIDENCE = 0.075
MIN_DISCS_NEAR_SPINE = 4  # a localizer shows at least five lumbar discs; fewer in the spine box means look wider
# Where the discs were searched for in the whole image, the output maps cover the discs found and this much around
# them: a vertebral body above and below, the bodies' width and depth beside.
AROUND_DISCS_MM = 40.0


def widened_box(box: tuple[slice, ...], grid: CanonicalGrid, mm: float) -> tuple[slice, ...]:
    """`box` widened about its centre to at least `mm` on every side (moved inwards at the grid's edges)."""
    n_min = int(round(mm / grid.spacing))
    out = []
    for s, n in zip(box, grid.size):
        size = min(max(s.stop - s.start, n_min), n)
        lo = int(np.clip(s.start - (size - (s.stop - s.start)) // 2, 0, n - size))
        out.append(slice(lo, lo + size))
    return tuple(out)


def _around_labels(labels: np.ndarray, box: tuple[slice, ...], grid: CanonicalGrid, mm: float) -> tuple[slice, ...]:
    """The part of `box` within `mm` of a labelled voxel of `labels` (on the whole grid)."""
    idx = np.argwhere(labels > 0)
    m = int(round(mm / grid.spacing))
    lo = np.maximum(idx.min(axis=0) - m, [s.start for s in box])
    hi = np.minimum(idx.max(axis=0) + 1 + m, [s.stop for s in box])
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _footprint_box(images: list[Volume], grid: CanonicalGrid) -> tuple[slice, ...]:
    """The canonical-grid box covering every input image (sides a multiple of the disc network's 8 voxels)."""
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for vol in images:
        idx = grid.world_to_index(vol.index_to_world(corners * (np.array(vol.array.shape) - 1)))
        lo, hi = np.minimum(lo, idx.min(axis=0)), np.maximum(hi, idx.max(axis=0))
    lo = np.clip(np.floor(lo).astype(int), 0, np.array(grid.size) - 1)
    hi = np.clip(np.ceil(hi).astype(int) + 1, lo + 1, np.array(grid.size))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _upsample_probability(p4: np.ndarray, size) -> np.ndarray:
    """4 mm probabilities onto the 2 mm grid by linear interpolation (a 4 mm voxel is the mean of 2 x 2 x 2 fine
    voxels, hence grid_mode): block copies would put a 4 mm staircase on every surface."""
    up = ndimage.zoom(p4.astype(np.float32), 2, order=1, grid_mode=True, mode="nearest")
    out = np.zeros(size, dtype=np.float32)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(up.shape, size))
    out[sl] = up[sl]
    return out


INSIDE_MARGIN_MM = 4.0


def _inside_images(images: list[Volume], grid: CanonicalGrid, box) -> np.ndarray:
    """Voxels of the box that lie inside at least one input image, `INSIDE_MARGIN_MM` from its border.

    The canonical grid is larger than the image (zeros around it); the network sees the image border as an
    edge and can answer with disc-like blobs there, which would then be labelled as discs.
    """
    shape = tuple(s.stop - s.start for s in box)
    inside = np.zeros(shape, dtype=bool)
    # The image index is affine in the grid index: idx = i * a + j * b + k * c + d, summed by broadcasting one
    # axis at a time (no per-voxel coordinate array: 0.026 -> 0.008 s on a localizer's box).
    origin = grid.index_to_world([s.start for s in box])
    for vol in images:
        d = vol.world_to_index(origin)
        # row r: the image index change per grid step along grid axis r
        step = vol.world_to_index(origin + grid.spacing * grid.direction.T) - d
        n = np.array(vol.array.shape, dtype=float)
        # The margin never takes more than a quarter of an axis (a multi-slice stack is a thin slab).
        m = np.minimum(INSIDE_MARGIN_MM / np.asarray(vol.spacing, dtype=float), 0.25 * n)
        here = np.ones(shape, dtype=bool)
        for axis in range(3):
            idx = (
                d[axis]
                + np.arange(shape[0])[:, None, None] * step[0, axis]
                + np.arange(shape[1])[None, :, None] * step[1, axis]
                + np.arange(shape[2])[None, None, :] * step[2, axis]
            )
            here &= (idx >= -0.5 + m[axis]) & (idx <= n[axis] - 0.5 - m[axis])
        inside |= here
    return inside


def discs_on(result: PipelineResult, target: Volume) -> np.ndarray:
    """Disc codes on `target`'s grid: the disc probability resampled linearly and cut at 0.5, each voxel taking
    the code of the nearest labelled component (nearest-neighbour codes alone give 2 mm staircase surfaces)."""
    from .canonical import from_canonical

    codes = result.discs_canonical
    if result.disc_probability is None or not codes.any():
        return from_canonical(codes, result.grid, target).astype(np.uint8)
    near = ndimage.grey_dilation(codes, size=(3, 3, 3))
    c_in = from_canonical(near, result.grid, target)
    if result.maps():
        # The codes (0 further than one 2 mm voxel from a labelled disc) bound the log-odds.
        margin = margin_on(result.maps(), "disc", target)
        return np.where((margin >= 0.0) & (c_in > 0), c_in, 0).astype(np.uint8)
    prob = np.where(near > 0, result.disc_probability, 0.0)
    p_in = from_canonical(prob, result.grid, target, labels=False)
    return np.where(p_in >= DISC_THRESHOLD, c_in, 0).astype(np.uint8)


def spine_on(result: PipelineResult, target: Volume) -> np.ndarray:
    """Spine mask on `target`'s grid from the linearly resampled spine probability."""
    from .canonical import from_canonical

    if result.spine_probability_4mm is None and result.spine_probability_box is None:
        return from_canonical(result.spine_canonical, result.grid, target).astype(np.uint8)
    if result.maps():
        return (margin_on(result.maps(), "spine", target) >= 0.0).astype(np.uint8)
    p = from_canonical(result.spine_probability, result.grid, target, labels=False)
    return (p >= result.spine_threshold).astype(np.uint8)


def _softmax(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=0)
    e = np.exp(logits - m)
    return e / e.sum(axis=0)


def _softmax1(logits: np.ndarray) -> np.ndarray:
    return _softmax(logits)[1]
