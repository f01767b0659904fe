"""The localizer pipeline: localize the spine, segment the discs, label them, fuse, and hand over to planning.

1. The input (one localizer, or a sagittal + coronal pair averaged) is resampled to the canonical grid (LPS axes,
   2 mm) and normalised; a 4 mm copy goes to the localization/labeling V-Net.
2. Spine probability -> largest connected component -> bounding box (+ 12 mm).
3. The disc V-Net segments the box at 2 mm; connected components >= 250 mm^3 are disc candidates.
4. Labeling (LVP module 3): per heatmap channel, local maxima above 25 % of the peak value are candidate centres.
   The lumbosacral (LS) channel's best candidate is the anchor. For each lumbar count n in {4, 5, 6} (or the
   user's), levels are walked upwards from the anchor and one candidate is chosen per level by dynamic
   programming, minimising  sum_i (D(c_i, c_i+1) - T(i, i+1))^2 / s^2 - w * sum_i h(c_i)  (template distance
   deviations, LVP; minus a heatmap-confidence reward). The lumbar count with the lowest cost wins.
5. Fusion: each chosen centre names the disc component it falls in (or the nearest within 8 mm); the
   component's voxels get that level's code. Confidence = heatmap peak / 256 x mean disc probability.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from scipy import ndimage

from ..labels import VERTEBRA_CODES, disc_code, vertebra_sequence
from ..volume_io import Volume
from . import MODEL_DIR, ModelError
from . import data as D
from .canonical import CanonicalGrid, canonical_grid_for, to_canonical
from .train import STAGES, make_net

CANDIDATE_FRACTION = 0.25
MIN_DISC_MM3 = 250.0
SPINE_MARGIN_MM = 12.0


def load_model(stage: str, model_dir: Path = MODEL_DIR):
    """Load `stage` weights, checking the sha256 in its card (safetensors, never pickle)."""
    import hashlib

    weights, card_path = model_dir / f"{stage}.safetensors", model_dir / f"{stage}.json"
    if not weights.exists() or not card_path.exists():
        raise ModelError(
            f"model '{stage}' not found in {model_dir}: train it with `spine-localizer train --stage {stage}`"
        )
    card = json.loads(card_path.read_text())
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != card["sha256"]:
        raise ModelError(
            f"{weights}: checksum {digest[:12]} does not match its card ({card['sha256'][:12]}); the file is damaged"
        )
    net = make_net(STAGES[stage])
    net.load_state_dict(load_file(str(weights)))
    net.eval()
    return net, card


@dataclass
class PipelineResult:
    discs_canonical: np.ndarray  # disc codes on the canonical grid
    spine_canonical: np.ndarray
    grid: CanonicalGrid
    confidences: dict[int, float]
    lumbar_count: int
    timings_s: dict[str, float]
    message: str


def _pad(arr: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, ...]]:
    shape = arr.shape
    target = [int(np.ceil(s / multiple) * multiple) for s in shape]
    return np.pad(arr, [(0, t - s) for s, t in zip(shape, target)]), shape


def _run(net, image: np.ndarray) -> np.ndarray:
    padded, shape = _pad(image, net.multiple)
    with torch.inference_mode():
        out = net(torch.from_numpy(np.ascontiguousarray(padded[None, None])))[0].numpy()
    return out[:, : shape[0], : shape[1], : shape[2]]


def prepare_input(images: list[Volume]) -> tuple[np.ndarray, CanonicalGrid]:
    """Canonical 2 mm image from one localizer or several (their normalised average where they overlap)."""
    for vol in images:
        if vol.array.ndim != 3 or min(vol.array.shape) < 2:
            raise ValueError(f"a 3D localizer is needed (got shape {vol.array.shape})")
        if not np.all(np.isfinite(vol.array)):
            raise ValueError("the image contains NaN or infinite values; fix or mask them before planning")
        sp = np.asarray(vol.spacing)
        if np.any(sp <= 0.05) or np.any(sp > 20.0):
            raise ValueError(
                f"voxel spacing {tuple(np.round(sp, 3))} mm is not plausible for MRI (0.05-20 mm expected)"
            )
    grid = canonical_grid_for(images[0])
    if len(images) == 1:
        arr, _ = to_canonical(images[0], grid)
        return D.normalise(arr), grid
    acc = np.zeros(grid.size, dtype=np.float32)
    weight = np.zeros(grid.size, dtype=np.float32)
    for vol in images:
        arr, _ = to_canonical(vol, grid)
        inside, _ = to_canonical(
            Volume(np.ones(vol.array.shape, dtype=np.float32), vol.spacing, vol.origin, vol.direction), grid
        )
        acc += D.normalise(arr) * (inside > 0.5)
        weight += inside > 0.5
    return np.where(weight > 0, acc / np.maximum(weight, 1), 0).astype(np.float32), grid


def run_pipeline(
    images: list[Volume], *, lumbar_count: int | None = None, model_dir: Path = MODEL_DIR, threads: int = 2
) -> PipelineResult:
    torch.set_num_threads(threads)
    timings = {}
    t0 = time.perf_counter()
    loc_net, _ = load_model("localize", model_dir)
    disc_net, _ = load_model("discs", model_dir)
    timings["load_models"] = time.perf_counter() - t0
    t = time.perf_counter()
    image2, grid = prepare_input(images)
    image4 = D.downsample2(image2)
    timings["resample"] = time.perf_counter() - t
    t = time.perf_counter()
    out4 = _run(loc_net, image4)
    timings["localize_and_label"] = time.perf_counter() - t
    spine4 = out4[1] > out4[0]
    heat4 = out4[2:] * D.HEATMAP_PEAK
    t = time.perf_counter()
    spine_lab, n = ndimage.label(spine4)
    empty = np.zeros(grid.size, dtype=np.uint8)
    if n == 0:
        return PipelineResult(empty, empty, grid, {}, lumbar_count or 5, timings, "no spine found in the image")
    sizes = ndimage.sum(spine4, spine_lab, range(1, n + 1))
    spine4 = spine_lab == (1 + int(np.argmax(sizes)))
    if spine4.sum() * 64.0 < 20_000:  # less than about one vertebra
        return PipelineResult(empty, empty, grid, {}, lumbar_count or 5, timings, "no spine found in the image")
    idx4 = np.argwhere(spine4)
    m = int(round(SPINE_MARGIN_MM / grid.spacing))
    lo = np.maximum(idx4.min(axis=0) * 2 - m, 0)
    hi = np.minimum(idx4.max(axis=0) * 2 + 2 + m, grid.size)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    spine2 = np.zeros(grid.size, dtype=np.uint8)
    up = np.repeat(np.repeat(np.repeat(spine4, 2, axis=0), 2, axis=1), 2, axis=2)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(up.shape, grid.size))
    spine2[sl] = up[sl]
    # Heatmap candidates only matter on the spine: searching the box keeps stray peaks out and costs less.
    box4 = tuple(slice(a // 2, (b + 1) // 2) for a, b in zip(lo, hi))
    heat4 = heat4[(slice(None),) + box4]
    offset4 = np.array([s.start for s in box4])
    timings["box"] = time.perf_counter() - t
    t = time.perf_counter()
    disc_logits = _run(disc_net, image2[box])
    prob = _softmax1(disc_logits)
    timings["discs"] = time.perf_counter() - t
    t = time.perf_counter()
    discs_box, conf, count, message = label_discs(prob, heat4, offset4, box, grid, lumbar_count)
    discs = np.zeros(grid.size, dtype=np.uint8)
    discs[box] = discs_box
    timings["labels"] = time.perf_counter() - t
    timings["total_inference"] = time.perf_counter() - t0 - timings["load_models"]
    return PipelineResult(discs, spine2.astype(np.uint8), grid, conf, count, timings, message)


def _softmax1(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=0)
    e = np.exp(logits - m)
    return e[1] / e.sum(axis=0)


def heatmap_candidates(heat4: np.ndarray) -> dict[int, list[tuple[np.ndarray, float]]]:
    """Per channel: local maxima above CANDIDATE_FRACTION of the peak value (4 mm voxel coords, height)."""
    out = {}
    for ch in range(heat4.shape[0]):
        h = heat4[ch]
        peaks = (h == ndimage.maximum_filter(h, size=3)) & (h > CANDIDATE_FRACTION * D.HEATMAP_PEAK)
        coords = np.argwhere(peaks)
        values = h[peaks]
        order = np.argsort(-values)[:3]
        out[ch] = [(coords[i].astype(float), float(values[i])) for i in order]
    return out


def _template_mm(name_a: str, name_b: str) -> float:
    from ..planning.quality import spacing_template

    return spacing_template().get(name_a, 36.0)


def level_names(lumbar_count: int) -> list[str]:
    """Disc names from the lumbosacral disc upwards to T10-T11."""
    seq = vertebra_sequence(lumbar_count)
    names = [f"{a}-{b}" for a, b in zip(seq[:-1], seq[1:])]
    names = [n for n in names if not n.startswith(("T8", "T9"))]
    return names[::-1]


def _match_sequence(cands, lumbar_count: int, template_scale: float = 1.0):
    """Dynamic programming over levels (LS upwards): one candidate (or none) per level."""
    names = level_names(lumbar_count)
    levels = []
    for name in names:
        ch = D.level_channel(name)
        levels.append((name, cands.get(ch, []) if ch is not None else []))
    if not levels[0][1]:
        return None
    # State: index of the chosen candidate at the last level that had one.
    best = {i: (-(h / D.HEATMAP_PEAK) * 2.0, [(names[0], i)]) for i, (_, h) in enumerate(levels[0][1])}
    prev_level = 0
    for li in range(1, len(levels)):
        name, cand = levels[li]
        if not cand:
            continue
        new = {}
        for ci, (pos, h) in enumerate(cand):
            options = []
            for pi, (cost, path) in best.items():
                prev_pos = levels[prev_level][1][pi][0]
                d = 4.0 * float(np.linalg.norm(pos - prev_pos))
                expected = sum(_template_mm(names[k + 1], names[k]) for k in range(prev_level, li)) * template_scale
                dev = (d - expected) / 8.0
                options.append((cost + dev * dev - 2.0 * h / D.HEATMAP_PEAK, path + [(name, ci)]))
            new[ci] = min(options, key=lambda o: o[0])
        # Keep the option of skipping this level too (a missing heatmap peak should not break the chain).
        best = new
        prev_level = li
    cost, path = min(best.values(), key=lambda o: o[0])
    chosen = {}
    for name, ci in path:
        ch = D.level_channel(name)
        pos, h = cands[ch][ci]
        chosen[name] = (pos, h)
    return cost, chosen


def label_discs(
    prob: np.ndarray, heat4: np.ndarray, offset4: np.ndarray, box, grid: CanonicalGrid, lumbar_count: int | None
):
    """Disc codes on the box from the disc probability and the heatmaps (cropped at `offset4`, 4 mm voxels)."""
    disc_mask = prob > 0.5
    comp, n = ndimage.label(disc_mask)
    out = np.zeros(disc_mask.shape, dtype=np.uint8)
    if n == 0:
        return out, {}, lumbar_count or 5, "no disc found"
    vox_mm3 = grid.spacing**3
    sizes = ndimage.sum(disc_mask, comp, range(1, n + 1)) * vox_mm3
    cands = heatmap_candidates(heat4)
    counts = [lumbar_count] if lumbar_count else [4, 5, 6]
    results = []
    for c in counts:
        r = _match_sequence(cands, c)
        if r is not None:
            results.append((r[0], c, r[1]))
    if not results:
        return out, {}, lumbar_count or 5, "the lumbosacral disc (the anchor) was not found"
    _, count, chosen = min(results, key=lambda r: r[0])
    offset = np.array([s.start for s in box])
    confidences = {}
    used = set()
    for name, (pos4, h) in chosen.items():
        p2 = (pos4 + offset4) * 2.0 + 0.5 - offset  # 4 mm voxel centre -> 2 mm voxel coordinates in the box
        label = _component_at(comp, p2, sizes, used)
        if label is None:
            continue
        used.add(label)
        upper = name.split("-")[0]
        code = disc_code(upper) if upper in VERTEBRA_CODES else None
        if code is None:
            continue
        region = comp == label
        out[region] = code
        confidences[code] = float(min(1.0, h / D.HEATMAP_PEAK) * prob[region].mean())
    return out, confidences, count, "ok"


def _component_at(comp: np.ndarray, p: np.ndarray, sizes: np.ndarray, used: set) -> int | None:
    ijk = np.round(p).astype(int)
    if np.all(ijk >= 0) and np.all(ijk < comp.shape):
        lab = int(comp[tuple(ijk)])
        if lab and lab not in used and sizes[lab - 1] >= MIN_DISC_MM3:
            return lab
    # Nearest component within 8 mm (4 voxels at 2 mm).
    lo = np.maximum(ijk - 4, 0)
    hi = np.minimum(ijk + 5, comp.shape)
    sub = comp[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    best, best_d = None, np.inf
    for lab in np.unique(sub):
        if lab == 0 or lab in used or sizes[lab - 1] < MIN_DISC_MM3:
            continue
        pts = np.argwhere(sub == lab) + lo
        d = np.min(np.linalg.norm(pts - p, axis=1))
        if d < best_d and d <= 4.0:
            best, best_d = int(lab), d
    return best
