"""Training losses: focal + soft Dice for the segmentations (LVP: focal loss with gamma 2), weighted MSE (+ an
optional level competition) for the heatmaps, and the Dice score used in validation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as functional

from .heatmap_levels import HEATMAP_PEAK


def focal_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, dice_sets: tuple = ((1,),)
) -> torch.Tensor:
    """Focal loss over all classes + one soft Dice term per set of classes (a set = one foreground structure:
    (2,) the discs, (1, 2) the spine = bodies + discs).

    `target` holds class indices (N, ...) or class fractions (N, C, ...); with one-hot fractions both give the
    same loss. With fractions the focal term is the fraction-weighted sum over classes, and voxels whose
    fractions sum to 0 (outside the field of view) are scored by neither term."""
    logp = functional.log_softmax(logits, dim=1)
    fractions = target.is_floating_point()
    if fractions:
        focal = (-(target * (1 - logp.exp()) ** gamma * logp).sum(dim=1)).mean()
        scored = target.sum(dim=1)
    else:
        logp_t = logp.gather(1, target[:, None]).squeeze(1)
        focal = (-((1 - logp_t.exp()) ** gamma) * logp_t).mean()
    loss = focal
    for classes in dice_sets:
        prob = sum(logp[:, c].exp() for c in classes)
        if fractions:
            prob = prob * scored
            tgt = sum(target[:, c] for c in classes)
        else:
            tgt = sum((target == c).float() for c in classes)
        loss = loss + 1 - (2 * (prob * tgt).sum() + 1) / (prob.sum() + tgt.sum() + 1)
    return loss


DISC_DICE_SETS = ((2,), (1, 2))


def heatmap_loss(pred: torch.Tensor, heat: torch.Tensor, competition: float = 0.0) -> torch.Tensor:
    """Mean squared error on the heatmaps scaled to 0-1 (peak 256 -> 1), weighted towards the peaks, plus
    `competition` x the cross-entropy of the level channels (as logits / 0.1) near the disc centres.

    Plain MSE over a volume that is 99.7 % zero is minimised by predicting zero everywhere; weighting each voxel
    by 1 + 20 x its target makes the few voxels near a disc centre count (the weighting is a common fix for
    heatmap regression). The factor 50 puts it on the scale of the segmentation loss.
    Why the competition term: with the weighted MSE alone the shipped network answers every disc on every
    channel alike (the true level's channel the strongest on 8 of 64 discs, chance; README); the cross-entropy
    where a target exceeds half its peak makes the channels compete for each disc.
    """
    t = heat / HEATMAP_PEAK
    loss = 50.0 * ((1.0 + 20.0 * t) * (pred - t) ** 2).mean()
    near = t.max(dim=1).values > 0.5
    if competition > 0.0 and bool(near.any()):
        logits = (pred / LEVEL_LOGIT_SCALE).permute(0, 2, 3, 4, 1)[near]
        level = t.permute(0, 2, 3, 4, 1)[near].argmax(dim=1)
        loss = loss + competition * functional.cross_entropy(logits, level)
    return loss


LEVEL_LOGIT_SCALE = 0.1  # heatmaps live on 0-1: a lead of 0.3 is a factor e^3 between channels


def dice_score(pred: np.ndarray, target: np.ndarray) -> float:
    inter = np.logical_and(pred, target).sum()
    total = pred.sum() + target.sum()
    return float(2 * inter / total) if total else 1.0
