"""Reading a `plan.json` a user gives back (for reslicing, measuring, a scene): checked against its schema
(docs/plan_schema.md) and, where an image is at hand, against the image, so a hand-edited or mismatched plan is
refused with a message instead of giving wrong numbers (normals scaled by hand make every height wrong)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .json_files import read_json
from .planning.plan import PLAN_SCHEMA_VERSION
from .volume_io import Volume

UNIT_TOLERANCE = 1e-3  # |direction| - 1: a direction that is not a unit vector was edited or broken
ORTHOGONAL_TOLERANCE = 1e-2  # cosine between a disc's normal and its in-plane axes
OUTSIDE_IMAGE_MM = 50.0  # a disc centre this far outside the image is from another case or another image


def _vector(value: Any, where: str, unit: bool) -> np.ndarray:
    v = np.asarray(value, dtype=float) if isinstance(value, (list, tuple)) else np.full(1, np.nan)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{where} must be three finite numbers, got {value!r}")
    if unit and abs(float(np.linalg.norm(v)) - 1.0) > UNIT_TOLERANCE:
        raise ValueError(f"{where} must be a unit vector (length {np.linalg.norm(v):.4g})")
    return v


def validate_plan(plan: Any, source: str = "plan", image: Volume | None = None) -> dict[str, Any]:
    """`plan` if it is a usable scan plan; ValueError naming `source`, the entry and what to do otherwise."""
    fix = "re-run `spine-localizer plan` or restore the file"
    if not isinstance(plan, dict):
        raise ValueError(f"{source}: a plan is a JSON object (docs/plan_schema.md); {fix}")
    version = plan.get("schema_version")
    if version != PLAN_SCHEMA_VERSION:
        raise ValueError(
            f"{source}: schema_version {version!r}, this version reads {PLAN_SCHEMA_VERSION}; {fix} with this version"
        )
    discs = plan.get("discs")
    if not isinstance(discs, list):
        raise ValueError(f"{source}: 'discs' must be a list of planned discs; {fix}")
    try:
        for k, disc in enumerate(discs):
            where = f"{source}: discs[{k}] ({disc.get('label', '?') if isinstance(disc, dict) else '?'})"
            if not isinstance(disc, dict) or not isinstance(disc.get("label"), str):
                raise ValueError(f"{where}: needs a 'label'")
            centre = _vector(disc.get("centroid_lps"), f"{where} centroid_lps", unit=False)
            normal = _vector(disc.get("normal_lps"), f"{where} normal_lps", unit=True)
            for axis in ("left_lps", "posterior_lps"):
                if axis in disc:
                    v = _vector(disc[axis], f"{where} {axis}", unit=True)
                    if abs(float(v @ normal)) > ORTHOGONAL_TOLERANCE:
                        raise ValueError(f"{where} {axis} is not perpendicular to its normal")
            # The slice group is centred on the scan centre (reslice, the scanner): checked like the disc's centre.
            scan_centre = (
                _vector(disc["scan_center_lps"], f"{where} scan_center_lps", unit=False)
                if "scan_center_lps" in disc
                else None
            )
            if image is not None:
                _inside(image, centre, where)
                if scan_centre is not None:
                    _inside(image, scan_centre, f"{where} scan centre")
    except ValueError as err:
        raise ValueError(f"{err}; {fix}") from None
    return plan


def _inside(image: Volume, centre: np.ndarray, where: str) -> None:
    ijk = image.world_to_index(centre[None])[0]
    shape = np.array(image.array.shape) - 1
    below, above = np.clip(-ijk, 0, None), np.clip(ijk - shape, 0, None)
    outside_mm = float(np.linalg.norm((below + above) * np.asarray(image.spacing)))
    if outside_mm > OUTSIDE_IMAGE_MM:
        raise ValueError(
            f"{where} lies {outside_mm:.0f} mm outside the image: the plan is for another case or another image"
        )


def read_plan(path: str | Path, image: Volume | None = None) -> dict[str, Any]:
    """The plan in `path`, validated (`validate_plan`), checked against `image` when given."""
    return validate_plan(read_json(path, "plan file"), str(path), image)


def plan_within(plan: dict[str, Any], image: Volume, source: str = "plan") -> dict[str, Any]:
    """The plan with only the discs that lie in `image` (a slice group holds one disc of a plan of five); the
    outside-the-image error of the first disc when none does (a plan of another case)."""
    inside = []
    for k, disc in enumerate(plan["discs"]):
        centre = np.asarray(disc["centroid_lps"], dtype=float)
        try:
            _inside(image, centre, "")
        except ValueError:
            # The other discs of the slice group's plan lie within a spine's length of it; one far beyond was
            # edited or broken.
            if np.linalg.norm(centre - image.index_to_world((np.asarray(image.array.shape) - 1)[None] / 2)[0]) > 400:
                _inside(image, centre, f"{source}: discs[{k}] ({disc['label']})")
            continue
        inside.append(disc)
    if not inside and plan["discs"]:
        first = plan["discs"][0]
        _inside(image, np.asarray(first["centroid_lps"], dtype=float), f"{source}: discs[0] ({first['label']})")
    return plan | {"discs": inside}
