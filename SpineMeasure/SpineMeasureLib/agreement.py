"""Agreement between two sets of measurements (AI vs reader, reader vs reader).

- Bland-Altman (Bland & Altman, Lancet 1986): bias = mean(B - A), 95 % limits of agreement = bias +- 1.96 SD.
- ICC(2,1): two-way random effects, absolute agreement, single rater (Shrout & Fleiss, Psychol Bull 1979;
  ICC(A,1) in McGraw & Wong 1996), computed from the two-way ANOVA mean squares.
- Mean absolute difference.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def icc_2_1(ratings: np.ndarray) -> float:
    """ICC(2,1) for an (n subjects x k raters) array."""
    x = np.asarray(ratings, dtype=float)
    n, k = x.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / denom) if denom != 0 else float("nan")


def bland_altman(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = b - a
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if len(diff) > 1 else float("nan")
    return {
        "n": len(diff),
        "bias": bias,
        "sd": sd,
        "loa_low": bias - 1.96 * sd,
        "loa_high": bias + 1.96 * sd,
        "mad": float(np.abs(diff).mean()),
    }


def pair_rows(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> dict[str, list[tuple[str, float, float]]]:
    """measurement -> [(level, value_a, value_b)] for finite numeric values present in both sets (a NaN, an
    infinity or a text such as "not measurable" leaves that one pair out, not the whole measurement)."""

    def numeric(rows):
        out = {}
        for r in rows:
            try:
                value = float(r["value"])
            except (TypeError, ValueError):
                continue
            if np.isfinite(value):
                out[(r["level"], r["measurement"])] = value
        return out

    va, vb = numeric(rows_a), numeric(rows_b)
    pairs: dict[str, list] = {}
    for key in sorted(set(va) & set(vb)):
        pairs.setdefault(key[1], []).append((key[0], va[key], vb[key]))
    return pairs


def agreement_table(rows_a, rows_b) -> list[dict[str, Any]]:
    table = []
    for measurement, items in pair_rows(rows_a, rows_b).items():
        a = np.array([x[1] for x in items])
        b = np.array([x[2] for x in items])
        entry = {"measurement": measurement, **bland_altman(a, b), "icc_2_1": icc_2_1(np.stack([a, b], axis=1))}
        table.append(entry)
    return table
