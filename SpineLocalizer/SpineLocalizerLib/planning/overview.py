"""Scanner-console style picture of a plan: slice groups, slabs and saturation band on the localizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..reslice import sample_plane  # noqa: E402
from ..volume_io import Volume  # noqa: E402

STEP_MM = 1.0


def _plane_line(view_c, view_x, view_y, center, normal, half_len):
    """Segment (in view mm coordinates) where a plane cuts the view plane, centred near the plane centre."""
    nx, ny = normal @ view_x, normal @ view_y
    g = np.hypot(nx, ny)
    if g < 1e-6:
        return None
    rel = center - view_c
    # Closest point of the line {p : n . (view_c + p - center) = 0} to the projected plane centre.
    p0 = np.array([rel @ view_x, rel @ view_y])
    d = (normal @ rel - (nx * p0[0] + ny * p0[1])) / (g * g)
    base = p0 + d * np.array([nx, ny])
    direction = np.array([-ny, nx]) / g
    return base - half_len * direction, base + half_len * direction


def _to_pix(p, size_mm):
    # Image rows run along -y (superior up), columns along +x; origin at the top-left corner.
    return p[0] + size_mm[1] / 2, size_mm[0] / 2 - p[1]


def _draw_view(ax, image: Volume, plan: dict[str, Any], view: dict[str, Any], title: str, size_mm, quality_colour):
    c = np.asarray(view["center_lps"])
    vx, vy = np.asarray(view["x_axis_lps"]), np.asarray(view["y_axis_lps"])
    pix = sample_plane(image, c, -vy, vx, size_mm, STEP_MM)
    lo, hi = np.percentile(pix, [1, 99.5])
    ax.imshow(pix, cmap="gray", vmin=lo, vmax=hi, extent=(0, size_mm[1], size_mm[0], 0))
    for disc in plan["discs"]:
        n = np.asarray(disc["normal_lps"])
        center = np.asarray(disc["scan_center_lps"])
        half = disc["slice_group"]["fov_mm"][0] / 2
        for off in disc["slice_group"]["slice_offsets_mm"]:
            seg = _plane_line(c, vx, vy, center + off * n, n, half * 0.35)
            if seg is None:
                continue
            (x0, y0), (x1, y1) = (_to_pix(p, size_mm) for p in seg)
            ax.plot([x0, x1], [y0, y1], color=quality_colour, lw=0.7, alpha=0.9)
        seg = _plane_line(c, vx, vy, center, n, half * 0.35)
        if seg is not None:
            x1, y1 = _to_pix(seg[1], size_mm)
            ax.text(x1 + 2, y1, disc["label"], color="yellow", fontsize=7, va="center")
        sx, sy = _to_pix(np.array([(center - c) @ vx, (center - c) @ vy]), size_mm)
        ax.plot(sx, sy, "o", color="red", ms=2.5)
    for band in plan["saturation_bands"]:
        n = np.asarray(band["normal_lps"])
        bc = np.asarray(band["center_lps"])
        t = band["thickness_mm"] / 2
        segs = [_plane_line(c, vx, vy, bc + s * t * n, n, band["size_mm"][1] / 2) for s in (-1, 1)]
        if all(s is not None for s in segs):
            pts = [_to_pix(p, size_mm) for p in (segs[0][0], segs[0][1], segs[1][1], segs[1][0])]
            ax.fill([p[0] for p in pts], [p[1] for p in pts], color="orange", alpha=0.25, lw=0)
    ax.set_title(title, fontsize=9)
    ax.set_xlim(0, size_mm[1])
    ax.set_ylim(size_mm[0], 0)
    ax.set_xticks([])
    ax.set_yticks([])


def plan_overview(image: Volume, plan: dict[str, Any], png: str | Path) -> None:
    qf = plan["quality_factor"]
    doubtful = plan.get("doubtful", plan["quality"]["needs_review"])
    colour = "lime" if not doubtful else "red"
    fig, axes = plt.subplots(1, 2, figsize=(11, 7.5))
    size = (300.0, 260.0)
    _draw_view(axes[0], image, plan, plan["sagittal"], "best sagittal (planned sagittal plane)", size, colour)
    # Radiological display: the patient's right on the left of the coronal view.
    coronal = dict(plan["coronal"], x_axis_lps=[-v for v in plan["coronal"]["x_axis_lps"]])
    _draw_view(axes[1], image, plan, coronal, "best coronal (planned coronal plane)", size, colour)
    fig.suptitle(
        f"{len(plan['discs'])} axial slice groups ({plan['protocol']['axial']['n_slices']} x "
        f"{plan['protocol']['axial']['thickness_mm']} mm), saturation band orange; quality factor {qf:.2f}"
        + (  # the reasons on a line of their own: several do not fit beside the summary
            "\nCHECK PLAN: " + "; ".join(d["code"].replace("_", " ") for d in plan.get("doubts", []))
            if doubtful
            else ""
        ),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(png, dpi=90, metadata={"Software": None})
    plt.close(fig)
