"""Training runs (networks/train.py, training_loop.py, checkpoints.py, model_cards.py, stage_validation.py): validation, checkpoints, cards, loading."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from SpineLocalizerLib.networks import ModelError, checkpoints, data, models, samples, stage_validation
from SpineLocalizerLib.networks import train as training
from SpineLocalizerLib.networks.models import load_model
from SpineLocalizerLib.networks.vnet import VNet


def test_validation_synthesises_its_fixed_samples_once(tmp_path, monkeypatch):
    """Validation runs every few hundred steps on fixed samples: they are made at the first call and reused, with the
    scores a fresh process (nothing kept) gives."""
    paths = [data.make_phantom_case(seed, tmp_path) for seed in (7, 8)]
    monkeypatch.setattr(stage_validation, "_VAL_SAMPLES", {})
    real_synthesis = data.synthesize_image
    calls = []
    for stage in ("discs", "localize", "levels"):
        torch.manual_seed(0)
        net = models.make_net(models.STAGES[stage])
        first = stage_validation.validate(stage, net, paths)
        calls.clear()
        monkeypatch.setattr(data, "synthesize_image", lambda *a: calls.append(a) or real_synthesis(*a))
        assert stage_validation.validate(stage, net, paths) == first
        assert calls == []
        monkeypatch.setattr(data, "synthesize_image", real_synthesis)
        stage_validation._VAL_SAMPLES.clear()
        assert stage_validation.validate(stage, net, paths) == first


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    net = VNet(1, 2, base_channels=4, levels=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = net(torch.randn(1, 1, 8, 8, 8)).mean()
    loss.backward()
    opt.step()
    checkpoints.save_checkpoint(tmp_path / "c.safetensors", net, opt, 17, [{"step": 17}])
    net2 = VNet(1, 2, base_channels=4, levels=2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3)
    step, log = checkpoints.load_checkpoint(tmp_path / "c.safetensors", net2, opt2)
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


def test_a_wider_network_is_exported_and_loaded_at_its_own_width(tmp_path):
    """`--width` trains a V-Net with other channel counts; the card records the width and loading follows the
    card, so a folder of wider weights runs without changing any setting."""
    cfg = dataclasses.replace(models.STAGES["discs"], base_channels=12)
    net = models.make_net(cfg)
    training.export("discs", net, tmp_path, [{"step": 1}], seed=3, steps=1, user=[], cfg=cfg)
    card = json.loads((tmp_path / "discs.json").read_text())
    assert card["architecture"]["base_channels"] == 12
    loaded, _ = load_model("discs", tmp_path)
    assert loaded.inp[0].out_channels == 12
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        assert torch.equal(loaded.eval()(x), net.eval()(x))
    with pytest.raises(ValueError, match="classifier"):
        training.train("levels", tmp_path / "cache", tmp_path, width=12)
    with pytest.raises(ValueError, match="2-64"):
        training.train("discs", tmp_path / "cache", tmp_path, width=1)


def test_card_documents_training(tmp_path):
    from SpineLocalizerLib.networks import MODEL_DIR

    card = json.loads((MODEL_DIR / "localize.json").read_text())
    assert card["training_data"]["phantom_seeds"] == "1-160"
    assert "val_dice" in card["validation"]
    assert card["outputs"][:2] == ["background", "spine"] and len(card["outputs"]) == 2 + len(data.LEVELS)
    # Every card says whether its seed replays its samples (the shipped ones predate seeded streams).
    for stage in ("localize", "discs", "levels", "discs_fine"):
        assert "sample_streams" in json.loads((MODEL_DIR / f"{stage}.json").read_text())
    training.export(
        "localize", models.make_net(models.STAGES["localize"]), tmp_path, [{"step": 1}], seed=3, steps=1, user=[]
    )
    assert json.loads((tmp_path / "localize.json").read_text())["sample_streams"] == samples.SAMPLE_STREAMS


def test_a_two_class_disc_network_becomes_three_class_without_changing_its_discs():
    old = VNet(1, 2, base_channels=4, levels=2).eval()
    cfg = models.StageConfig("discs", 3, base_channels=4, levels=2)
    new = models.make_net(cfg)
    new.load_state_dict(training.adapt_head(old.state_dict(), new))
    new.eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.inference_mode():
        p_old = torch.softmax(old(x), 1)[0, 1]
        p_new = torch.softmax(new(x), 1)[0]
    assert p_new.shape[0] == 3
    assert torch.allclose(p_new[2], p_old, atol=0.01)  # disc channel kept
    assert float(p_new[1].max()) < 0.01  # the body class starts (almost) empty
