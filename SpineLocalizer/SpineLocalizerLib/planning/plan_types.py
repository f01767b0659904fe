"""The plan's structure as types (docs/plan_schema.md says what each field means): what `build_plan` returns,
`plan.json` holds, and the doubts, the writer, the scene and the measurements read. Plain dictionaries at run
time (JSON in, JSON out); the types let the type checker see a misspelt or missing key."""

from __future__ import annotations

from typing import Any, TypedDict

Vector = list[float]  # LPS millimetres or a unit direction in LPS


class SliceGroup(TypedDict):
    n_slices: int
    thickness_mm: float
    gap_mm: float
    fov_mm: list[float]
    matrix: list[int]
    phase_direction: str
    x_axis_lps: Vector
    y_axis_lps: Vector
    slice_offsets_mm: list[float]


class _PlannedDiscGeometry(TypedDict):
    label: str
    value: int
    centroid_lps: Vector
    normal_lps: Vector
    left_lps: Vector
    posterior_lps: Vector
    scan_center_lps: Vector
    posterior_edge_lps: Vector
    anterior_edge_lps: Vector
    angle_to_axial_deg: float
    slice_group: SliceGroup
    confidence: float
    volume_mm3: float
    normal_is_thinnest: bool


class PlannedDisc(_PlannedDiscGeometry, total=False):
    """One axial slice group; network plans add the disc's calibrated quality."""

    quality: float
    needs_review: bool
    evidence: dict[str, float]


class Naming(TypedDict, total=False):
    """How the names and the lumbar count were decided (networks/sequence_matching.naming_evidence)."""

    lumbar_count: int
    count_basis: str  # "seen", "assumed", "given" or "label map"
    evidence: str
    verify_count: bool
    classifier_count: int
    junction_in_view: bool
    lumbosacral_in_view: bool
    images_favour: int
    count_margin: float | None


class Doubt(TypedDict):
    code: str
    reason: str


class _PlanCore(TypedDict):
    schema_version: int
    coordinate_system: str
    units: dict[str, str]
    input: dict[str, Any]
    protocol: dict[str, Any]
    lumbar_count: int
    naming: Naming
    discs: list[PlannedDisc]
    discs_not_planned: list[str]
    vertebrae: list[dict[str, Any]]
    sagittal: dict[str, Any]
    coronal: dict[str, Any]
    saturation_bands: list[dict[str, Any]]
    quality_factor: float
    quality: dict[str, Any]
    timings_s: dict[str, float]


class Plan(_PlanCore, total=False):
    """A scan plan. `doubts`/`doubtful` are attached by planning/doubts.py, `files` by the writer."""

    doubts: list[Doubt]
    doubtful: bool
    files: dict[str, Any]
