"""Overview pictures of a phantom case: localizer and diagnostic views with label outlines."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..geometry import unit  # noqa: E402
from ..labels import is_disc_code, is_vertebra_code  # noqa: E402
from ..reslice import sample_plane  # noqa: E402
from ..volume_io import read_volume  # noqa: E402


def outline(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (a one-pixel boundary)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels > 0)


def _outline_rgba(labels: np.ndarray) -> np.ndarray:
    """Discs cyan, vertebral bodies yellow, other structures faint red."""
    rgba = np.zeros(labels.shape + (4,), dtype=float)
    edge = outline(labels)
    disc = np.vectorize(is_disc_code, otypes=[bool])(labels)
    vert = np.vectorize(is_vertebra_code, otypes=[bool])(labels)
    rgba[edge & disc] = (0.0, 1.0, 1.0, 1.0)
    rgba[edge & vert] = (1.0, 0.85, 0.0, 1.0)
    rgba[edge & ~disc & ~vert] = (1.0, 0.3, 0.3, 0.45)
    return rgba


def _show(ax, image, labels, title, step):
    lo, hi = np.percentile(image, [1, 99.5])
    extent = (0, image.shape[1] * step, image.shape[0] * step, 0)
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, extent=extent, interpolation="bilinear")
    if labels is not None:
        ax.imshow(_outline_rgba(labels), extent=extent, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def phantom_overview(case_dir: Path, truth: dict, png: Path) -> None:
    case_dir = Path(case_dir)
    files = truth["files"]
    discs = truth["discs"]
    lumbar = [d for d in discs if d["upper"].startswith("L") or d["upper"] == "T12"]
    center = np.mean([d["center_lps"] for d in lumbar], axis=0)
    sup = unit(np.mean([d["normal_lps"] for d in lumbar], axis=0))
    post = unit(np.mean([d["posterior_lps"] for d in lumbar], axis=0))
    post = unit(post - sup * (post @ sup))
    left = np.cross(post, sup)  # (P x S) = L in a right-handed LPS frame
    loc = read_volume(case_dir / files["localizer"])
    loc_lab = read_volume(case_dir / files["localizer_labels"])
    views = [("localizer", loc, loc_lab, 1.5)]
    if "highres" in files:
        views.append(
            ("high-res", read_volume(case_dir / files["highres"]), read_volume(case_dir / files["highres_labels"]), 0.6)
        )
    n_axial = len([d for d in discs if d["upper"].startswith("L")])
    cols = max(4, n_axial)
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 7.2))
    for ax in axes.ravel():
        ax.axis("off")
    k = 0
    for name, img, lab, step in views:
        size = (300.0, 220.0) if name == "localizer" else (200.0, 130.0)
        # Radiological display: anterior on the left of sagittal views, patient right on the left of coronal ones.
        for plane, col_dir in (("sagittal", post), ("coronal", left)):
            a = sample_plane(img, center, -sup, col_dir, size, step)
            lb = sample_plane(lab, center, -sup, col_dir, size, step, order=0)
            _show(axes[0, k], a, lb, f"{name} mid-{plane}", step)
            axes[0, k].axis("on")
            k += 1
            if k >= cols:
                break
        if k >= cols:
            break
    axial_src = views[-1]
    for j, d in enumerate([d for d in discs if d["upper"].startswith("L")][:cols]):
        n = np.asarray(d["normal_lps"])
        p_dir = unit(np.asarray(d["posterior_lps"]) - n * (np.asarray(d["posterior_lps"]) @ n))
        l_dir = np.cross(p_dir, n)
        c = np.asarray(d["center_lps"]) + p_dir * 12.0
        a = sample_plane(axial_src[1], c, p_dir, l_dir, (120.0, 150.0), 0.5)
        lb = sample_plane(axial_src[2], c, p_dir, l_dir, (120.0, 150.0), 0.5, order=0)
        msu = d.get("msu_class")
        _show(axes[1, j], a, lb, f"{d['label']} axial ({axial_src[0]})" + (f" MSU {msu}" if msu else ""), 0.5)
        axes[1, j].axis("on")
    p = truth["parameters"]
    fig.suptitle(
        f"phantom seed {p['seed']}: {p['contrast'].upper()}, {p['lumbar_count']} lumbar, lordosis {p['lordosis_deg']:.0f} deg, "
        f"scoliosis {p['scoliosis_deg']:.0f} deg  (outlines: discs cyan, bodies yellow, other red)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(png, dpi=80, metadata={"Software": None})
    plt.close(fig)
