"""Pictures: Bland-Altman panels (laid out like LVP figure 4B/C) and annotated axial planes per level."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .agreement import pair_rows  # noqa: E402


def bland_altman_png(rows_a, rows_b, png: Path, label_a: str = "A", label_b: str = "B") -> None:
    pairs = pair_rows(rows_a, rows_b)
    names = sorted(pairs)
    if not names:
        raise ValueError("the two measurement files share no numeric (level, measurement) pair")
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        a = np.array([x[1] for x in pairs[name]])
        b = np.array([x[2] for x in pairs[name]])
        mean, diff = (a + b) / 2, b - a
        bias = diff.mean()
        sd = diff.std(ddof=1) if len(diff) > 1 else 0.0
        ax.axis("on")
        ax.scatter(mean, diff, s=12, color="tab:blue")
        ax.axhline(bias, color="black", lw=1)
        for lim in (bias - 1.96 * sd, bias + 1.96 * sd):
            ax.axhline(lim, color="tab:red", lw=1, ls=":")
        ax.set_title(f"{name}\nbias {bias:.2f}, LoA [{bias - 1.96 * sd:.2f}, {bias + 1.96 * sd:.2f}]", fontsize=8)
        ax.set_xlabel(f"mean of {label_a} and {label_b}", fontsize=7)
        ax.set_ylabel(f"{label_b} - {label_a}", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=90, metadata={"Software": None})
    plt.close(fig)


def level_png(image, disc: Mapping[str, Any], rows, png: Path) -> None:
    """The disc's axial plane with every landmark of its rows drawn, and the values listed."""
    from SpineLocalizerLib.reslice import sample_plane

    left, post = np.asarray(disc["left_lps"]), np.asarray(disc["posterior_lps"])
    center = np.asarray(disc["posterior_edge_lps"]) + 5.0 * post
    size, step = (100.0, 110.0), 0.25
    pix = sample_plane(
        image,
        center,
        post,
        left,
        size,
        step,
        order=1 if image.array.dtype.kind == "f" or image.array.max() > 255 else 0,
    )

    def to_px(p):
        rel = np.asarray(p) - center
        return rel @ left / step + (size[1] / step) / 2, rel @ post / step + (size[0] / step) / 2

    fig, (ax, tx) = plt.subplots(1, 2, figsize=(11, 5.5), gridspec_kw={"width_ratios": [1.2, 1]})
    lo, hi = np.percentile(pix, [1, 99.5])
    ax.imshow(pix, cmap="gray", vmin=lo, vmax=hi)
    colours = [plt.get_cmap("tab10")(k) for k in range(10)]
    lines = []
    for i, r in enumerate(r for r in rows if r.status == "ok" and r.landmarks):
        pts = [v for v in r.landmarks.values() if isinstance(v, list) and len(v) == 3]
        xy = np.array([to_px(p) for p in pts])
        col = colours[i % 10]
        ax.plot(xy[:, 0], xy[:, 1], "o", ms=3, color=col)
        if len(xy) == 2 or len(xy) == 4:
            for k in range(0, len(xy), 2):
                ax.plot(xy[k : k + 2, 0], xy[k : k + 2, 1], "-", lw=1, color=col)
        lines.append((col, f"{r.measurement}: {r.value} {r.unit}" + (f"  [{'; '.join(r.flags)}]" if r.flags else "")))
    ax.set_title(f"{disc['label']} mid-disc plane (anterior up, patient left on the right)", fontsize=9)
    ax.axis("off")
    tx.axis("off")
    for k, (col, text) in enumerate(lines):
        tx.text(0.0, 1.0 - k * 0.05, text, color=col, fontsize=8, transform=tx.transAxes, va="top")
    missing = [r for r in rows if r.status != "ok"]
    for k, r in enumerate(missing):
        tx.text(
            0.0,
            1.0 - (len(lines) + k) * 0.05,
            f"{r.measurement}: not measurable ({r.reason})",
            color="gray",
            fontsize=7,
            transform=tx.transAxes,
            va="top",
        )
    fig.tight_layout()
    fig.savefig(png, dpi=90, metadata={"Software": None})
    plt.close(fig)


def segmentation_png(image, labels, disc: Mapping[str, Any], png: Path) -> None:
    """The disc's mid-plane, 190 mm wide (both psoas muscles), with the label map drawn over it: what a reader
    checks before trusting rows measured from a network's segmentation."""
    from SpineLocalizerLib.reslice import sample_plane

    left, post = np.asarray(disc["left_lps"]), np.asarray(disc["posterior_lps"])
    center = np.asarray(disc["centroid_lps"]) + 15.0 * post
    size, step = (150.0, 190.0), 0.5
    pix = sample_plane(image, center, post, left, size, step, order=1)
    lab = sample_plane(labels, center, post, left, size, step, order=0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    lo, hi = np.percentile(pix, [1, 99.5])
    for ax in axes:
        ax.imshow(pix, cmap="gray", vmin=lo, vmax=hi)
        ax.axis("off")
    from SpineLocalizerLib.networks.structure_classes import N_STRUCTURE_CLASSES, classes_of

    shown = np.ma.masked_equal(classes_of(lab), 0)  # one colour per structure class, as the network sees them
    axes[1].imshow(shown, cmap="tab20", vmin=0, vmax=N_STRUCTURE_CLASSES, alpha=0.45, interpolation="nearest")
    axes[0].set_title(f"{disc['label']} mid-disc plane (anterior up, patient left on the right)", fontsize=9)
    axes[1].set_title("segmentation used for the measurements", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=90, metadata={"Software": None})
    plt.close(fig)
