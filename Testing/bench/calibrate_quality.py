"""Calibrate the per-disc quality of network plans (planning/quality.py) on phantoms with truth.

.venv/bin/python Testing/bench/calibrate_quality.py capture N SEED_BASE OUT.json [MODELS]
.venv/bin/python Testing/bench/calibrate_quality.py fit FIT.json CHECK.json [--write]

`capture` plans N phantoms (seeds SEED_BASE+i, the evaluation sweep: half 3D localizers, half multi-slice stacks)
and records, per planned disc, the evidence the plan carries and whether the disc is *good*: the right name (LVP
rule, < 6 mm per axis from the true disc of that name) and a plane error <= 3 deg. Use tuning seeds (60000+) to
fit and other tuning seeds (e.g. 62000+) to check; never the held-out evaluation seeds (100000+).
`fit` fits the logistic model on FIT, picks the lowest threshold at which >= 95 % of the discs at or above it
are good on FIT (weighted to the clinical mix of lumbar counts), reports how that holds on CHECK (at the
clinical mix, as swept, and for five-lumbar spines alone), draws the reliability plot (docs/figures/quality_reliability.png)
and, with --write, stores model and threshold in SpineLocalizerLib/resources/quality_calibration.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from planning_evaluation import variation
from SpineLocalizerLib.geometry import angle_between_deg
from SpineLocalizerLib.networks import MODEL_DIR
from SpineLocalizerLib.networks.sequence_matching import COUNT_PREVALENCE
from SpineLocalizerLib.phantom.generate import generate_case
from SpineLocalizerLib.phantom.params import sample_params
from SpineLocalizerLib.pipeline import plan_from_localizer
from SpineLocalizerLib.planning.quality import FEATURES
from SpineLocalizerLib.volume_io import read_volume

PLANE_OK_DEG = 3.0
TARGET = 0.95
ROOT = Path(__file__).resolve().parents[2]
CALIBRATION = ROOT / "SpineLocalizer" / "SpineLocalizerLib" / "resources" / "quality_calibration.json"


def capture_case(i: int, seed_base: int, work: Path, models: Path) -> list[dict]:
    seed = seed_base + i
    params = sample_params(seed, **variation(i))
    stack = i % 2 == 1
    truth = generate_case(params, work / f"case{i}", highres=False, stacks=stack, overview=False)
    role = "sagittal_stack" if stack else "localizer"
    image = read_volume(work / f"case{i}" / truth["files"][role])
    try:
        plan, _ = plan_from_localizer([image], model_dir=models)
    except ValueError:
        return []
    ref = {d["label"]: d for d in truth["discs"]}
    rows = []
    for d in plan["discs"]:
        t = ref.get(d["label"])
        close = t is not None and np.all(np.abs(np.asarray(t["centroid_lps"]) - d["centroid_lps"]) < 6.0)
        err = (
            angle_between_deg(np.asarray(d["normal_lps"]), np.asarray(t["normal_lps"]), undirected=True)
            if close
            else None
        )
        rows.append(
            {
                "seed": seed,
                "input": role,
                "lumbar_count": params.lumbar_count,
                "lumbar_count_detected": plan["lumbar_count"],
                "label": d["label"],
                "evidence": d["evidence"],
                "naming": {k: v for k, v in plan["naming"].items() if k != "discs"},
                "input_spacing_mm": [float(v) for v in image.spacing],
                "right_name": bool(close),
                "normal_error_deg": err,
                "good": bool(close and err <= PLANE_OK_DEG),
            }
        )
    return rows


def capture(n: int, seed_base: int, out: Path, models: Path) -> None:
    from SpineLocalizerLib.parallel import process_pool

    with tempfile.TemporaryDirectory() as tmp, process_pool(2) as pool:
        work = Path(tmp)
        rows = [r for rs in pool.map(capture_case, range(n), [seed_base] * n, [work] * n, [models] * n) for r in rs]
    out.write_text(json.dumps(rows, indent=0))
    print(f"{len(rows)} discs of {n} phantoms (seeds {seed_base}+): {np.mean([r['good'] for r in rows]):.3f} good")


def _design(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[r["evidence"][f] for f in FEATURES] for r in rows], dtype=float)
    y = np.array([r["good"] for r in rows], dtype=float)
    return x, y


def clinical_weights(rows: list[dict]) -> np.ndarray:
    """Per disc, the weight that brings the sweep's lumbar counts (20 % forced four or six, plus the phantom's own
    variants) to the clinical prevalence (sequence_matching.COUNT_PREVALENCE), phantom by phantom: what a
    technologist sees is the clinical mix, and P(good | evidence) depends on it."""
    counts = np.array([r["lumbar_count"] for r in rows])
    seeds = np.array([r["seed"] for r in rows])
    per_phantom = {s: c for s, c in zip(seeds, counts)}
    share = {n: np.mean([c == n for c in per_phantom.values()]) for n in COUNT_PREVALENCE}
    w = np.array([COUNT_PREVALENCE[c] / max(share[c], 1e-9) for c in counts])
    return w / w.mean()


def fit_logistic(
    x: np.ndarray, y: np.ndarray, ridge: float = 1.0, iters: int = 50, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Weights and intercept by Newton steps on the L2-penalised (weighted) log-likelihood (features standardised
    inside, coefficients returned on the raw scale)."""
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([np.ones((len(x), 1)), (x - mu) / sd])
    sw = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    w = np.zeros(z.shape[1])
    pen = np.full(z.shape[1], ridge)
    pen[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        grad = z.T @ (sw * (p - y)) + pen * w
        hess = (z * (sw * p * (1 - p))[:, None]).T @ z + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    weights = w[1:] / sd
    return weights, float(w[0] - np.sum(w[1:] * mu / sd))


def predict(x: np.ndarray, weights: np.ndarray, intercept: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ weights + intercept)))


