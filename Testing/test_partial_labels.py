"""Fine-tuning the structure network on real images with partial masks (networks/partial_labels.py): the loss
scores only what a mask says, planes carry the mask voxel for voxel, and a bad list is refused with its reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from SpineLocalizerLib.networks.partial_labels import (
    UNKNOWN,
    partial_batch,
    partial_label_loss,
    planes_of_stack,
    read_partial_list,
)
from SpineLocalizerLib.networks.structure_classes import CLASS_INDEX, N_STRUCTURE_CLASSES
from SpineLocalizerLib.volume_io import Volume

PARA = CLASS_INDEX["paraspinal muscle"]
PSOAS = CLASS_INDEX["psoas"]


def _logits(classes: np.ndarray, confidence: float = 8.0) -> torch.Tensor:
    """Logits (1, C, H, W) confident of the given class map."""
    onehot = np.eye(N_STRUCTURE_CLASSES, dtype=np.float32)[classes]
    return torch.from_numpy(confidence * onehot).permute(2, 0, 1)[None]


def test_the_loss_scores_only_the_outlined_class_and_the_pixels_the_mask_speaks_of():
    target = np.zeros((16, 16), dtype=np.int64)
    target[4:8, 4:8] = PARA
    target[:, 14:] = UNKNOWN
    right = np.zeros((16, 16), dtype=np.int64)
    right[4:8, 4:8] = PARA
    t = torch.from_numpy(target)[None]
    base = partial_label_loss(_logits(right), t, (PARA,)).item()
    # Outside the mask the network may say psoas or background: the mask does not know which.
    other = right.copy()
    other[10:13, 0:6] = PSOAS
    assert partial_label_loss(_logits(other), t, (PARA,)).item() == pytest.approx(base, abs=1e-4)
    # Whatever it says where the mask is unknown is not scored either.
    beyond = right.copy()
    beyond[:, 14:] = PARA
    assert partial_label_loss(_logits(beyond), t, (PARA,)).item() == pytest.approx(base, abs=1e-4)
    # Calling the outlined muscle psoas, or calling psoas paraspinal, costs.
    wrong = right.copy()
    wrong[4:8, 4:8] = PSOAS
    assert partial_label_loss(_logits(wrong), t, (PARA,)).item() > base + 1.0
    spill = right.copy()
    spill[10:13, 0:6] = PARA
    assert partial_label_loss(_logits(spill), t, (PARA,)).item() > base + 0.1


def _stack(origin_of_mask):
    """A small axial stack (bright square muscle behind a centre) and its mask, on 1 mm x 1 mm x 4 mm voxels."""
    img = np.full((120, 120, 3), 100.0, dtype=np.float32)
    img[40:80, 70:100, :] = 400.0
    mask = np.zeros(img.shape, dtype=np.int16)
    mask[40:80, 70:100, :] = 3
    spacing, direction = (1.0, 1.0, 4.0), np.eye(3)
    return Volume(img, spacing, (0.0, 0.0, 0.0), direction), Volume(mask, spacing, origin_of_mask, direction)


def _no_spine(x: torch.Tensor) -> torch.Tensor:
    """A network that sees nothing: the planes stay on the image centre."""
    return torch.zeros((x.shape[0], N_STRUCTURE_CLASSES, *x.shape[2:]))


def test_planes_carry_the_mask_voxel_for_voxel_even_when_its_header_differs():
    image, mask = _stack(origin_of_mask=(-200.0, -150.0, 190.0))  # another origin, as MyoSegmenTUM's masks have
    planes = planes_of_stack(_no_spine, image, mask, {3: PARA}, np.random.default_rng(0), copies=1)
    assert planes.images.shape == (3, 256, 256) and planes.classes == (PARA,)
    t = planes.targets[0]
    # 0.75 mm pixels centred on the image centre (59.5, 59.5): the 40 x 30 mm square is ~53 x 40 pixels.
    assert 0.8 < (t == PARA).sum() / (40 * 30 / 0.75**2) < 1.2
    assert (t == UNKNOWN).any() and (t == 0).any()  # the 192 mm plane reaches beyond the 120 mm image
    assert planes.images[0][t == PARA].mean() > planes.images[0][t == 0].mean()
    x, y = partial_batch(planes, np.random.default_rng(1), 4)
    assert x.shape == (4, 1, 256, 256) and y.shape == (4, 256, 256)


def test_a_mask_on_another_grid_is_refused():
    image, _ = _stack((0.0, 0.0, 0.0))
    small = Volume(np.zeros((60, 60, 3), dtype=np.int16), (2.0, 2.0, 4.0), (0.0, 0.0, 0.0), np.eye(3))
    with pytest.raises(ValueError, match="differs from the image"):
        planes_of_stack(_no_spine, image, small, {3: PARA}, np.random.default_rng(0))


def test_a_list_naming_an_unknown_class_or_missing_a_field_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image": "a.nii.gz", "mask": "b.nii.gz", "classes": {"1": "erector"}}]))
    with pytest.raises(ValueError, match="classes the network does not have"):
        read_partial_list(bad)
    bad.write_text(json.dumps([{"image": "a.nii.gz", "classes": {}}]))
    with pytest.raises(ValueError, match="lacks"):
        read_partial_list(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"image": "a.nii.gz", "mask": "b.nii.gz", "classes": {"1": "paraspinal muscle"}}]))
    (entry,) = read_partial_list(good)
    assert entry["classes"] == {1: PARA} and entry["image"] == (tmp_path / "a.nii.gz").resolve()


def test_a_random_contrast_keeps_the_air_dark_and_changes_the_tissues_order():
    from SpineLocalizerLib.networks.partial_labels import remapped_contrast

    img = np.concatenate([np.zeros(10), np.full(10, 0.4), np.full(10, 1.0)]).astype(np.float32)
    orders = set()
    for seed in range(20):
        out = remapped_contrast(img, np.random.default_rng(seed))
        assert out[:10].max() == 0.0 and 0.0 < out[10:].min() and out.max() <= 1.0
        orders.add(bool(out[15] < out[25]))
    assert orders == {True, False}  # not always monotone: muscle may come out brighter than fat, or darker
