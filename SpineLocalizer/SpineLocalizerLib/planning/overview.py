"""Scanner-console style picture of a plan: slice groups, slabs and saturation band on the localizer.

Drawn with Pillow rather than matplotlib: importing matplotlib and laying out a figure took ~1.2 s of a ~1.5 s
command-line plan's output writing; Pillow draws the same picture in a few hundredths of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..reslice import sample_plane
from ..volume_io import Volume

STEP_MM = 1.0
PIXELS_PER_MM = 1.8
VIEW_MM = (300.0, 260.0)  # rows (head-foot) x columns of each view
MARGIN_PX = 14
COLOURS = {"ok": (50, 230, 50), "doubtful": (240, 40, 40), "label": (255, 255, 0), "centre": (255, 30, 30)}
BAND_RGBA = (255, 165, 0, 64)


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


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _px(p_mm) -> tuple[float, float]:
    return p_mm[0] * PIXELS_PER_MM, p_mm[1] * PIXELS_PER_MM


def _draw_view(image: Volume, plan: dict[str, Any], view: dict[str, Any], colour) -> Image.Image:
    """One view: the localizer resampled on the view's plane, the slice groups' planes, their names and scan
    centres, the saturation bands translucent orange."""
    size_mm = VIEW_MM
    c = np.asarray(view["center_lps"])
    vx, vy = np.asarray(view["x_axis_lps"]), np.asarray(view["y_axis_lps"])
    pix = sample_plane(image, c, -vy, vx, size_mm, STEP_MM)
    lo, hi = np.percentile(pix, [1, 99.5])
    grey = np.clip((pix - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    w, h = int(round(size_mm[1] * PIXELS_PER_MM)), int(round(size_mm[0] * PIXELS_PER_MM))
    picture = Image.fromarray(grey).resize((w, h), Image.Resampling.BILINEAR).convert("RGBA")
    bands = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    band_draw = ImageDraw.Draw(bands)
    for band in plan["saturation_bands"]:
        n = np.asarray(band["normal_lps"])
        bc = np.asarray(band["center_lps"])
        t = band["thickness_mm"] / 2
        segs = [_plane_line(c, vx, vy, bc + s * t * n, n, band["size_mm"][1] / 2) for s in (-1, 1)]
        if all(s is not None for s in segs):
            corners = [_px(_to_pix(p, size_mm)) for p in (segs[0][0], segs[0][1], segs[1][1], segs[1][0])]
            band_draw.polygon(corners, fill=BAND_RGBA)
    picture = Image.alpha_composite(picture, bands)
    draw = ImageDraw.Draw(picture)
    font = _font(12)
    for disc in plan["discs"]:
        n = np.asarray(disc["normal_lps"])
        center = np.asarray(disc["scan_center_lps"])
        half = disc["slice_group"]["fov_mm"][0] / 2
        for off in disc["slice_group"]["slice_offsets_mm"]:
            seg = _plane_line(c, vx, vy, center + off * n, n, half * 0.35)
            if seg is not None:
                draw.line([_px(_to_pix(p, size_mm)) for p in seg], fill=colour, width=1)
        seg = _plane_line(c, vx, vy, center, n, half * 0.35)
        if seg is not None:
            x1, y1 = _px(_to_pix(seg[1], size_mm))
            draw.text((x1 + 4, y1), disc["label"], fill=COLOURS["label"], font=font, anchor="lm")
        sx, sy = _px(_to_pix(np.array([(center - c) @ vx, (center - c) @ vy]), size_mm))
        draw.ellipse((sx - 2.5, sy - 2.5, sx + 2.5, sy + 2.5), fill=COLOURS["centre"])
    draw.rectangle((0, 0, w - 1, h - 1), outline=(0, 0, 0))
    return picture.convert("RGB")


def plan_overview(image: Volume, plan: dict[str, Any], png: str | Path) -> None:
    qf = plan["quality_factor"]
    doubtful = plan.get("doubtful", plan["quality"]["needs_review"])
    colour = COLOURS["doubtful" if doubtful else "ok"]
    sagittal = _draw_view(image, plan, plan["sagittal"], colour)
    # Radiological display: the patient's right on the left of the coronal view.
    coronal_view = dict(plan["coronal"], x_axis_lps=[-v for v in plan["coronal"]["x_axis_lps"]])
    coronal = _draw_view(image, plan, coronal_view, colour)
    lines = [
        f"{len(plan['discs'])} axial slice groups ({plan['protocol']['axial']['n_slices']} x "
        f"{plan['protocol']['axial']['thickness_mm']} mm), saturation band orange; quality factor {qf:.2f}"
    ]
    if doubtful:  # the reasons on a line of their own: several do not fit beside the summary
        lines.append("CHECK PLAN: " + "; ".join(d["code"].replace("_", " ") for d in plan.get("doubts", [])))
    title_font, view_font = _font(15), _font(12)
    top = MARGIN_PX + 22 * len(lines) + 8
    width = 3 * MARGIN_PX + sagittal.width + coronal.width
    height = top + 20 + sagittal.height + MARGIN_PX
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(lines):
        fill = (200, 0, 0) if line.startswith("CHECK PLAN") else (0, 0, 0)
        draw.text((width / 2, MARGIN_PX + 22 * k), line, fill=fill, font=title_font, anchor="ma")
    x = MARGIN_PX
    for picture, title in (
        (sagittal, "best sagittal (planned sagittal plane)"),
        (coronal, "best coronal (planned coronal plane)"),
    ):
        draw.text((x + picture.width / 2, top), title, fill=(0, 0, 0), font=view_font, anchor="ma")
        canvas.paste(picture, (x, top + 20))
        x += picture.width + MARGIN_PX
    canvas.save(png, optimize=False, compress_level=3)
