"""Scan protocols are data: a JSON file with the slice-group, slab and saturation-band parameters."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..json_files import read_json

GROUPS = ("axial", "sagittal", "coronal")
GROUP_KEYS = {
    "n_slices": int,
    "thickness_mm": float,
    "gap_mm": float,
    "fov_mm": list,
    "matrix": list,
    "phase_direction": str,
}


def default_protocol() -> dict[str, Any]:
    text = resources.files("SpineLocalizerLib").joinpath("resources/default_lumbar_protocol.json").read_text()
    return json.loads(text)


def load_protocol(path: str | Path | None) -> dict[str, Any]:
    """The default lumbar protocol, or the JSON file at `path` validated against it."""
    if path is None:
        return default_protocol()
    path = Path(path)
    proto = read_json(path, "protocol file")
    if not isinstance(proto, dict):
        raise ValueError(f"{path}: a protocol is a JSON object (see resources/default_lumbar_protocol.json)")
    validate_protocol(proto, str(path))
    return proto


def validate_protocol(proto: dict[str, Any], where: str = "protocol") -> None:
    for group in GROUPS:
        if group not in proto:
            raise ValueError(f"{where}: missing the '{group}' slice group (see the default protocol)")
        if not isinstance(proto[group], dict):
            raise ValueError(f"{where}: '{group}' must be an object of slice-group settings (see the default protocol)")
        for key, kind in GROUP_KEYS.items():
            if key not in proto[group]:
                raise ValueError(f"{where}: '{group}' lacks '{key}'")
            if not isinstance(proto[group][key], kind if kind is not float else (int, float)):
                raise ValueError(f"{where}: '{group}.{key}' must be a {kind.__name__}")
        g = proto[group]
        if not all(_is_number(v) for v in g["fov_mm"] + g["matrix"]):
            raise ValueError(f"{where}: '{group}' fov_mm and matrix must hold numbers")
        if g["n_slices"] < 1 or g["thickness_mm"] <= 0 or g["gap_mm"] < 0:
            raise ValueError(f"{where}: '{group}' needs n_slices >= 1, thickness_mm > 0 and gap_mm >= 0")
        if len(g["fov_mm"]) != 2 or min(g["fov_mm"]) <= 0 or len(g["matrix"]) != 2 or min(g["matrix"]) < 1:
            raise ValueError(f"{where}: '{group}' fov_mm and matrix must be two positive numbers each")
    levels = proto.get("levels", "lumbar")
    if not (levels in ("lumbar", "all") or (isinstance(levels, list) and all(isinstance(x, str) for x in levels))):
        raise ValueError(f"{where}: levels must be 'lumbar', 'all' or a list of disc names like ['L4-L5', 'L5-S1']")
    band = proto.get("saturation_band", {})
    if not isinstance(band, dict):
        raise ValueError(f"{where}: saturation_band must be an object with thickness_mm and distance_mm")
    thickness, distance = band.get("thickness_mm", 0), band.get("distance_mm", -1)
    if not (_is_number(thickness) and _is_number(distance) and thickness > 0 and distance >= 0):
        raise ValueError(f"{where}: saturation_band needs thickness_mm > 0 and distance_mm >= 0")
    threshold = proto.get("quality_threshold", 0.5)
    if not (_is_number(threshold) and 0.0 < threshold < 1.0):
        raise ValueError(f"{where}: quality_threshold must be between 0 and 1")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def slab_extent_mm(group: dict[str, Any]) -> float:
    """Thickness covered by a slice group: n slices and the n - 1 gaps between them."""
    return group["n_slices"] * group["thickness_mm"] + (group["n_slices"] - 1) * group["gap_mm"]
