"""Parameters of the lumbar spine phantom: sampling of sensible random defaults, and validation.

Every anatomical variation the phantom can show is one field here. `sample_params(seed, **overrides)` draws the
unspecified fields from a generator seeded with `seed`, so the same seed and overrides always give the same
phantom. Sizes are in mm, angles in degrees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

LUMBAR_FACET_ANGLE_DEG = {1: 28.0, 2: 33.0, 3: 38.0, 4: 44.0, 5: 50.0, 6: 52.0}
"""Mean facet angle to the mid-sagittal line by lumbar disc (upper vertebra index); lumbar facets turn more
coronal caudally (e.g. Masharawi et al., Spine 2004)."""

PSOAS_AREA_MM2 = {1: 380.0, 2: 720.0, 3: 1120.0, 4: 1480.0, 5: 1650.0, 6: 1700.0}
"""Mean psoas cross-sectional area per side at mid-vertebral level of L1..L6 (adult range ~3-20 cm^2)."""

MSU_SIZES = (1, 2, 3)
MSU_ZONES = ("A", "B", "C")


@dataclass(frozen=True)
class Herniation:
    """One disc herniation in MSU terms: `size` 1-3, `zone` A/B/C, `side` 'left'/'right' (ignored for A)."""

    disc: str
    size: int
    zone: str
    side: str = "left"


@dataclass(frozen=True)
class PhantomParams:
    seed: int
    lumbar_count: int = 5
    contrast: str = "t2"
    lordosis_deg: float = 45.0
    sacral_slope_deg: float = 38.0
    thoracic_kyphosis_deg_per_level: float = 3.0
    scoliosis_deg: float = 0.0
    axial_rotation_deg: float = 0.0
    pose_tilt_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pose_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    size_scale: float = 1.0
    disc_height_mm: float = 10.5
    degeneration: dict[str, float] = field(default_factory=dict)
    herniations: tuple[Herniation, ...] = ()
    canal_ap_mm: dict[str, float] = field(default_factory=dict)
    recess_depth_mm: dict[str, tuple[float, float]] = field(default_factory=dict)
    recess_angle_deg: dict[str, tuple[float, float]] = field(default_factory=dict)
    facet_angle_deg: dict[str, tuple[float, float]] = field(default_factory=dict)
    psoas_scale: float = 1.0
    psoas_asymmetry: float = 0.0
    subcutaneous_fat_mm: float = 18.0
    torso_half_width_mm: float = 165.0
    torso_half_depth_mm: float = 115.0
    noise_fraction: float = 0.03
    bias_strength: float = 0.25
    localizer_spacing_mm: float = 2.0
    localizer_fov_mm: tuple[float, float, float] = (320.0, 300.0, 400.0)
    stack_slices: int = 11
    stack_thickness_mm: float = 5.0
    stack_gap_mm: float = 1.0
    stack_inplane_mm: float = 1.5
    highres_spacing_mm: float = 0.8
    grid_tilt_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["herniations"] = [asdict(h) for h in self.herniations]
        return d

    def validate(self, disc_names: list[str]) -> None:
        """Raise ValueError naming the first parameter that makes no sense."""
        if self.lumbar_count not in (4, 5, 6):
            raise ValueError(f"lumbar_count must be 4, 5 or 6 (got {self.lumbar_count})")
        if self.contrast not in ("t1", "t2"):
            raise ValueError(f"contrast must be 't1' or 't2' (got {self.contrast!r})")
        positive = {
            "size_scale": self.size_scale,
            "disc_height_mm": self.disc_height_mm,
            "psoas_scale": self.psoas_scale,
            "torso_half_width_mm": self.torso_half_width_mm,
            "torso_half_depth_mm": self.torso_half_depth_mm,
            "localizer_spacing_mm": self.localizer_spacing_mm,
            "stack_thickness_mm": self.stack_thickness_mm,
            "stack_inplane_mm": self.stack_inplane_mm,
            "highres_spacing_mm": self.highres_spacing_mm,
        }
        for name, value in positive.items():
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number (got {value})")
        ranges = {
            "size_scale": (0.7, 1.3),
            "disc_height_mm": (4.0, 18.0),
            "lordosis_deg": (-10.0, 90.0),
            "sacral_slope_deg": (10.0, 70.0),
            "scoliosis_deg": (-40.0, 40.0),
            "axial_rotation_deg": (-10.0, 10.0),
            "psoas_asymmetry": (0.0, 0.6),
            "subcutaneous_fat_mm": (2.0, 80.0),
            "noise_fraction": (0.0, 0.3),
            "bias_strength": (0.0, 0.8),
            "localizer_spacing_mm": (0.5, 6.0),
            "highres_spacing_mm": (0.3, 1.5),
            "stack_inplane_mm": (0.5, 4.0),
            "stack_thickness_mm": (1.0, 10.0),
            "stack_gap_mm": (0.0, 10.0),
        }
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if not (lo <= value <= hi):
                raise ValueError(f"{name}={value} is outside the supported range [{lo}, {hi}]")
        if not (1 <= self.stack_slices <= 31):
            raise ValueError(f"stack_slices must be between 1 and 31 (got {self.stack_slices})")
        fov = np.asarray(self.localizer_fov_mm, dtype=float)
        if fov.shape != (3,) or np.any(fov < 200.0) or np.any(fov > 600.0):
            raise ValueError(
                f"localizer_fov_mm={tuple(fov)} cannot hold a lumbar spine in a torso: "
                "each side must be between 200 and 600 mm"
            )
        for name, table in (
            ("degeneration", self.degeneration),
            ("canal_ap_mm", self.canal_ap_mm),
            ("recess_depth_mm", self.recess_depth_mm),
            ("recess_angle_deg", self.recess_angle_deg),
            ("facet_angle_deg", self.facet_angle_deg),
        ):
            unknown = set(table) - set(disc_names)
            if unknown:
                raise ValueError(f"{name} names discs this phantom does not have: {sorted(unknown)}")
        for disc, factor in self.degeneration.items():
            if not (0.3 <= factor <= 1.0):
                raise ValueError(f"degeneration[{disc}]={factor}: height factor must be in [0.3, 1]")
        for disc, ap in self.canal_ap_mm.items():
            if not (6.0 <= ap <= 24.0):
                raise ValueError(f"canal_ap_mm[{disc}]={ap}: must be in [6, 24] mm")
        for disc, pair in self.recess_depth_mm.items():
            if min(pair) < 1.5 or max(pair) > 9.0:
                raise ValueError(f"recess_depth_mm[{disc}]={pair}: each side must be in [1.5, 9] mm")
        for disc, pair in self.recess_angle_deg.items():
            if min(pair) < 15.0 or max(pair) > 60.0:
                raise ValueError(f"recess_angle_deg[{disc}]={pair}: each side must be in [15, 60] deg")
        for disc, pair in self.facet_angle_deg.items():
            if min(pair) < 15.0 or max(pair) > 75.0:
                raise ValueError(f"facet_angle_deg[{disc}]={pair}: each side must be in [15, 75] deg")
        for h in self.herniations:
            if h.disc not in disc_names:
                raise ValueError(f"herniation at {h.disc!r}: no such disc (have {disc_names})")
            if h.size not in MSU_SIZES or h.zone not in MSU_ZONES or h.side not in ("left", "right"):
                raise ValueError(f"herniation {h}: size must be 1-3, zone A/B/C, side left/right")


def lumbar_disc_names(lumbar_count: int) -> list[str]:
    names = [f"L{i}" for i in range(1, lumbar_count + 1)] + ["S1"]
    return [f"{a}-{b}" for a, b in zip(names[:-1], names[1:])]


def _scalar_fields() -> set[str]:
    return {f.name for f in fields(PhantomParams)}


def sample_params(seed: int, **overrides: Any) -> PhantomParams:
    """Draw a random, plausible phantom for `seed`; keyword `overrides` fix any field.

    The random stream is consumed in a fixed order regardless of overrides, so forcing one parameter does not
    change the others.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (got {seed!r})")
    unknown = set(overrides) - _scalar_fields()
    if unknown:
        raise ValueError(f"unknown phantom parameter(s): {sorted(unknown)}")
    rng = np.random.default_rng(int(seed))
    lumbar_count = int(rng.choice([4, 5, 6], p=[0.1, 0.8, 0.1]))
    lumbar_count = int(overrides.get("lumbar_count", lumbar_count))
    discs = lumbar_disc_names(lumbar_count) if lumbar_count in (4, 5, 6) else []
    lower_discs = discs[-3:]

    draw: dict[str, Any] = {
        "lumbar_count": lumbar_count,
        "contrast": str(rng.choice(["t1", "t2"], p=[0.35, 0.65])),
        "lordosis_deg": float(rng.uniform(25.0, 65.0)),
        "sacral_slope_deg": float(rng.uniform(28.0, 50.0)),
        "thoracic_kyphosis_deg_per_level": float(rng.uniform(1.5, 5.0)),
        "scoliosis_deg": float(rng.choice([-1, 1]) * (rng.uniform(0, 5) if rng.random() < 0.6 else rng.uniform(5, 20))),
        "axial_rotation_deg": float(rng.uniform(-3.0, 3.0)),
        "pose_tilt_deg": tuple(float(x) for x in rng.uniform([-8, -6, -10], [8, 6, 10])),
        "pose_offset_mm": tuple(float(x) for x in rng.uniform(-25, 25, size=3)),
        "size_scale": float(rng.uniform(0.88, 1.12)),
        "disc_height_mm": float(rng.uniform(9.0, 12.5)),
        "psoas_scale": float(rng.uniform(0.7, 1.3)),
        "psoas_asymmetry": float(rng.uniform(0.0, 0.3)),
        "subcutaneous_fat_mm": float(rng.uniform(8.0, 40.0)),
        "torso_half_width_mm": float(rng.uniform(145.0, 185.0)),
        "torso_half_depth_mm": float(rng.uniform(100.0, 135.0)),
        "noise_fraction": float(rng.uniform(0.015, 0.05)),
        "bias_strength": float(rng.uniform(0.2, 0.6)),
        "grid_tilt_deg": tuple(float(x) for x in rng.uniform(-10, 10, size=3)),
    }
    degeneration: dict[str, float] = {}
    canal: dict[str, float] = {}
    depth: dict[str, tuple[float, float]] = {}
    rangle: dict[str, tuple[float, float]] = {}
    facets: dict[str, tuple[float, float]] = {}
    for i, disc in enumerate(discs, start=1):
        u = rng.random(8)
        if u[0] < 0.3:
            degeneration[disc] = float(0.5 + 0.3 * u[1])
        stenotic = u[2] < 0.2
        canal[disc] = float(7.5 + 2.5 * u[3]) if stenotic else float(13.0 + 5.0 * u[3])
        recess_stenotic = u[4] < 0.2
        base_depth = 2.0 + 1.2 * u[5] if recess_stenotic else 4.0 + 3.0 * u[5]
        asym = rng.uniform(-0.6, 0.6, size=2)
        depth[disc] = (float(max(base_depth + asym[0], 1.6)), float(max(base_depth - asym[0], 1.6)))
        base_angle = 22.0 + 6.0 * u[6] if recess_stenotic else 32.0 + 14.0 * u[6]
        rangle[disc] = (float(base_angle + 3 * asym[1]), float(base_angle - 3 * asym[1]))
        mean_facet = LUMBAR_FACET_ANGLE_DEG[i] + rng.uniform(-5, 5)
        tropism = rng.uniform(0, 4) if u[7] < 0.75 else rng.uniform(8, 16)
        sign = rng.choice([-1, 1])
        facets[disc] = (float(mean_facet + sign * tropism / 2), float(mean_facet - sign * tropism / 2))
    herniations: list[Herniation] = []
    for disc in lower_discs:
        if rng.random() < 0.3:
            herniations.append(
                Herniation(
                    disc=disc,
                    size=int(rng.choice(MSU_SIZES)),
                    zone=str(rng.choice(MSU_ZONES, p=[0.45, 0.4, 0.15])),
                    side=str(rng.choice(["left", "right"])),
                )
            )
    draw.update(
        degeneration=degeneration,
        canal_ap_mm=canal,
        recess_depth_mm=depth,
        recess_angle_deg=rangle,
        facet_angle_deg=facets,
        herniations=tuple(herniations),
    )
    draw.update(overrides)
    if "lumbar_count" in overrides:
        # Per-disc tables drawn for another count would name missing discs; keep only the discs that exist.
        keep = set(lumbar_disc_names(lumbar_count)) if lumbar_count in (4, 5, 6) else set()
        for key in ("degeneration", "canal_ap_mm", "recess_depth_mm", "recess_angle_deg", "facet_angle_deg"):
            if key not in overrides:
                draw[key] = {k: v for k, v in draw[key].items() if k in keep}
        if "herniations" not in overrides:
            draw["herniations"] = tuple(h for h in draw["herniations"] if h.disc in keep)
    params = PhantomParams(seed=int(seed), **draw)
    params.validate(lumbar_disc_names(params.lumbar_count) if params.lumbar_count in (4, 5, 6) else [])
    return params
