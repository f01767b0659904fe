"""Fit the disc-labelling priors of networks/infer.py on tuning phantoms (seeds 60000+, never used for training
(1-160, 50001-50016) or for evaluation (100000+)).

Runs the network pipeline on N tuning phantoms (half 3D, half multi-slice, the evaluation's sweep of contrasts,
curvatures and 4/5/6 lumbar vertebrae), records what the sequence matching sees (component heights, footprint
areas, heatmap responses, centres) with the true level of each component, then
1. fits the logistic model "lumbar disc" ~ thickness + footprint ratio (LUMBAR_LOGIT), and
2. scores the sequence-matching settings by the fraction of cases whose lowest component gets its true name
   (which requires the right lumbar count and shift), with and without the level classifier's log-likelihood
   (if `SpineLocalizer/Resources/Models/levels.safetensors` exists), and reports the classifier's per-disc accuracy.

.venv/bin/python Testing/bench/tune_labeling.py [N] [WORKDIR] [MODELS] [lps|localizer]  (the grid's axes)

Also reports how often the localize network's heatmap names a disc by itself (the true level's channel is the
strongest of the nine on that disc); chance is 1 in 9.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
from planning_evaluation import variation
from SpineLocalizerLib.networks import infer, labeling, sequence_matching
from SpineLocalizerLib.phantom.generate import generate_case
from SpineLocalizerLib.phantom.params import sample_params
from SpineLocalizerLib.volume_io import read_volume

TUNING_SEED_BASE = 60_000


def capture(n: int, work: Path, models: Path, grid_axes: str = "lps") -> list[dict]:
    seen: dict = {}
    match, label = labeling.match_sequence, infer.label_discs

    def spy_match(responses, centres_mm, lumbar_count, max_shift=3, **kw):
        seen.update(responses=responses, centres=centres_mm, heights=kw["heights_mm"], areas=kw["areas_mm2"])
        seen["sacrum_below"] = kw["sacrum_below"]
        seen["class_logp"] = kw.get("class_logp")
        return match(responses, centres_mm, lumbar_count, max_shift, **kw)

    def spy_label(prob, heat4, offset4, box, grid, *args, **kw):
        seen["grid"], seen["box_start"] = grid, np.array([s.start for s in box])
        return label(prob, heat4, offset4, box, grid, *args, **kw)

    labeling.match_sequence, infer.label_discs = spy_match, spy_label
    rows = []
    try:
        for i in range(n):
            folder, stack = work / f"case{i}", i % 2 == 1
            if not (folder / "truth.json").exists():
                generate_case(
                    sample_params(TUNING_SEED_BASE + i, **variation(i)),
                    folder,
                    highres=False,
                    stacks=stack,
                    overview=False,
                )
            truth = json.loads((folder / "truth.json").read_text())
            image = read_volume(folder / truth["files"]["sagittal_stack" if stack else "localizer"])
            seen.clear()
            infer.run_pipeline([image], model_dir=models, grid_axes=grid_axes)
            if "centres" not in seen:
                continue
            grid = seen["grid"]  # centres: mm along the grid's axes from the box's corner
            world = grid.index_to_world(seen["box_start"] + seen["centres"] / grid.spacing)
            ref = np.array([d["centroid_lps"] for d in truth["discs"]])
            true = []
            for w in world:
                dist = np.linalg.norm(ref - w, axis=1)
                k = int(np.argmin(dist))
                true.append(truth["discs"][k]["label"] if dist[k] < 10.0 else None)
            kept = {k: v for k, v in seen.items() if k not in ("grid", "box_start")}
            rows.append({**kept, "n": truth["lumbar_count"], "true": true})
            print(f"case {i}: {truth['lumbar_count']} lumbar, components {true}", file=sys.stderr, flush=True)
    finally:
        labeling.match_sequence, infer.label_discs = match, label
    return rows


def fit_logit(rows: list[dict]) -> np.ndarray:
    x, y = [], []
    for row in rows:
        ref = sequence_matching.reference_footprint(row["areas"])
        for h, a, t in zip(row["heights"], row["areas"], row["true"]):
            if t is not None and not t.endswith("-S1"):
                x.append([1.0, h, a / ref])
                y.append(1.0 if t.startswith("L") else 0.0)
    z, y = np.array(x), np.array(y)
    w = np.zeros(3)
    for _ in range(50):  # Newton's method with a small ridge
        p = 1.0 / (1.0 + np.exp(-z @ w))
        hess = z.T @ (z * (p * (1 - p))[:, None]) + 1e-2 * np.eye(3)
        w -= np.linalg.solve(hess, z.T @ (p - y) + 1e-2 * w)
    acc = float(np.mean(((z @ w) > 0) == (y > 0.5)))
    print(f"logistic fit on {len(y)} discs: weights {np.round(w, 3).tolist()}, per-disc accuracy {acc:.3f}")
    return w


def lowest_named_right(row: dict) -> bool | None:
    k = next((j for j, t in enumerate(row["true"]) if t is not None), None)
    if k is None:
        return None
    _, n, s, names = sequence_matching.match_sequence(
        row["responses"],
        row["centres"],
        None,
        heights_mm=row["heights"],
        sacrum_below=row["sacrum_below"],
        areas_mm2=row["areas"],
        class_logp=None if row.get("class_logp") is None else np.asarray(row["class_logp"]),
    )
    return n == row["n"] and 0 <= k + s < len(names) and names[k + s] == row["true"][k]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("out/tuning_phantoms")
    models = Path(sys.argv[3]) if len(sys.argv) > 3 else infer.MODEL_DIR
    rows = capture(n, work, models, sys.argv[4] if len(sys.argv) > 4 else "lps")
    (work / "captured.json").write_text(json.dumps(rows, default=lambda a: np.asarray(a).tolist()))
    sequence_matching.LUMBAR_LOGIT = tuple(float(v) for v in fit_logit(rows))
    classifier_accuracy(rows)
    heatmap_naming(rows)
    print(
        "| classifier weight | shape prior too | response weight | sacrum shift penalty | log prior of 5 lumbar "
        "| cases labelled right |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    has_classifier = all(r.get("class_logp") is not None for r in rows)
    weights = (0.0, 0.5, 1.0, 2.0) if has_classifier else (0.0,)
    for cw, shape, rw, sp, prior in itertools.product(
        weights, (False, True), (0.0, 1.0, 2.0, 4.0), (1.0, 2.0, 3.0, 4.0, 6.0), (0.0, 0.5, 1.1)
    ):
        if cw == 0.0 and not shape:
            continue
        sequence_matching.CLASSIFIER_WEIGHT, sequence_matching.SHAPE_PRIOR_WITH_CLASSIFIER = cw, shape
        sequence_matching.RESPONSE_WEIGHT, sequence_matching.SACRUM_SHIFT_PENALTY = rw, sp
        sequence_matching.COUNT_LOG_PRIOR = {4: 0.0, 5: prior, 6: 0.0}
        use = rows if cw > 0 else [dict(r, class_logp=None) for r in rows]
        res = [r for r in map(lowest_named_right, use) if r is not None]
        print(f"| {cw} | {shape} | {rw} | {sp} | {prior} | {np.mean(res):.3f} ({sum(res)}/{len(res)}) |")


def heatmap_naming(rows: list[dict]) -> None:
    """How often the true level's heatmap channel is the strongest on a component matched to a true disc, and how
    many channels respond more than the true one on average (0 when the heatmaps name levels)."""
    from SpineLocalizerLib.networks.data import level_channel

    top, above = [], []
    for row in rows:
        for resp, t in zip(np.asarray(row["responses"]), row["true"]):
            ch = None if t is None else level_channel(t)
            if ch is not None:
                top.append(int(np.argmax(resp)) == ch)
                above.append(int((resp > resp[ch]).sum()))
    if top:
        print(
            f"heatmaps: true channel strongest on {sum(top)}/{len(top)} discs, "
            f"on average {np.mean(above):.2f} channels stronger than the true one"
        )


def classifier_accuracy(rows: list[dict]) -> None:
    """Per-disc accuracy of the level classifier on the components matched to a true disc."""
    from SpineLocalizerLib.networks.levels import class_of

    right, junction = [], []
    for row in rows:
        if row.get("class_logp") is None:
            return
        for logp, t in zip(row["class_logp"], row["true"]):
            if t is not None:
                ok = int(np.argmax(logp)) == class_of(t)
                right.append(ok)
                if t in ("T11-T12", "T12-L1", "L1-L2", "L2-L3"):
                    junction.append(ok)
    print(f"level classifier: {np.mean(right):.3f} of {len(right)} discs right, junction {np.mean(junction):.3f}")


if __name__ == "__main__":
    main()
