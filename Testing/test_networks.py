"""Networks: V-Net shapes, training samples and targets, checkpoints, weight loading, label matching."""

import json
import shutil

import numpy as np
import pytest
import torch
from SpineLocalizerLib.networks import ModelError
from SpineLocalizerLib.networks import data as D
from SpineLocalizerLib.networks import train as T
from SpineLocalizerLib.networks.infer import level_names, load_model
from SpineLocalizerLib.networks.infer import match_sequence as _match
from SpineLocalizerLib.networks.vnet import VNet


def test_vnet_output_shape_and_size():
    net = VNet(1, 11, base_channels=8, levels=4)
    x = torch.randn(1, 1, 16, 24, 32)
    assert net(x).shape == (1, 11, 16, 24, 32)
    assert sum(p.numel() for p in net.parameters()) < 1_000_000
    assert net.multiple == 8


def test_heatmap_peak_is_256_at_the_disc_centre():
    discs = {
        123: {"name": "L4-L5", "centroid_vox": [10.0, 12.0, 14.0]},
        124: {"name": "L5-S1", "centroid_vox": [10.0, 12.0, 4.0]},
    }
    h = D.heatmaps((20, 24, 28), discs, spacing_mm=2.0)
    ls, l45 = D.LEVELS.index("LS"), D.LEVELS.index("L4-L5")
    assert np.unravel_index(np.argmax(h[l45]), h[l45].shape) == (10, 12, 14)
    assert h[l45].max() == pytest.approx(256.0)
    assert h[ls].max() == pytest.approx(256.0) and h[D.LEVELS.index("L5-L6")].max() == 0.0
    # sigma 6 mm: one sigma away (3 voxels at 2 mm) the value is 256 * exp(-1/2)
    assert h[l45][13, 12, 14] == pytest.approx(256 * np.exp(-0.5), rel=1e-5)


def test_lumbosacral_channel_whatever_the_lumbar_count():
    assert D.level_channel("L4-S1") == D.level_channel("L5-S1") == D.level_channel("L6-S1") == D.LEVELS.index("LS")
    assert D.level_channel("L5-L6") == D.LEVELS.index("L5-L6")
    assert level_names(4)[:3] == ["L4-S1", "L3-L4", "L2-L3"]


def test_training_samples_have_consistent_targets(phantoms, tmp_path):
    path = D.make_phantom_case(7, tmp_path)
    case = D.load_case(path)
    rng = np.random.default_rng(0)
    img, spine, heat = T.localize_sample(case, rng)
    assert img.shape == (1,) + T.LOCALIZE_CROP_4MM and spine.shape == T.LOCALIZE_CROP_4MM
    assert heat.shape == (len(D.LEVELS),) + T.LOCALIZE_CROP_4MM
    assert spine.sum() > 500 and np.isfinite(img).all()
    dimg, dtarget = T.disc_sample(case, rng)
    assert dimg.shape == (1,) + T.DISC_PATCH_2MM and dtarget.any()


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    net = VNet(1, 2, base_channels=4, levels=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = net(torch.randn(1, 1, 8, 8, 8)).mean()
    loss.backward()
    opt.step()
    T._save_checkpoint(tmp_path / "c.safetensors", net, opt, 17, [{"step": 17}])
    net2 = VNet(1, 2, base_channels=4, levels=2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3)
    step, log = T._load_checkpoint(tmp_path / "c.safetensors", net2, opt2)
    assert step == 17 and log == [{"step": 17}]
    for a, b in zip(net.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], opt2.state_dict()["state"][0]["exp_avg"])


def test_shipped_weights_load_and_a_damaged_file_is_refused(tmp_path):
    from SpineLocalizerLib.networks import MODEL_DIR

    for stage in ("localize", "discs"):
        net, card = load_model(stage)
        assert card["stage"] == stage and (MODEL_DIR / f"{stage}.safetensors").stat().st_size < 10_000_000
    shutil.copy(MODEL_DIR / "discs.json", tmp_path / "discs.json")
    raw = bytearray((MODEL_DIR / "discs.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (tmp_path / "discs.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="checksum"):
        load_model("discs", tmp_path)
    with pytest.raises(ModelError, match="not found"):
        load_model("localize", tmp_path)


def test_sequence_matching_finds_the_count_and_a_cut_field_of_view():
    # Seven components 36 mm apart; heatmaps that answer for a five-lumbar spine whose L5-S1 is below the FOV.
    names = level_names(5)  # LS upwards
    centres = np.array([[0.0, 0.0, 36.0 * r] for r in range(7)])
    responses = np.zeros((7, len(D.LEVELS)))
    for r in range(7):
        responses[r, D.level_channel(names[r + 1])] = 0.8
    score, count, shift, matched = _match(responses, centres, None)
    assert (count, shift) == (5, 1)
    # With L5-S1 outside the field of view, six lumbar vertebrae fit equally well (lowest visible disc L4-L5,
    # two levels above L6-S1): forcing the count moves the shift, not the names.
    forced = _match(responses, centres, 6)
    assert forced[1:3] == (6, 2) and forced[0] == pytest.approx(score)
    assert _match(responses, centres, 4)[0] < score


def test_card_documents_training(tmp_path):
    from SpineLocalizerLib.networks import MODEL_DIR

    card = json.loads((MODEL_DIR / "localize.json").read_text())
    assert card["training_data"]["phantom_seeds"] == "1-160"
    assert "val_dice" in card["validation"]
    assert card["outputs"][:2] == ["background", "spine"] and len(card["outputs"]) == 2 + len(D.LEVELS)
