"""The sequence matching of LVP module 3 and the lumbar count, torch-free: which levels a chain of disc
candidates (ordered from the most caudal upwards) most likely is, and how sure the count is.

Each hypothesis "lumbar count n, lowest component = level s above the lumbosacral disc" assigns consecutive
levels; its score is the summed heatmap response of the assigned level channels on each component (the
lumbosacral channel anchors the chain) minus LVP's sequence-matching term, the squared deviations of neighbouring
distances from the template (patient scale divided out), plus the log-likelihood of the thoracic / lumbar /
lumbosacral naming under the level classifier (networks/levels.py; without its weights, a logistic model of each
disc's thickness and footprint), a sacrum-below term and a prior on the lumbar count that reflects its
prevalence (`COUNT_LOG_PRIOR`); the images' evidence for a count other than five is capped at what one
junction patch is worth on unseen scanners (`count_evidence_suffices`). How sure the count is, and why, is reported with the names (`naming_evidence`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..labels import vertebra_sequence
from . import heatmap_levels


def _template_mm(upper_disc: str) -> float:
    from ..planning.quality import spacing_template

    return spacing_template().get(upper_disc, 36.0)


def level_names(lumbar_count: int) -> list[str]:
    """Disc names from the lumbosacral disc upwards to T8-T9 (the highest disc of the phantom and of the spacing
    template; a localizer rarely reaches higher). Levels above T10-T11 have no heatmap channel: the template and
    the disc-shape priors name them."""
    seq = vertebra_sequence(lumbar_count)
    return [f"{a}-{b}" for a, b in zip(seq[:-1], seq[1:])][::-1]


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
        cls = heatmap_levels.class_of(names[levels[r]]) if r < len(levels) else 0
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
    overruled: dict | None = None,
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
    Without a given count, a count other than five that only the classifier favours is overruled
    (`count_evidence_suffices`); `overruled` (optional dict) then receives the count it would have been.
    """
    by_count = {} if by_count is None else by_count
    best = _match_chain(
        responses,
        centres_mm,
        lumbar_count,
        max_shift,
        heights_mm,
        sacrum_below,
        areas_mm2,
        class_logp,
        by_count,
    )
    if class_logp is not None and class_logp.shape[1] > heatmap_levels.NOT_A_DISC:
        best = _with_sacral_candidates(
            best,
            responses,
            centres_mm,
            lumbar_count,
            heights_mm,
            sacrum_below,
            areas_mm2,
            class_logp,
            by_count,
        )
    if lumbar_count is None and class_logp is not None and not count_evidence_suffices(best[1], by_count):
        # The classifier's reading of the junction cannot outweigh the prevalence of five: keep five
        # (naming_evidence reports the reading as a doubt).
        kept = match_sequence(
            responses,
            centres_mm,
            DEFAULT_LUMBAR_COUNT,
            max_shift,
            heights_mm,
            sacrum_below,
            areas_mm2,
            class_logp,
        )
        if kept is not None:
            if overruled is not None:
                overruled["count"] = best[1]
            best = kept
    return best


DEFAULT_LUMBAR_COUNT = 5


# How often the level classifier misreads the thoracolumbar junction disc (T12-L1 taken for lumbar or L1-L2 for
# thoracic) on real scans from a source it was never trained on: the phantom-only classifier read another count
# than five in 3 of 10 vertebrae_mixed cases (Testing/bench/junction_error.py; docs/results.md, "Lumbar count on
# real scans"). One patch at the junction is all the evidence a localizer gives for the count, so the images'
# evidence for a count other than five is worth at most the log-odds of that patch being right. Any error rate
# above ~7 % (the prevalence of four lumbar vertebrae) keeps five on the junction patch alone.
JUNCTION_ERROR_UNSEEN = 0.3
COUNT_EVIDENCE_CAP = float(np.log((1.0 - JUNCTION_ERROR_UNSEEN) / JUNCTION_ERROR_UNSEEN))


