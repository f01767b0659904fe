"""Disc labeling (LVP module 3) and fusion, torch-free: from the disc probability, the level heatmaps and the
level classifier's log-probabilities to named disc components.

The disc components are ordered from the most caudal upwards. Each hypothesis "lumbar count n, lowest component
= level s above the lumbosacral disc" assigns consecutive levels; its score is the summed heatmap response of the
assigned level channels on each component (the lumbosacral channel anchors the chain) minus LVP's
sequence-matching term, the squared deviations of neighbouring distances from the template (patient scale
divided out), plus the log-likelihood of the thoracic / lumbar / lumbosacral naming under the level classifier
(networks/levels.py; without its weights, a logistic model of each disc's thickness and footprint), a
sacrum-below term and a prior on the lumbar count that reflects its prevalence (`COUNT_LOG_PRIOR`). How sure the
count is, and why, is reported with the names (`naming_evidence`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..labels import disc_code, vertebra_sequence
from . import heatmap_levels as HL
from .canonical import CanonicalGrid

MIN_DISC_MM3 = 250.0
MAX_DISC_MM3 = 40_000.0  # a disc is at most ~60 x 45 x 15 mm


def _template_mm(upper_disc: str) -> float:
    from ..planning.quality import spacing_template

    return spacing_template().get(upper_disc, 36.0)


def level_names(lumbar_count: int) -> list[str]:
    """Disc names from the lumbosacral disc upwards to T8-T9 (the highest disc of the phantom and of the spacing
    template; a localizer rarely reaches higher). Levels above T10-T11 have no heatmap channel: the template and
    the disc-shape priors name them."""
    seq = vertebra_sequence(lumbar_count)
    return [f"{a}-{b}" for a, b in zip(seq[:-1], seq[1:])][::-1]


LOW_THRESHOLD = 0.25
MIN_DISC_THICKNESS_MM = 1.5
MIN_DISC_WIDTH_MM = 12.0


def _disc_shaped(region: np.ndarray, spacing: float) -> bool:
    """Thickness and width from the principal variances (a uniform slab of extent t has variance t^2 / 12)."""
    pts = np.argwhere(region) * spacing
    if len(pts) < 4:
        return False
    lam = np.linalg.eigvalsh(np.cov((pts - pts.mean(axis=0)).T))
    thickness, width = np.sqrt(12.0 * np.clip(lam[[0, 2]], 0.0, None))
    return thickness >= MIN_DISC_THICKNESS_MM and width >= MIN_DISC_WIDTH_MM


THORACIC_DISC_MAX_MM = 7.0  # typical adult heights: thoracic and T12-L1 discs 5-7 mm, lumbar discs 8-13 mm
LUMBAR_DISC_MIN_MM = 7.5


# Logistic model of "this disc is lumbar" (L1-L2 or below, lumbosacral excluded) from the disc's thickness (mm)
# and its footprint area relative to the three largest footprints (`reference_footprint`), fitted by
# Testing/bench/tune_labeling.py on tuning phantoms (seeds 60000+, used neither for training nor for evaluation).
# Used only without the level classifier.
LUMBAR_LOGIT = (-24.05, 0.096, 29.24)  # intercept, per mm of thickness, per unit of area ratio
RESPONSE_WEIGHT = 1.0
# Log-points per level that a hypothesis loses when it leaves discs unseen below its lowest disc although the
# spine continues there (the sacrum is in view): the disc network rarely misses the lumbosacral disc next to a
# visible sacrum. On a plateau (2-6) of the tuning phantoms' naming; above it, real vb2_04 (lumbosacral disc
# missed by the disc network) has its L4-L5 named L5-S1 (docs/experiments.md).
SACRUM_SHIFT_PENALTY = 4.0
# Prior on the number of lumbar-type vertebrae, from its prevalence on whole-spine T2 MRI of 1985 patients:
# 4 in 6.7 %, 5 in 90.6 %, 6 in 2.7 % (Rabau et al., Skeletal Radiol 50 (2021) 2503-2508; Tins et al.,
# Insights Imaging 7 (2016) 199-203 found numerical variants in 7.7 %). Counting anchors at the lumbosacral disc,
# so another count means another name for every disc above it: a four- or six-lumbar reading must be carried by
# the images (the level classifier at the thoracolumbar junction, the spacing template), not by a weak tie.
COUNT_PREVALENCE = {4: 0.067, 5: 0.906, 6: 0.027}
COUNT_LOG_PRIOR = {n: float(np.log(p)) for n, p in COUNT_PREVALENCE.items()}
# The images must favour the chosen count over every other by this many log-points (likelihood ratio ~7) for
# the count to be reported as *seen*; below it the count is *assumed* (the prior decided, or nothing above the
# junction was in view).
COUNT_SEEN_MARGIN = 2.0
# With the level classifier (networks/levels.py): weight of its log-likelihood, and whether the thickness/footprint
# model is still added (tuning phantoms: the classifier alone names better; docs/experiments.md).
CLASSIFIER_WEIGHT = 1.0
SHAPE_PRIOR_WITH_CLASSIFIER = False
CLASS_LOG_FLOOR = -5.0  # one confidently wrong patch costs at most this much


def reference_footprint(areas_mm2) -> float:
    """The median of the three largest disc footprints: mid/low lumbar discs in any localizer that shows them.

    The same for every hypothesis on purpose: a reference taken from the discs a hypothesis calls L2-L3 .. L4-L5
    moves with the hypothesis and lets a shifted naming inflate its own ratios.
    """
    return float(np.median(np.sort(np.asarray(areas_mm2, dtype=float))[-3:]))


def _class_log_likelihood(heights_mm: np.ndarray, areas_mm2: np.ndarray, levels: list[int], names: list[str]) -> float:
    """Sum over the discs of log P(thoracic or lumbar, as the hypothesis names them | thickness, footprint).

    Thoracic discs are thinner and their footprints smaller than lumbar ones, with a jump at the thoracolumbar
    junction; a degenerated lumbar disc can be as thin as a thoracic one but keeps its footprint, which is why
    both features enter.
    """
    a_ref = reference_footprint(areas_mm2)
    w0, w_h, w_a = LUMBAR_LOGIT
    total = 0.0
    # Components above the last name (T10-T11) are thoracic under every hypothesis; scoring them too keeps
    # hypotheses that name fewer components (four lumbar vertebrae) from collecting fewer terms.
    for r in range(len(heights_mm)):
        name = names[levels[r]] if r < len(levels) else "T-"
        if name.endswith("-S1"):
            continue
        z = w0 + w_h * heights_mm[r] + w_a * areas_mm2[r] / max(a_ref, 1e-6)
        z = z if not name.startswith("T") else -z
        total += max(-float(np.logaddexp(0.0, -z)), -5.0)  # log sigmoid, floored so one fragment cannot decide
    return total


def _classifier_log_likelihood(class_logp: np.ndarray, levels: list[int], names: list[str]) -> float:
    """Sum over the components of log P(the class the hypothesis gives it | its patch): thoracic, lumbar or
    lumbosacral (networks/levels.py). Components above the named levels are thoracic under every hypothesis."""
    total = 0.0
    for r in range(len(class_logp)):
        cls = HL.class_of(names[levels[r]]) if r < len(levels) else 0
        total += max(float(class_logp[r, cls]), CLASS_LOG_FLOOR)
    return total


def match_sequence(
    responses: np.ndarray,
    centres_mm: np.ndarray,
    lumbar_count: int | None,
    max_shift: int = 3,
    heights_mm: np.ndarray | None = None,
    sacrum_below: bool = False,
    areas_mm2: np.ndarray | None = None,
    class_logp: np.ndarray | None = None,
    by_count: dict[int, float] | None = None,
):
    """Best (lumbar count, shift) for the disc components ordered from the most caudal upwards.

    `responses[r, ch]`: heatmap response (0-1) of channel ch on component r. Hypothesis (n, s): component r is
    level r + s of `level_names(n)` (s > 0 when the lowest discs lie below the field of view). Score = summed
    responses of the assigned channels minus the template term of LVP's sequence matching,
    sum ((D(c_r, c_r+1) - T(r, r+1)) / 8 mm)^2 / 4 over neighbouring components, with the patient's scale
    (median D / T) divided out. Anatomical priors: thoracic (and T12-L1) discs are thinner and have smaller
    footprints than lumbar ones (`heights_mm` + `areas_mm2`: log-likelihood of the thoracic/lumbar naming under a
    logistic model, `_class_log_likelihood`; heights alone: 1 point per 3 mm on the wrong side of 7-7.5 mm), and
    when the spine continues below the lowest disc (`sacrum_below`) that disc is the lumbosacral one
    (`SACRUM_SHIFT_PENALTY` points per level of shift). With `class_logp` (n x 3, the level classifier's
    log-probabilities of thoracic / lumbar / lumbosacral per component) its log-likelihood of the naming is
    added, weighted by `CLASSIFIER_WEIGHT`, and replaces the thickness/footprint model unless
    `SHAPE_PRIOR_WITH_CLASSIFIER`. A four-class classifier (with "not a disc") also lets the lowest one or two
    components be sacral, not discs (s = -1 or -2: component r is level r + s; they score their "not a disc"
    log-probability). Returns (score, n, s, names). `by_count` (optional dict) receives the best score of each
    lumbar count before the count prior: how strongly the images alone favour one count (`naming_evidence`).
    """
    best = _match_chain(
        responses, centres_mm, lumbar_count, max_shift, heights_mm, sacrum_below, areas_mm2, class_logp, by_count
    )
    if class_logp is None or class_logp.shape[1] <= HL.NOT_A_DISC:
        return best
    for drop in range(1, MAX_SACRAL_CANDIDATES + 1):
        if drop >= len(responses):
            break
        below = CLASSIFIER_WEIGHT * sum(max(float(v), CLASS_LOG_FLOOR) for v in class_logp[:drop, HL.NOT_A_DISC])
        rest = _match_chain(
            responses[drop:],
            centres_mm[drop:],
            lumbar_count,
            0,  # sacral candidates in view mean the lumbosacral disc is in view
            None if heights_mm is None else heights_mm[drop:],
            sacrum_below,
            None if areas_mm2 is None else areas_mm2[drop:],
            class_logp[drop:],
            dropped := {},
        )
        if by_count is not None:
            for n, v in dropped.items():
                by_count[n] = max(by_count.get(n, -np.inf), v + below)
        if rest is not None and rest[0] + below > best[0]:
            best = (rest[0] + below, rest[1], -drop, rest[3])
    return best


MAX_SACRAL_CANDIDATES = 2


def _match_chain(
    responses, centres_mm, lumbar_count, max_shift, heights_mm, sacrum_below, areas_mm2, class_logp, by_count=None
):
    """`match_sequence` without sacral candidates: every component is a disc, the lowest at level s >= 0.
    `by_count` (optional dict) receives, per lumbar count, the best score before the count prior."""
    best = None
    for n in [lumbar_count] if lumbar_count else [4, 5, 6]:
        names = level_names(n)
        for s in range(max_shift + 1):
            levels = [r + s for r in range(len(responses)) if r + s < len(names)]
            if not levels:
                continue
            score = 0.0
            for r, lv in enumerate(levels):
                ch = HL.level_channel(names[lv])
                score += RESPONSE_WEIGHT * responses[r, ch] if ch is not None else 0.0
            if len(levels) > 1:
                d = np.linalg.norm(np.diff(centres_mm[: len(levels)], axis=0), axis=1)
                t = np.array([_template_mm(names[lv + 1]) for lv in levels[:-1]])
                scale = float(np.median(d / t))
                score -= float(np.sum(((d - scale * t) / 8.0) ** 2)) / 4.0
            if class_logp is not None:
                score += CLASSIFIER_WEIGHT * _classifier_log_likelihood(class_logp, levels, names)
            if heights_mm is not None and areas_mm2 is not None:
                if class_logp is None or SHAPE_PRIOR_WITH_CLASSIFIER:
                    score += _class_log_likelihood(heights_mm, areas_mm2, levels, names)
            elif heights_mm is not None:
                for r, lv in enumerate(levels):
                    upper = names[lv].split("-")[0]
                    if upper.startswith("T"):
                        score -= max(0.0, heights_mm[r] - THORACIC_DISC_MAX_MM) / 3.0
                    else:
                        score -= max(0.0, LUMBAR_DISC_MIN_MM - heights_mm[r]) / 3.0
            if sacrum_below:
                score -= SACRUM_SHIFT_PENALTY * s
            if by_count is not None:
                by_count[n] = max(by_count.get(n, -np.inf), score)
            score += COUNT_LOG_PRIOR.get(n, 0.0)
            if best is None or score > best[0]:
                best = (score, n, s, names)
    return best


CHAIN_STEP_MM = (12.0, 85.0)  # neighbouring discs (one may be missed) are 12-85 mm apart cranio-caudally
CHAIN_SLOPE = 1.0  # ... and at most this much apart horizontally per mm of height (lordosis at L5-S1, scoliosis)


def _longest_chain(centres_mm: np.ndarray) -> np.ndarray:
    """Indices (into `centres_mm`, sorted by height) of the longest chain of candidates each of which could be the
    next disc above the previous one; other candidates (bowel, vessels, fragments) are dropped."""
    n = len(centres_mm)
    length, prev, slope = np.ones(n, dtype=int), np.full(n, -1), np.full(n, np.inf)
    for j in range(n):
        for i in range(j):
            dz = centres_mm[j, 2] - centres_mm[i, 2]
            dh = np.linalg.norm(centres_mm[j, :2] - centres_mm[i, :2])
            if not (CHAIN_STEP_MM[0] <= dz <= CHAIN_STEP_MM[1] and dh <= CHAIN_SLOPE * dz):
                continue
            # Equally long chains: the straighter step wins (a blob beside the spine can start a chain as long as
            # the one through the disc next to it).
            straighter = prev[j] >= 0 and dh / dz < slope[j]
            if length[i] + 1 > length[j] or (length[i] + 1 == length[j] and straighter):
                length[j], prev[j], slope[j] = length[i] + 1, i, dh / dz
    chain, j = [], int(np.argmax(length)) if n else -1
    while j >= 0:
        chain.append(j)
        j = int(prev[j])
    return np.array(chain[::-1], dtype=int)


FRAGMENT_MM = (12.0, 30.0)  # closer than this cranio-caudally (and horizontally) is one disc, not two


def _fragment_groups(centres_mm: np.ndarray) -> list[list[int]]:
    """Candidates grouped into discs: a candidate joins a group when its centre is less than `FRAGMENT_MM` from
    one of the group's (neighbouring discs are never that close, CHAIN_STEP_MM)."""
    groups: list[list[int]] = []
    for i in np.argsort(centres_mm[:, 2]):
        for g in groups:
            d = np.abs(centres_mm[g] - centres_mm[i])
            if np.any((d[:, 2] < FRAGMENT_MM[0]) & (np.linalg.norm(d[:, :2], axis=1) < FRAGMENT_MM[1])):
                g.append(int(i))
                break
        else:
            groups.append([int(i)])
    return groups


