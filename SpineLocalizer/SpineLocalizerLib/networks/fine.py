"""The output disc network: the 2 mm disc network with a small head on its last features that says which half of
each 2 mm voxel (per axis) is disc, body or background, fine-tuned as a whole (networks/train_fine.py).

Why: Dice is scored on the localizer's own grid, and the 2 mm canonical grid is rotated against it. Even perfect
hard labels of the 2 mm grid lose disc Dice 0.913-0.941 on that round trip, hard labels of a 1 mm grid
0.963-0.972 (`Testing/bench/grid_ceiling.py`, 4 tuning phantoms). The disc network already sits at the 2 mm cap
(docs/experiments.md).

Why a second network rather than new weights for the first: the naming of the discs (candidates, lumbar count,
levels) reads the 2 mm disc network, and every change to it so far moved the lumbar count of a few stacks both
ways (docs/experiments.md). The naming keeps the disc network it was tuned with; the output network only redraws the
surfaces that are written out (`discs.nii.gz`, `spine.nii.gz`), each voxel keeping the code of the named disc
it belongs to.

Layout: the head sees the network's last 2 mm features and the 2 mm image, and answers with 3 x 8 channels per
2 mm voxel: a correction, for each of its eight 1 mm sub-voxels, to the network's own logits interpolated
linearly to 1 mm (`fine_logits`). Its last layer starts at zero, so an untrained head reproduces the
interpolated 2 mm output. The 1 mm grid is the 2 mm grid shifted by a quarter of a 2 mm voxel towards the
origin on each axis: 2 mm voxel i covers 1 mm voxels 2i and 2i + 1 (`fine_grid`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from .canonical import CanonicalGrid
from .model_cards import card_exists, checked_weights
from .vnet import VNet

FINE_STAGE = "discs_fine"
SUBVOXELS = 8  # 2 x 2 x 2
HEAD_CHANNELS = 16


class FineHead(nn.Module):
    """Two 3x3x3 convolutions on [features, image] at 2 mm, then one 1x1x1 to classes x 8 sub-voxel logits."""

    def __init__(self, feature_channels: int, n_classes: int = 3, channels: int = HEAD_CHANNELS):
        super().__init__()
        self.n_classes = n_classes
        self.body = nn.Sequential(
            nn.Conv3d(feature_channels + 1, channels, 3, padding=1),
            nn.PReLU(channels),
            nn.Conv3d(channels, channels, 3, padding=1),
            nn.PReLU(channels),
        )
        self.out = nn.Conv3d(channels, n_classes * SUBVOXELS, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(torch.cat([features, image], dim=1)))


class DiscNetWithFine(nn.Module):
    """The disc V-Net and its 1 mm head in one module with one output (ONNX- and bf16-friendly): the 2 mm logits
    (classes channels) followed by the packed sub-voxel corrections (classes x 8 channels), all at 2 mm."""

    def __init__(self, vnet: VNet, head: FineHead):
        super().__init__()
        self.vnet, self.head = vnet, head

    @property
    def multiple(self) -> int:
        return self.vnet.multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.vnet.features(x)
        return torch.cat([self.vnet.head(features), self.head(features, x)], dim=1)


def unpack(packed: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(N, classes x 8, D, H, W) at 2 mm -> (N, classes, 2D, 2H, 2W) at 1 mm; channel c x 8 + 4a + 2b + d holds
    sub-voxel (a, b, d) of class c."""
    n, _, d, h, w = packed.shape
    x = packed.reshape(n, n_classes, 2, 2, 2, d, h, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(n, n_classes, 2 * d, 2 * h, 2 * w)


def fine_logits(coarse: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """1 mm logits: the 2 mm logits interpolated linearly onto the 1 mm sub-voxel centres (a quarter of a 2 mm
    voxel either side of its centre: `align_corners=False`) plus the head's corrections."""
    base = functional.interpolate(coarse, scale_factor=2, mode="trilinear", align_corners=False)
    return base + unpack(packed, coarse.shape[1])


def fine_grid(grid: CanonicalGrid, box: tuple[slice, ...]) -> CanonicalGrid:
    """The 1 mm grid of a 2 mm box: index 0 sits a quarter of a 2 mm voxel before the box's first voxel centre."""
    start = np.array([s.start for s in box], dtype=float) - 0.25
    size = tuple(2 * (s.stop - s.start) for s in box)
    return CanonicalGrid(
        origin=grid.index_to_world(start), size=size, spacing=grid.spacing / 2.0, direction=grid.direction
    )


def class_margins(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds of disc vs the rest and of spine (body + disc) vs background from three-class logits (classes
    first). Positive = that class; 0 is the 0.5 cut.

    Why log-odds for the output maps: resampled linearly, they put a surface between two voxels where the
    network's confidence on either side places it; probabilities near 0 and 1 put it half-way whatever the
    confidence (on 6 tuning phantoms disc Dice 0.919 -> 0.933 with the same network; README, Networks)."""
    bg, body, disc = logits[0], logits[1], logits[2]
    return disc - np.logaddexp(bg, body), np.logaddexp(body, disc) - bg


def fine_margins(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`class_margins` at 1 mm from the combined network's output (channels x box at 2 mm). In torch rather than
    numpy: its log-add-exp runs on both cores, ~3x faster on a lumbar localizer's box (0.42 -> 0.14 s)."""
    n_classes = out.shape[0] // (1 + SUBVOXELS)
    n = out.shape[1]
    disc = torch.empty(tuple(2 * s for s in out.shape[1:]), dtype=torch.float32)
    spine = torch.empty_like(disc)
    packed = torch.from_numpy(np.asarray(out, dtype=np.float32))
    # In slabs along the first axis (with one 2 mm voxel of overlap for the interpolation): the whole box at
    # 1 mm would hold ~0.5 GB of temporaries on a lumbar localizer.
    with torch.inference_mode():
        for a in range(0, n, FINE_SLAB):
            b = min(a + FINE_SLAB, n)
            lo, hi = max(a - 1, 0), min(b + 1, n)
            t = packed[:, lo:hi][None]
            logits = fine_logits(t[:, :n_classes], t[:, n_classes:])[0]
            keep = slice(2 * (a - lo), 2 * (b - lo))
            bg, body, dc = logits[0, keep], logits[1, keep], logits[2, keep]
            disc[2 * a : 2 * b] = dc - torch.logaddexp(bg, body)
            spine[2 * a : 2 * b] = torch.logaddexp(body, dc) - bg
    return disc.numpy(), spine.numpy()


FINE_SLAB = 16  # 2 mm voxels per slab in `fine_margins`


def load_output_net(model_dir: Path) -> DiscNetWithFine | None:
    """The output disc network in `model_dir` (`FINE_STAGE`), or None when there is none; a damaged file is
    refused (sha256 in its card)."""
    if not card_exists(model_dir, FINE_STAGE):
        return None
    state, card = checked_weights(model_dir, FINE_STAGE)
    arch = card["architecture"]
    vnet = VNet(1, arch["classes"], arch["base_channels"], arch["levels"])
    net = DiscNetWithFine(vnet, FineHead(arch["base_channels"], arch["classes"], arch["head_channels"]))
    net.load_state_dict(state)
    net.eval()
    return net
