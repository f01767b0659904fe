"""V-Net for volumetric segmentation and heatmap regression, sized for a CPU.

Milletari F., Navab N., Ahmadi S.-A., "V-Net: Fully Convolutional Neural Networks for Volumetric Medical Image
Segmentation", 3DV 2016. As in the paper: residual stages of convolutions with PReLU, down-sampling by strided
2x2x2 convolutions, up-sampling by transposed convolutions, and skip connections that concatenate encoder
features into the decoder. As in LVP, the kernels are adapted to localizer resolution: 3x3x3 instead of 5x5x5,
which keeps the receptive field large enough through depth while costing about a fifth of the arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

# The layers of a volumetric (3) or a slice-wise (2) network: the same architecture and parameter names in both.
_LAYERS = {
    3: (nn.Conv3d, nn.ConvTranspose3d, nn.InstanceNorm3d),
    2: (nn.Conv2d, nn.ConvTranspose2d, nn.InstanceNorm2d),
}


class ResidualStage(nn.Module):
    """`n_convs` 3x3x3 (3x3) convolutions with PReLU whose output is added to the stage input."""

    def __init__(self, channels: int, n_convs: int, dims: int = 3):
        super().__init__()
        conv, _, norm = _LAYERS[dims]
        layers: list[nn.Module] = []
        for _ in range(n_convs):
            layers += [
                conv(channels, channels, 3, padding=1),
                norm(channels, affine=True),
                nn.PReLU(channels),
            ]
        self.body = nn.Sequential(*layers)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + x)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int, n_convs: int, dims: int = 3):
        super().__init__()
        self.down = nn.Sequential(_LAYERS[dims][0](cin, cout, 2, stride=2), nn.PReLU(cout))
        self.stage = ResidualStage(cout, n_convs, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.down(x))


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, n_convs: int, dims: int = 3):
        super().__init__()
        conv, up, _ = _LAYERS[dims]
        self.up = nn.Sequential(up(cin, cout, 2, stride=2), nn.PReLU(cout))
        self.merge = nn.Sequential(conv(cout + cskip, cout, 1), nn.PReLU(cout))
        self.stage = ResidualStage(cout, n_convs, dims)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.stage(self.merge(torch.cat([self.up(x), skip], dim=1)))


class VNet(nn.Module):
    """V-Net with `levels` resolutions.

    Args:
        in_channels: image channels (1 for a localizer).
        out_channels: output channels (class logits and/or heatmaps).
        base_channels: channels at full resolution; doubled at every level down.
        levels: number of resolutions (levels - 1 down-samplings by 2); input sides must be multiples of
            2 ** (levels - 1).
        convs_per_stage: convolutions in each encoder stage below the first (the decoder mirrors them).
        dims: 3 for volumes (N, C, D, H, W), 2 for slices (N, C, H, W).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 8,
        levels: int = 4,
        convs_per_stage: int = 2,
        dims: int = 3,
    ):
        super().__init__()
        self.levels = levels
        conv = _LAYERS[dims][0]
        ch = [base_channels * 2**i for i in range(levels)]
        self.inp = nn.Sequential(conv(in_channels, ch[0], 3, padding=1), nn.PReLU(ch[0]))
        self.stage0 = ResidualStage(ch[0], 1, dims)
        self.downs = nn.ModuleList(Down(ch[i], ch[i + 1], convs_per_stage, dims) for i in range(levels - 1))
        self.ups = nn.ModuleList(
            Up(ch[i + 1], ch[i], ch[i], max(1, convs_per_stage - 1), dims) for i in reversed(range(levels - 1))
        )
        self.head = conv(ch[0], out_channels, 1)

    @property
    def multiple(self) -> int:
        return 2 ** (self.levels - 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last full-resolution features (what the 1x1x1 head reads; networks/fine.py reads them too)."""
        skips = [self.stage0(self.inp(x))]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