def label_discs(
    prob: np.ndarray,
    heat4: np.ndarray,
    offset4: np.ndarray,
    box,
    grid: CanonicalGrid,
    lumbar_count: int | None,
    spine_bottom_mm: float | None = None,
    usable: np.ndarray | None = None,
    classify=None,
    outside_spine: bool = False,
):
    """Disc codes on the box from the disc probability and the heatmaps (cropped at `offset4`, 4 mm voxels).

    `usable` (box-shaped, optional): voxels inside the image and near the spine; a component counts as a disc
    only if most of it lies there and it has a disc's shape (a slab at least `MIN_DISC_THICKNESS_MM` thick and
    `MIN_DISC_WIDTH_MM` wide). `classify` (optional): canonical voxel centres -> class log-probabilities (n x 3)
    of the level classifier. Only the longest chain of candidates stacked like discs of one spine is kept
    (`_longest_chain`): blobs beside the spine (bowel, heart, vessels) cannot enter the sequence matching.
    `outside_spine`: the box is not restricted to a located spine (wide search), so the chain is believed only if
    the classifier takes most of it for discs.
    """
    # Hysteresis: a disc is a region above LOW_THRESHOLD that reaches 0.5 somewhere. A disc the network is unsure
    # of (typically a steep lumbosacral disc) breaks up at 0.5 into fragments too small to count.
    disc_mask = prob > LOW_THRESHOLD
    comp, n = ndimage.label(disc_mask)
    if n:
        seeded = ndimage.maximum(prob, comp, range(1, n + 1)) > 0.5
        disc_mask &= np.concatenate([[False], seeded])[comp]
        comp, n = ndimage.label(disc_mask)
    out = np.zeros(disc_mask.shape, dtype=np.uint8)
    if n == 0:
        return out, {}, lumbar_count or 5, "no disc found", unnamed(lumbar_count)
    sizes = ndimage.sum(disc_mask, comp, range(1, n + 1)) * grid.spacing**3
    big = [lab for lab in range(1, n + 1) if MIN_DISC_MM3 <= sizes[lab - 1] <= MAX_DISC_MM3]
    if usable is not None and big:
        inside = ndimage.mean(usable, comp, big)
        big = [lab for lab, f in zip(big, inside) if f >= 0.5]
    # Per-component work happens in each component's own bounding box (whole-box masks cost ~1 ms each).
    boxes = ndimage.find_objects(comp)

    def voxels(lab: int) -> np.ndarray:
        sl = boxes[lab - 1]
        return np.argwhere(comp[sl] == lab) + np.array([b.start for b in sl])

    big = [lab for lab in big if _disc_shaped(comp[boxes[lab - 1]] == lab, grid.spacing)]
    if not big:
        return out, {}, lumbar_count or 5, "no disc of plausible size", unnamed(lumbar_count)
    centres = np.array(ndimage.center_of_mass(disc_mask, comp, big))
    groups = _fragment_groups(centres * grid.spacing)
    if len(groups) < len(big):
        # Pieces of one disc (a real disc can break up across a dark cleft or a herniation) become one candidate.
        lut = np.arange(comp.max() + 1)
        for g in groups:
            lut[[big[i] for i in g[1:]]] = big[g[0]]
        comp = lut[comp]
        boxes = ndimage.find_objects(comp)
        big = [big[g[0]] for g in groups]
        centres = np.array(ndimage.center_of_mass(disc_mask, comp, big))
    order = np.argsort(centres[:, 2])  # canonical k runs superior: most caudal first
    order = order[_longest_chain(centres[order] * grid.spacing)]
    big = [big[i] for i in order]
    centres_mm = centres[order] * grid.spacing
    offset = np.array([s.start for s in box])
    # Spine (bodies) continuing well below the lowest disc means the sacrum is in view: that disc is lumbosacral.
    sacrum_below = (
        spine_bottom_mm is not None and (offset[2] * grid.spacing + centres_mm[0, 2]) - spine_bottom_mm > 25.0
    )
    responses = np.zeros((len(big), heat4.shape[0]))
    for r, lab in enumerate(big):
        idx = voxels(lab) + offset  # 2 mm canonical voxels
        idx4 = np.clip(idx // 2 - offset4, 0, np.array(heat4.shape[1:]) - 1)
        vals = heat4[:, idx4[:, 0], idx4[:, 1], idx4[:, 2]]
        responses[r] = np.clip(vals.max(axis=1) / HL.HEATMAP_PEAK, 0.0, 1.0)
    heights, areas = np.zeros(len(big)), np.zeros(len(big))
    for r, lab in enumerate(big):
        vox = voxels(lab)
        pts = vox * grid.spacing
        w = prob[tuple(vox.T)]
        c = np.average(pts, axis=0, weights=w)
        lam = np.sqrt(12.0 * np.clip(np.linalg.eigvalsh(np.cov((pts - c).T, aweights=w)), 0.0, None))
        heights[r] = lam[0]  # a slab of thickness t has variance t^2 / 12 across it
        areas[r] = lam[1] * lam[2]  # AP depth x width of the footprint (a rectangle's; only ratios are used)
    class_logp = None if classify is None else classify(centres_mm / grid.spacing + offset)
    if outside_spine and class_logp is not None and class_logp.shape[1] > HL.NOT_A_DISC:
        # Outside a located spine, a chain is only believed if the classifier takes most of it for discs (noise
        # and soft tissue can line up too).
        if float(np.mean(np.exp(class_logp[:, HL.NOT_A_DISC]))) >= 0.5:
            return out, {}, lumbar_count or 5, "no chain of discs found", unnamed(lumbar_count)
    by_count: dict[int, float] = {}
    score, count, shift, names = match_sequence(
        responses,
        centres_mm,
        lumbar_count,
        heights_mm=heights,
        sacrum_below=sacrum_below,
        areas_mm2=areas,
        class_logp=class_logp,
        by_count=by_count,
    )
    confidences, per_disc = {}, {}
    for r, lab in enumerate(big):
        level = r + shift
        if level < 0 or level >= len(names):  # below: a sacral candidate, not a disc; above: beyond T8-T9
            continue
        upper = names[level].split("-")[0]
        code = disc_code(upper)
        region = tuple(voxels(lab).T)
        out[region] = code
        ch = HL.level_channel(names[level])
        confidences[code] = float(responses[r, ch] * prob[region].mean()) if ch is not None else 0.0
        per_disc[code] = {
            "name": names[level],
            "disc_probability": float(prob[region].mean()),
            "heatmap_response": float(responses[r, ch]) if ch is not None else 0.0,
            "class_probability": (
                None if class_logp is None else float(np.exp(class_logp[r, HL.class_of(names[level])]))
            ),
        }
    message = "ok" if shift <= 0 else f"the lowest {shift} disc(s) lie below the field of view"
    naming = naming_evidence(count, lumbar_count, by_count, [d["name"] for d in per_disc.values()], shift)
    naming["discs"] = per_disc
    return out, confidences, count, message, naming


JUNCTION_DISCS = ("T10-T11", "T11-T12", "T12-L1")  # a chain reaching one of these shows the thoracolumbar junction


def unnamed(lumbar_count: int | None) -> dict:
    """The naming record of a localizer where no disc chain was named."""
    count = lumbar_count or 5
    basis = "given" if lumbar_count else "assumed"
    return {"lumbar_count": count, "count_basis": basis, "verify_count": count != 5, "evidence": "no discs named"}


def naming_evidence(count: int, forced: int | None, by_count: dict[int, float], names: list[str], shift: int) -> dict:
    """How the lumbar count was decided: "given" (the user's override), "seen" (the images favour it over every
    other count by at least `COUNT_SEEN_MARGIN` log-points, with the thoracolumbar junction in view) or
    "assumed" (the prevalence prior decided). A four- or six-lumbar reading always asks to verify the count."""
    junction = any(n in JUNCTION_DISCS or n.startswith("T") for n in names)
    lumbosacral = any(n.endswith("-S1") for n in names)
    out = {
        "lumbar_count": count,
        "junction_in_view": bool(junction),
        "lumbosacral_in_view": bool(lumbosacral),
        "verify_count": count != 5,
    }
    if forced:
        return dict(out, count_basis="given", evidence=f"lumbar count {forced} given by the user")
    others = [v for n, v in by_count.items() if n != count]
    margin = by_count.get(count, -np.inf) - max(others) if others else 0.0
    favoured = max(by_count, key=by_count.get) if by_count else count
    out["images_favour"] = int(favoured)
    out["count_margin"] = round(float(margin), 3) if np.isfinite(margin) else None
    if not junction:
        basis, why = "assumed", "the thoracolumbar junction is not in view, so the count cannot be seen"
    elif margin >= COUNT_SEEN_MARGIN:
        basis, why = "seen", f"the images favour {count} lumbar vertebrae by {margin:.1f} log-points"
    elif favoured != count:
        basis = "assumed"
        why = (
            f"the images lean to {favoured} lumbar vertebrae by {-margin:.1f} log-points, too little against its "
            f"prevalence ({COUNT_PREVALENCE.get(favoured, 0) * 100:.1f} %)"
        )
    else:
        basis, why = "assumed", f"the images favour {count} lumbar vertebrae by only {margin:.1f} log-points"
    if not lumbosacral:
        why += "; the lumbosacral disc is not among the named discs" + (
            f" (the lowest {shift} lie below the field of view)" if shift > 0 else ""
        )
    return dict(out, count_basis=basis, evidence=why)
