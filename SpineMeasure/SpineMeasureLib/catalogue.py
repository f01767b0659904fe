"""What is measured, in which unit, and when a value is flagged (thresholds are settings, with their sources)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNITS = {
    "offset_angle_deg": "deg",
    "disc_height_mm": "mm",
    "disc_height_anterior_mm": "mm",
    "disc_height_posterior_mm": "mm",
    "disc_height_index": "ratio",
    "foraminal_height_left_mm": "mm",
    "foraminal_height_right_mm": "mm",
    "psoas_area_left_mm2": "mm2",
    "psoas_area_right_mm2": "mm2",
    "psoas_asymmetry_mm2": "mm2",
    "facet_angle_left_deg": "deg",
    "facet_angle_right_deg": "deg",
    "facet_tropism_deg": "deg",
    "canal_diameter_mm": "mm",
    "dural_sac_ap_mm": "mm",
    "canal_area_mm2": "mm2",
    "lateral_recess_depth_left_mm": "mm",
    "lateral_recess_depth_right_mm": "mm",
    "lateral_recess_angle_left_deg": "deg",
    "lateral_recess_angle_right_deg": "deg",
    "herniation_ratio": "ratio",
    "msu_class": "class",
}


@dataclass
class Thresholds:
    """Flag thresholds. Sources: LVP Methods (canal < 10 mm, recess depth < 3 mm); Steurer et al., BMC
    Musculoskelet Disord 12:175 (2011) (relative canal stenosis 10-12 mm, recess depth < 2 mm definite, recess
    angle); Schonstrom et al., Spine 1985 (dural sac area < 100 relative, < 75 mm^2 absolute); facet tropism
    > 7 degrees (e.g. Noren et al., Spine 1991). The recess angle threshold is a setting: the literature flags
    angles below 30 degrees, while the LVP methods text states the opposite inequality."""

    canal_diameter_absolute_mm: float = 10.0
    canal_diameter_relative_mm: float = 12.0
    dural_sac_ap_absolute_mm: float = 10.0
    canal_area_absolute_mm2: float = 75.0
    canal_area_relative_mm2: float = 100.0
    recess_depth_mm: float = 3.0
    recess_depth_definite_mm: float = 2.0
    recess_angle_deg: float = 30.0
    recess_angle_flag_below: bool = True
    facet_tropism_deg: float = 7.0
    extra: dict[str, Any] = field(default_factory=dict)


def flags_for(measurement: str, value: Any, t: Thresholds) -> list[str]:
    if value is None or isinstance(value, str):
        return []
    flags = []
    if measurement == "canal_diameter_mm":
        if value < t.canal_diameter_absolute_mm:
            flags.append("central stenosis (absolute)")
        elif value < t.canal_diameter_relative_mm:
            flags.append("central stenosis (relative)")
    elif measurement == "dural_sac_ap_mm" and value < t.dural_sac_ap_absolute_mm:
        flags.append("dural sac AP below threshold")
    elif measurement == "canal_area_mm2":
        if value < t.canal_area_absolute_mm2:
            flags.append("dural sac area: absolute stenosis")
        elif value < t.canal_area_relative_mm2:
            flags.append("dural sac area: relative stenosis")
    elif measurement.startswith("lateral_recess_depth"):
        if value < t.recess_depth_definite_mm:
            flags.append("lateral recess stenosis (definite)")
        elif value < t.recess_depth_mm:
            flags.append("lateral recess stenosis")
    elif measurement.startswith("lateral_recess_angle"):
        below = value < t.recess_angle_deg
        if below == t.recess_angle_flag_below:
            flags.append(f"recess angle {'below' if below else 'above'} {t.recess_angle_deg:g} deg")
    elif measurement == "facet_tropism_deg" and value > t.facet_tropism_deg:
        flags.append("facet tropism")
    return flags
