"""Training losses (networks/losses.py): focal + Dice, the heatmap loss and its level competition, bf16 steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from SpineLocalizerLib.networks import data, losses, models
from SpineLocalizerLib.networks import train as training


def test_level_competition_penalises_heatmaps_that_answer_every_disc_on_every_channel(tmp_path):
    discs = {
        123: {"name": "L4-L5", "centroid_vox": [8.0, 8.0, 20.0]},
        124: {"name": "L5-S1", "centroid_vox": [8.0, 8.0, 8.0]},
    }
    heat = torch.from_numpy(data.heatmaps((16, 16, 28), discs, spacing_mm=4.0))[None]
    t = heat / data.HEATMAP_PEAK
    # The hedge the shipped network makes: each disc's peak on every channel.
    hedge = t.max(dim=1, keepdim=True).values.expand_as(t).clone()
    plain = (losses.heatmap_loss(t, heat), losses.heatmap_loss(hedge, heat))
    strict = (losses.heatmap_loss(t, heat, 1.0), losses.heatmap_loss(hedge, heat, 1.0))
    # Without competition the hedge costs little more than the truth; with it, ~log(9) more near each disc.
    assert plain[1] - plain[0] < 0.5
    assert float(strict[1] - plain[1]) == pytest.approx(np.log(len(data.LEVELS)), rel=1e-4)
    assert float(strict[0] - plain[0]) < 0.1  # the truth's channel leads by 0.5-1 / 0.1: little cross-entropy
    with pytest.raises(ValueError, match="level-competition"):
        training.train("discs", tmp_path / "cache", tmp_path, level_competition=1.0)


def test_three_class_disc_loss_scores_both_the_discs_and_the_spine():
    target = torch.zeros(1, 6, 6, 6, dtype=torch.long)
    target[0, :, :, 1:3] = 1  # a body
    target[0, :, :, 3] = 2  # a disc on it
    perfect = torch.full((1, 3, 6, 6, 6), -20.0).scatter_(1, target[:, None], 20.0)
    swapped = torch.where(target == 1, 2, torch.where(target == 2, 1, 0))
    wrong = torch.full((1, 3, 6, 6, 6), -20.0).scatter_(1, swapped[:, None], 20.0)
    good = float(losses.focal_dice_loss(perfect, target, dice_sets=losses.DISC_DICE_SETS))
    bad = float(losses.focal_dice_loss(wrong, target, dice_sets=losses.DISC_DICE_SETS))
    assert good < 1e-3
    # Bodies and discs swapped: the spine term is still perfect, the disc term and the focal term are not.
    assert bad > 1.0
    # Class fractions that are one-hot give the same loss as the class indices.
    onehot = torch.nn.functional.one_hot(target, 3).permute(0, 4, 1, 2, 3).float()
    logits = torch.randn(1, 3, 6, 6, 6, generator=torch.Generator().manual_seed(0))
    same = [float(losses.focal_dice_loss(logits, t, dice_sets=losses.DISC_DICE_SETS)) for t in (target, onehot)]
    assert same[0] == pytest.approx(same[1], rel=1e-5)
    # Half-and-half fractions are best met by a probability of one half, not by either class.
    half = torch.full((1, 3, 6, 6, 6), 0.0)
    half[:, 1:] = 0.5
    unsure = torch.full((1, 3, 6, 6, 6), -20.0)
    unsure[:, 1:] = 0.0
    sure = unsure.clone()
    sure[:, 2] = 20.0
    assert float(losses.focal_dice_loss(unsure, half)) < float(losses.focal_dice_loss(sure, half))
    # Voxels whose fractions sum to 0 (outside the field of view) are not scored, whatever is predicted there.
    blank = onehot.clone()
    blank[..., 3:] = 0.0
    left = perfect.clone()
    left[..., 3:] = torch.randn(1, 3, 6, 6, 3)
    assert float(losses.focal_dice_loss(left, blank, dice_sets=losses.DISC_DICE_SETS)) < 1e-3


def test_bf16_training_step_follows_the_fp32_gradient():
    """Training in bf16 autocast (2-3x faster on CPUs with native bf16) must still descend the fp32 loss: its
    gradient differs from the fp32 one far less than the gradient for a disc 12 mm higher does."""
    torch.manual_seed(0)
    net = models.make_net(models.STAGES["discs"])
    x = torch.randn(1, 1, 32, 32, 32)

    def blob(k: int) -> torch.Tensor:  # a body with a disc in its middle, centred at slice k
        t = torch.zeros(1, 32, 32, 32, dtype=torch.long)
        t[:, k - 6 : k + 6, 8:24, 8:24] = 1
        t[:, k - 2 : k + 2, 10:22, 10:22] = 2
        return t

    def grad(bf16: bool, target: torch.Tensor) -> torch.Tensor:
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        losses.focal_dice_loss(out.float(), target, dice_sets=losses.DISC_DICE_SETS).backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    g32 = grad(False, blob(16))
    bf16_error = float((grad(True, blob(16)) - g32).norm() / g32.norm())
    other_target = float((grad(False, blob(10)) - g32).norm() / g32.norm())
    assert bf16_error < 0.03 and other_target > 3 * bf16_error
    assert training.training_precision("fp32") == "fp32" and training.training_precision("auto") in ("bf16", "fp32")
    with pytest.raises(ValueError, match="precision"):
        training.training_precision("fp16")
