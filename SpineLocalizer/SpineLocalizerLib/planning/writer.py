"""Write a plan's files: plan.json, one .mrk.json per plane and band, overview.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..volume_io import Volume
from .markups import plane_markup, roi_markup, safe_file_stem, write_json

AXIAL_COLOUR = (0.35, 1.0, 0.35)
REVIEW_COLOUR = (1.0, 0.3, 0.3)


def markup_files(plan: dict[str, Any]) -> dict[str, dict]:
    """File name -> markups JSON for every plane and band of the plan."""
    colour = REVIEW_COLOUR if plan["quality"]["needs_review"] else AXIAL_COLOUR
    files = {}
    for disc in plan["discs"]:
        g = disc["slice_group"]
        name = f"{disc['label']} axial"
        files[f"{safe_file_stem(name)}.mrk.json"] = plane_markup(
            name,
            disc["scan_center_lps"],
            disc["normal_lps"],
            g["x_axis_lps"],
            g["fov_mm"],
            color=colour,
            description=f"{g['n_slices']} x {g['thickness_mm']} mm, gap {g['gap_mm']} mm",
        )
    for key in ("sagittal", "coronal"):
        slab = plan[key]
        files[f"{key}.mrk.json"] = plane_markup(
            key,
            slab["center_lps"],
            slab["normal_lps"],
            slab["x_axis_lps"],
            slab["fov_mm"],
            color=(0.4, 0.7, 1.0),
            description=f"{slab['n_slices']} x {slab['thickness_mm']} mm, slab {slab['slab_thickness_mm']:.1f} mm",
        )
    for i, band in enumerate(plan["saturation_bands"], start=1):
        files[f"saturation_band_{i}.mrk.json"] = roi_markup(
            band["name"],
            band["center_lps"],
            band["normal_lps"],
            band["x_axis_lps"],
            band["size_mm"],
            description=f"{band['thickness_mm']} mm thick, {band['distance_mm']} mm anterior to the discs",
        )
    return files


def write_plan_outputs(folder: Path, plan: dict[str, Any], image: Volume | None) -> list[str]:
    folder = Path(folder)
    written = []
    for name, content in markup_files(plan).items():
        write_json(folder / name, content)
        written.append(name)
    plan = dict(plan, files={"markups": sorted(written), "overview": "overview.png" if image is not None else None})
    (folder / "plan.json").write_text(json.dumps(plan, indent=1))
    written.append("plan.json")
    if image is not None:
        from .overview import plan_overview  # Pillow only when a picture is drawn

        plan_overview(image, plan, folder / "overview.png")
        written.append("overview.png")
    return written