def count_evidence_suffices(count: int, by_count: dict[int, float]) -> bool:
    """Whether the images' evidence for `count` over five lumbar vertebrae, capped at `COUNT_EVIDENCE_CAP`,
    outweighs the prevalence prior (`COUNT_LOG_PRIOR`). `by_count[n]`: the best score with n lumbar vertebrae
    before the prior (`match_sequence`)."""
    if count == DEFAULT_LUMBAR_COUNT or count not in by_count or DEFAULT_LUMBAR_COUNT not in by_count:
        return True
    evidence = min(by_count[count] - by_count[DEFAULT_LUMBAR_COUNT], COUNT_EVIDENCE_CAP)
    return evidence + COUNT_LOG_PRIOR[count] > COUNT_LOG_PRIOR[DEFAULT_LUMBAR_COUNT]


def _with_sacral_candidates(
    best, responses, centres_mm, lumbar_count, heights_mm, sacrum_below, areas_mm2, class_logp, by_count
):
    """`best` against the hypotheses whose lowest one or two components are sacral, not discs."""
    for drop in range(1, MAX_SACRAL_CANDIDATES + 1):
        if drop >= len(responses):
            break
        below = CLASSIFIER_WEIGHT * sum(
            max(float(v), CLASS_LOG_FLOOR) for v in class_logp[:drop, heatmap_levels.NOT_A_DISC]
        )
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
    responses,
    centres_mm,
    lumbar_count,
    max_shift,
    heights_mm,
    sacrum_below,
    areas_mm2,
    class_logp,
    by_count=None,
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
                ch = heatmap_levels.level_channel(names[lv])
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


JUNCTION_DISCS = ("T10-T11", "T11-T12", "T12-L1")  # a chain reaching one of these shows the thoracolumbar junction


def unnamed(lumbar_count: int | None) -> dict:
    """The naming record of a localizer where no disc chain was named."""
    count = lumbar_count or 5
    basis = "given" if lumbar_count else "assumed"
    return {"lumbar_count": count, "count_basis": basis, "verify_count": count != 5, "evidence": "no discs named"}


def naming_evidence(
    count: int,
    forced: int | None,
    by_count: dict[int, float],
    names: list[str],
    shift: int,
    overruled: int | None = None,
) -> dict:
    """How the lumbar count was decided: "given" (the user's override), "seen" (the images favour it over every
    other count by at least `COUNT_SEEN_MARGIN` log-points, with the thoracolumbar junction in view) or
    "assumed" (the prevalence prior decided; `overruled`: the level classifier read that many lumbar vertebrae,
    which its accuracy on unseen scanners cannot carry against the prior, `count_evidence_suffices`). A four- or six-lumbar reading always asks to verify the
    count; so does an overruled one."""
    junction = any(n in JUNCTION_DISCS or n.startswith("T") for n in names)
    lumbosacral = any(n.endswith("-S1") for n in names)
    out: dict[str, Any] = {
        "lumbar_count": count,
        "junction_in_view": bool(junction),
        "lumbosacral_in_view": bool(lumbosacral),
        "verify_count": count != 5,
    }
    if forced:
        return dict(out, count_basis="given", evidence=f"lumbar count {forced} given by the user")
    others = [v for n, v in by_count.items() if n != count]
    margin = by_count.get(count, -np.inf) - max(others) if others else 0.0
    favoured = max(by_count, key=lambda n: by_count[n]) if by_count else count
    out["images_favour"] = int(favoured)
    out["count_margin"] = round(float(margin), 3) if np.isfinite(margin) else None
    if overruled is not None:
        out["verify_count"] = True
        out["classifier_count"] = int(overruled)
        basis = "assumed"
        why = (
            f"the level classifier reads {overruled} lumbar vertebrae at the thoracolumbar junction, too little "
            f"evidence on its own against the prevalence of five ({COUNT_PREVALENCE[5] * 100:.1f} %): five kept"
        )
    elif not junction:
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