def _mean(v: np.ndarray, w: np.ndarray) -> float:
    return float(np.average(v, weights=w)) if w.sum() > 0 else float("nan")


def pick_threshold(q: np.ndarray, y: np.ndarray, target: float = TARGET, weights: np.ndarray | None = None) -> float:
    """The lowest threshold t such that the discs with q >= t are good in >= `target` of (weighted) cases."""
    w = np.ones(len(q)) if weights is None else weights
    for t in np.unique(np.round(q, 3)):
        above = q >= t
        if above.any() and _mean(y[above], w[above]) >= target:
            return float(t)
    return 1.0


def report(name: str, q: np.ndarray, y: np.ndarray, t: float, weights: np.ndarray | None = None) -> dict:
    """Flag rate and good fractions above / below threshold t; with `weights`, at the mix they describe."""
    w = np.ones(len(q)) if weights is None else weights
    above = q >= t
    out = {
        "discs": int(len(y)),
        "good": _mean(y, w),
        "flagged": 1.0 - _mean(above.astype(float), w),
        "good_above": _mean(y[above], w[above]),
        "good_below": _mean(y[~above], w[~above]),
    }
    print(
        f"{name}: {out['discs']} discs, {out['good']:.3f} good; threshold {t:.3f} flags {out['flagged']:.3f}; "
        f"good above {out['good_above']:.3f}, below {out['good_below']:.3f}"
    )
    return out


def reliability_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], t: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    bins = np.linspace(0, 1, 11)
    for name, (q, y) in curves.items():
        idx = np.clip(np.digitize(q, bins) - 1, 0, 9)
        xs, ys, ns = [], [], []
        for b in range(10):
            m = idx == b
            if m.sum() >= 5:
                xs.append(q[m].mean())
                ys.append(y[m].mean())
                ns.append(m.sum())
        ax.plot(xs, ys, "o-", label=f"{name} ({len(y)} discs)")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    ax.axvline(t, color="red", lw=0.8, label=f"threshold {t:.2f}")
    ax.set_xlabel("predicted disc quality q")
    ax.set_ylabel("fraction good (right name, plane <= 3 deg)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Per-disc quality: reliability (bins with >= 5 discs)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fit(fit_path: Path, check_path: Path, write: bool, extra: list[Path]) -> None:
    fit_rows, check_rows = json.loads(fit_path.read_text()), json.loads(check_path.read_text())
    x, y = _design(fit_rows)
    mix = clinical_weights(fit_rows)
    weights, intercept = fit_logistic(x, y, sample_weight=mix)
    q_fit = predict(x, weights, intercept)
    t = pick_threshold(q_fit, y, weights=mix)
    print("weights", dict(zip(FEATURES, np.round(weights, 4))), "intercept", round(intercept, 4))
    xc, yc = _design(check_rows)
    q_check = predict(xc, weights, intercept)
    for name, q, yy, rows in (("fit", q_fit, y, fit_rows), ("check", q_check, yc, check_rows)):
        report(f"{name}, clinical mix", q, yy, t, clinical_weights(rows))
        report(f"{name}, as swept (35 % four or six lumbar)", q, yy, t)
        five = np.array([r["lumbar_count"] == 5 for r in rows])
        report(f"{name}, five lumbar only", q[five], yy[five], t)
    curves = {"fit, as swept": (q_fit, y), "check, as swept": (q_check, yc)}
    for path in extra:  # e.g. real per-disc records written by real_sources.py (name + plane)
        rows = [r for r in json.loads(path.read_text()) if r.get("evidence")]
        if rows:
            xr, yr = _design(rows)
            curves[path.stem] = (predict(xr, weights, intercept), yr)
    reliability_plot(curves, t, ROOT / "docs" / "figures" / "quality_reliability.png")
    if write:
        CALIBRATION.write_text(
            json.dumps(
                {
                    "description": "Per-disc quality q = sigmoid(intercept + weights . features); discs with q >= "
                    "threshold were good (right name, plane error <= 3 deg) in >= 95 % of fitting cases at the clinical mix of "
                    "lumbar counts. Written by "
                    "Testing/bench/calibrate_quality.py fit.",
                    "features": list(FEATURES),
                    "weights": [round(float(w), 6) for w in weights],
                    "intercept": round(intercept, 6),
                    "threshold": round(t, 3),
                    "target_good_fraction": TARGET,
                    "fitted_on": f"{len(fit_rows)} discs of tuning phantoms ({fit_path.name})",
                },
                indent=1,
            )
            + "\n"
        )
        print(f"wrote {CALIBRATION}")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if args[0] == "capture":
        models = Path(args[4]) if len(args) > 4 else MODEL_DIR
        capture(int(args[1]), int(args[2]), Path(args[3]), models)
    else:
        fit(Path(args[1]), Path(args[2]), "--write" in sys.argv, [Path(a) for a in args[3:]])


if __name__ == "__main__":
    main()
