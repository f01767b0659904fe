"""Measurement result rows and their CSV / JSON files."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .catalogue import UNITS, Thresholds, flags_for


@dataclass
class Row:
    level: str
    measurement: str
    value: Any
    unit: str
    method: str
    flags: list[str] = field(default_factory=list)
    landmarks: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    reason: str = ""
    # Where the structures measured came from: "label map" (project codes), "network" (the structure network),
    # "imported <convention>" (another tool's map), "reader landmarks".
    source: str = ""


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [round(float(x), 4) for x in obj.ravel()] if obj.ndim == 1 else [_clean(r) for r in obj]
    if isinstance(obj, (np.floating, float)):
        return round(float(obj), 4)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def make_row(level: str, measurement: str, value: Any, method: str, landmarks: dict, thresholds: Thresholds) -> Row:
    if isinstance(value, float) and not np.isfinite(value):
        return not_measurable(level, measurement, method, "the landmarks give no finite value")
    return Row(
        level=level,
        measurement=measurement,
        value=_clean(value),
        unit=UNITS[measurement],
        method=method,
        flags=flags_for(measurement, value, thresholds),
        landmarks=_clean(landmarks),
    )


def not_measurable(level: str, measurement: str, method: str, reason: str) -> Row:
    return Row(level, measurement, None, UNITS[measurement], method, status="not measurable", reason=reason)


def write_results(rows: list[Row], folder: Path) -> None:
    folder = Path(folder)
    data = [asdict(r) for r in rows]
    (folder / "measurements.json").write_text(json.dumps(data, indent=1))
    with open(folder / "measurements.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["level", "measurement", "value", "unit", "method", "source", "flags", "status", "reason"])
        for r in rows:
            w.writerow(
                [
                    r.level,
                    r.measurement,
                    "" if r.value is None else r.value,
                    r.unit,
                    r.method,
                    r.source,
                    "; ".join(r.flags),
                    r.status,
                    r.reason,
                ]
            )


def read_csv(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file (give a measurements.csv written by spine-measure)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    required = {"level", "measurement", "value"}
    if rows and not required <= set(rows[0]):
        raise ValueError(f"{path}: not a measurements.csv (needs columns {sorted(required)}, has {sorted(rows[0])})")
    return rows
