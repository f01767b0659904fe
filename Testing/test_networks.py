"""Networks: V-Net shapes, training samples and targets, checkpoints, weight loading, label matching."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from SpineLocalizerLib.networks import ModelError
from SpineLocalizerLib.networks import data as D
from SpineLocalizerLib.networks import train as T
from SpineLocalizerLib.networks.infer import load_model
from SpineLocalizerLib.networks.labeling import level_names
from SpineLocalizerLib.networks.labeling import match_sequence as _match
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


def test_level_competition_penalises_heatmaps_that_answer_every_disc_on_every_channel(tmp_path):
    discs = {
        123: {"name": "L4-L5", "centroid_vox": [8.0, 8.0, 20.0]},
        124: {"name": "L5-S1", "centroid_vox": [8.0, 8.0, 8.0]},
    }
    heat = torch.from_numpy(D.heatmaps((16, 16, 28), discs, spacing_mm=4.0))[None]
    t = heat / D.HEATMAP_PEAK
    # The hedge the shipped network makes: each disc's peak on every channel.
    hedge = t.max(dim=1, keepdim=True).values.expand_as(t).clone()
    plain = (T.heatmap_loss(t, heat), T.heatmap_loss(hedge, heat))
    strict = (T.heatmap_loss(t, heat, 1.0), T.heatmap_loss(hedge, heat, 1.0))
    # Without competition the hedge costs little more than the truth; with it, ~log(9) more near each disc.
    assert plain[1] - plain[0] < 0.5
    assert float(strict[1] - plain[1]) == pytest.approx(np.log(len(D.LEVELS)), rel=1e-4)
    assert float(strict[0] - plain[0]) < 0.1  # the truth's channel leads by 0.5-1 / 0.1: little cross-entropy
    with pytest.raises(ValueError, match="level-competition"):
        T.train("discs", tmp_path / "cache", tmp_path, level_competition=1.0)


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
    # --sacrum-share: all patches centred in the sacrum or none. The large sacrum (labelled body) fills a sacral
    # patch: ~20000 body voxels against ~12500 in a patch centred on a disc (seed 7, measured).
    sacral = [T.disc_sample(case, rng, sacrum_share=1.0)[1] for _ in range(6)]
    on_discs = [T.disc_sample(case, rng, sacrum_share=0.0)[1] for _ in range(6)]
    assert np.mean([(t == 1).sum() for t in sacral]) > 1.25 * np.mean([(t == 1).sum() for t in on_discs])
    with pytest.raises(ValueError, match="sacrum"):
        T.train("discs", tmp_path / "cache", tmp_path, sacrum_share=1.5)


def _paired_disc_samples(tmp_path, targets: str, n: int = 8):
    """(image, hard target, image, `targets` target) from the same seeds: the same crop, flip and image."""
    case = D.load_case(D.make_phantom_case(7, tmp_path))
    for seed in range(n):
        hard = T.disc_sample(case, np.random.default_rng(seed), sacrum_share=0.0, targets="hard")
        yield *hard, *T.disc_sample(case, np.random.default_rng(seed), sacrum_share=0.0, targets=targets)


def test_soft_disc_targets_are_label_fractions_on_a_shifted_grid(tmp_path):
    cut = 0
    for img_h, hard, img_s, soft in _paired_disc_samples(tmp_path, "soft"):
        assert soft.shape == (3,) + T.DISC_PATCH_2MM and soft.dtype == np.float32
        total = soft.sum(axis=0)
        scored = total > 0.5
        # Fractions sum to 1 in the field of view and to 0 (not scored) outside it, where the image is blank.
        assert np.allclose(total[scored], 1.0, atol=1e-5) and np.allclose(total[~scored], 0.0)
        assert soft.min() >= -1e-6 and not img_s[0][~scored].any()
        cut += not scored.all()
        if not scored.all():
            continue
        partial = (soft[2] > 0.05) & (soft[2] < 0.95)
        assert partial.sum() > 0.3 * (hard == 2).sum()  # the disc surfaces fall between voxels
        # Interpolation moves the labels, it does not grow or shrink them (the patch edge aside).
        assert abs(soft[2].sum() / (hard == 2).sum() - 1.0) < 0.05
        assert abs((soft[1] + soft[2]).sum() / (hard > 0).sum() - 1.0) < 0.05
        # The image moved with its labels: the disc signal sits where the disc fractions are.
        flipped = np.corrcoef(img_h[0, ::-1].ravel(), img_s[0].ravel())[0, 1]
        same = hard[::-1] if flipped > np.corrcoef(img_h[0].ravel(), img_s[0].ravel())[0, 1] else hard
        assert np.corrcoef((same == 2).ravel(), soft[2].ravel())[0, 1] > 0.8
    assert 1 <= cut <= 7  # about half the patches lose part of their field of view
    with pytest.raises(ValueError, match="targets"):
        T.train("localize", tmp_path / "cache", tmp_path, targets="soft")
    with pytest.raises(ValueError, match="targets"):
        T.train("discs", tmp_path / "cache", tmp_path, targets="fuzzy")


def test_cut_disc_targets_are_the_hard_labels_with_part_of_the_field_of_view_unscored(tmp_path):
    cut = 0
    for img_h, hard, img_c, onehot in _paired_disc_samples(tmp_path, "cut"):
        assert onehot.shape == (3,) + T.DISC_PATCH_2MM and set(np.unique(onehot)) <= {0.0, 1.0}
        scored = onehot.sum(axis=0) > 0.5
        assert scored.sum() > 1000
        # Same crop, flip and image as the hard sample where scored; blank image and no target outside.
        assert np.array_equal(onehot.argmax(axis=0)[scored], hard[scored])
        assert np.allclose(img_c[0][scored], img_h[0][scored]) and not img_c[0][~scored].any()
        cut += not scored.all()
    assert 1 <= cut <= 7


def test_sample_stream_reads_each_case_once_and_leaves_it_unchanged(tmp_path, monkeypatch):
    """The sample worker keeps decompressed cases; that is only safe while no sample writes into them."""
    paths = [D.make_phantom_case(seed, tmp_path) for seed in (7, 8)]
    reads = []  # (path, the case handed out)
    real_load = D.load_case

    def counting_load(path):
        reads.append((str(path), real_load(path)))
        return reads[-1][1]

    monkeypatch.setattr(D, "load_case", counting_load)
    for stage in ("discs", "levels", "localize"):
        reads.clear()
        stream = iter(T._Samples(stage, paths, 0, [], 0.5))
        for _ in range(6):
            next(stream)
        names = [path for path, _ in reads]
        assert len(names) == len(set(names)) <= 2  # every later sample came from the kept cases
        for path, case in reads:
            fresh = real_load(path)
            assert np.array_equal(case.labels, fresh.labels) and np.array_equal(case.tissue, fresh.tissue)


def test_validation_synthesises_its_fixed_samples_once(tmp_path, monkeypatch):
    """Validation runs every few hundred steps on fixed samples: they are made at the first call and reused, with the
    scores a fresh process (nothing kept) gives."""
    paths = [D.make_phantom_case(seed, tmp_path) for seed in (7, 8)]
    monkeypatch.setattr(T, "_VAL_SAMPLES", {})
    real_synthesis = D.synthesize_image
    calls = []
    for stage in ("discs", "localize", "levels"):
        torch.manual_seed(0)
        net = T.make_net(T.STAGES[stage])
        first = T.validate(stage, net, paths)
        calls.clear()
        monkeypatch.setattr(D, "synthesize_image", lambda *a: calls.append(a) or real_synthesis(*a))
        assert T.validate(stage, net, paths) == first
        assert calls == []
        monkeypatch.setattr(D, "synthesize_image", real_synthesis)
        T._VAL_SAMPLES.clear()
        assert T.validate(stage, net, paths) == first


def test_spine_voxels_are_found_once_per_case(tmp_path):
    case = D.load_case(D.make_phantom_case(7, tmp_path))
    first = D.spine_voxels(case)
    assert np.array_equal(first, np.argwhere(D.spine_mask(case.labels)))
    assert D.spine_voxels(case) is first
    sacrum = D.label_voxels(case, T.SACRUM_CODE)
    assert len(sacrum) and np.all(case.labels[tuple(sacrum.T)] == T.SACRUM_CODE)


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


def test_a_wider_network_is_exported_and_loaded_at_its_own_width(tmp_path):
    """`--width` trains a V-Net with other channel counts; the card records the width and loading follows the
    card, so a folder of wider weights runs without changing any setting."""
    cfg = T.replace(T.STAGES["discs"], base_channels=12)
    net = T.make_net(cfg)
    T.export("discs", net, tmp_path, [{"step": 1}], seed=3, steps=1, user=[], cfg=cfg)
    card = json.loads((tmp_path / "discs.json").read_text())
    assert card["architecture"]["base_channels"] == 12
    loaded, _ = load_model("discs", tmp_path)
    assert loaded.inp[0].out_channels == 12
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        assert torch.equal(loaded.eval()(x), net.eval()(x))
    with pytest.raises(ValueError, match="classifier"):
        T.train("levels", tmp_path / "cache", tmp_path, width=12)
    with pytest.raises(ValueError, match="2-64"):
        T.train("discs", tmp_path / "cache", tmp_path, width=1)


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
    from SpineLocalizerLib.networks.labeling import COUNT_LOG_PRIOR

    assert forced[1:3] == (6, 2)
    assert forced[0] == pytest.approx(score - COUNT_LOG_PRIOR[5] + COUNT_LOG_PRIOR[6])  # only the count prior differs
    assert _match(responses, centres, 4)[0] < score


def test_card_documents_training(tmp_path):
    from SpineLocalizerLib.networks import MODEL_DIR

    card = json.loads((MODEL_DIR / "localize.json").read_text())
    assert card["training_data"]["phantom_seeds"] == "1-160"
    assert "val_dice" in card["validation"]
    assert card["outputs"][:2] == ["background", "spine"] and len(card["outputs"]) == 2 + len(D.LEVELS)
    # Every card says whether its seed replays its samples (the shipped ones predate seeded streams).
    for stage in ("localize", "discs", "levels", "discs_fine"):
        assert "sample_streams" in json.loads((MODEL_DIR / f"{stage}.json").read_text())
    T.export("localize", T.make_net(T.STAGES["localize"]), tmp_path, [{"step": 1}], seed=3, steps=1, user=[])
    assert json.loads((tmp_path / "localize.json").read_text())["sample_streams"] == T.SAMPLE_STREAMS


def _slab_discs(size, ks, thickness_vox=5, half_width_vox=9):
    """Probability map of flat discs (squares in i, j) centred at the k indices `ks` of a canonical grid."""
    prob = np.zeros(size, dtype=np.float32)
    c = np.array(size[:2]) // 2
    for k in ks:
        prob[
            c[0] - half_width_vox : c[0] + half_width_vox,
            c[1] - half_width_vox : c[1] + half_width_vox,
            k - thickness_vox // 2 : k + thickness_vox // 2 + 1,
        ] = 0.95
    return prob


def test_a_disc_like_blob_outside_the_image_is_not_labelled():
    from SpineLocalizerLib.networks.canonical import CanonicalGrid
    from SpineLocalizerLib.networks.infer import _inside_images
    from SpineLocalizerLib.networks.labeling import label_discs
    from SpineLocalizerLib.volume_io import Volume

    grid = CanonicalGrid(origin=np.zeros(3), size=(32, 32, 112))
    # The image covers k < 90 only; the canonical grid is padded beyond it, where the network may see an edge.
    image = Volume(np.zeros((32, 32, 90), dtype=np.float32), (2.0, 2.0, 2.0), np.zeros(3), np.eye(3))
    prob = _slab_discs(grid.size, [10, 28, 46, 64, 82, 104])
    box = tuple(slice(0, n) for n in grid.size)
    heat4 = np.zeros((len(D.LEVELS), 16, 16, 56), dtype=np.float32)
    usable = _inside_images([image], grid, box)
    assert usable[16, 16, 80] and not usable[:, :, 100].any() and not usable[0].any()
    out, _, _, _, _ = label_discs(prob, heat4, np.zeros(3, int), box, grid, 5, usable=usable)
    assert out[16, 16, 104] == 0
    assert all(out[16, 16, k] > 0 for k in (10, 28, 46, 64, 82))
    # Without the footprint the blob would have been named as a disc.
    unfiltered, _, _, _, _ = label_discs(prob, heat4, np.zeros(3, int), box, grid, 5)
    assert unfiltered[16, 16, 104] > 0


def test_discs_on_input_grid_follow_the_probability_not_the_2mm_voxels():
    from SpineLocalizerLib.networks.canonical import CanonicalGrid, from_canonical
    from SpineLocalizerLib.networks.infer import PipelineResult, discs_on

    grid = CanonicalGrid(origin=np.zeros(3), size=(32, 32, 32))
    # A tilted slab, 7 mm thick, as a smooth probability on the 2 mm grid.
    ijk = np.stack(np.meshgrid(*(np.arange(32) for _ in range(3)), indexing="ij"), axis=-1) * 2.0
    normal = np.array([0.0, np.sin(0.3), np.cos(0.3)])
    dist = (ijk - 31.0) @ normal
    prob = (1.0 / (1.0 + np.exp((np.abs(dist) - 3.5) / 0.5))).astype(np.float32)
    prob[np.linalg.norm((ijk - 31.0) - dist[..., None] * normal, axis=-1) > 20] = 0.0
    codes = np.where(prob > 0.5, 124, 0).astype(np.uint8)
    result = PipelineResult(codes, codes > 0, prob, grid, {124: 0.9}, 5, {}, "ok")
    # Input grid: 0.7 mm voxels over the same region.
    from SpineLocalizerLib.volume_io import Volume

    fine = Volume(np.zeros((88, 88, 88), dtype=np.float32), (0.7, 0.7, 0.7), np.full(3, 0.35), np.eye(3))
    pts = fine.index_to_world(np.argwhere(np.ones(fine.array.shape, bool)))
    d_fine = (pts - 31.0) @ normal
    radial = np.linalg.norm((pts - 31.0) - d_fine[:, None] * normal, axis=1)
    truth = ((np.abs(d_fine) <= 3.5) & (radial <= 20)).reshape(fine.array.shape)

    def dice(a, b):
        return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())

    smooth = discs_on(result, fine)
    blocky = from_canonical(codes, grid, fine) > 0
    assert set(np.unique(smooth)) == {0, 124}
    assert dice(smooth > 0, truth) > dice(blocky, truth) + 0.02
    assert dice(smooth > 0, truth) > 0.9


def test_canonical_grid_follows_a_slightly_tilted_localizer_and_round_trips_its_labels_exactly():
    from scipy.spatial.transform import Rotation
    from SpineLocalizerLib.networks.canonical import (
        ALIGN_MAX_DEG,
        canonical_grid_for,
        from_canonical,
        to_canonical,
    )
    from SpineLocalizerLib.volume_io import Volume

    rng = np.random.default_rng(3)
    # A sagittal stack as scanners write it: voxel axes (P, I, R)-like, tilted a few degrees.
    tilt = Rotation.from_euler("xyz", [6, -4, 8], degrees=True).as_matrix()
    stack_axes = tilt @ np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    labels = (rng.random((60, 70, 40)) > 0.7).astype(np.int16) * 7
    vol = Volume(labels, (2.0, 2.0, 2.0), np.array([12.3, -40.7, 88.1]), stack_axes)
    grid = canonical_grid_for(vol, align=True)
    # Grid axis i, j, k runs along L, P, S (within the limit) and along one of the image's own axes.
    assert np.all(np.diag(grid.direction) > np.cos(np.radians(ALIGN_MAX_DEG)))
    assert np.allclose(np.abs(grid.direction.T @ stack_axes).max(axis=1), 1.0)
    assert np.allclose(grid.world_to_index(grid.index_to_world([[3, 4, 5]])), [[3, 4, 5]])
    # 2 mm voxels on a grid sharing their centres: nothing is interpolated, either way.
    canon, _ = to_canonical(vol, grid, labels=True)
    assert np.array_equal(from_canonical(canon, grid, vol), labels)
    soft, _ = to_canonical(Volume(labels.astype(np.float32), vol.spacing, vol.origin, vol.direction), grid)
    assert np.array_equal(from_canonical(soft, grid, vol, labels=False) >= 3.5, labels > 0)
    # Tilted beyond the limit, or asked not to align: L, P, S axes.
    steep = Rotation.from_euler("xyz", [0, 0, ALIGN_MAX_DEG + 5], degrees=True).as_matrix()
    steep_volume = Volume(labels, (2.0,) * 3, np.zeros(3), steep)
    assert np.array_equal(canonical_grid_for(steep_volume, align=True).direction, np.eye(3))
    lps = canonical_grid_for(vol)  # the default
    assert np.array_equal(lps.direction, np.eye(3))
    canon, _ = to_canonical(vol, lps, labels=True)
    assert not np.array_equal(from_canonical(canon, lps, vol), labels)  # nearest neighbour between rotated grids


def test_a_thin_but_wide_lumbar_disc_is_not_taken_for_a_thoracic_one(monkeypatch):
    # Bottom-up: L5-S1 .. L2-L3 thick, L1-L2 degenerated (as thin as a thoracic disc) but with a lumbar footprint,
    # then three small thin thoracic discs. The sacrum lies below the lowest disc.
    heights = np.array([10.0, 10.5, 10.0, 9.5, 5.2, 5.5, 5.0, 5.0])
    areas = np.array([900.0, 1000.0, 1000.0, 980.0, 960.0, 780.0, 700.0, 650.0])
    centres = np.array([[0.0, 0.0, 36.0 * r] for r in range(len(heights))])
    responses = np.zeros((len(heights), len(D.LEVELS)))
    with_footprint = _match(responses, centres, None, heights_mm=heights, sacrum_below=True, areas_mm2=areas)
    assert with_footprint[1:3] == (5, 0)
    # Thickness alone calls the degenerated disc T12-L1 and loses a lumbar vertebra when every count is as likely;
    # the prevalence prior on the count keeps five.
    assert _match(responses, centres, None, heights_mm=heights, sacrum_below=True)[1:3] == (5, 0)
    from SpineLocalizerLib.networks import labeling

    monkeypatch.setattr(labeling, "COUNT_LOG_PRIOR", {4: 0.0, 5: 0.0, 6: 0.0})
    assert _match(responses, centres, None, heights_mm=heights, sacrum_below=True)[1:3] == (4, 0)


def test_a_visible_sacrum_outweighs_one_lumbosacral_disc_the_classifier_calls_lumbar(monkeypatch):
    # Tuning phantom 60056 in miniature: five lumbar vertebrae, the classifier sure of every disc but the
    # lumbosacral one, which it calls lumbar (p = 0.94, lumbosacral 0.05). "L5-L6 with L6-S1 unseen below" then
    # names every disc as the classifier likes; only the sacrum in view below the lowest disc speaks against it.
    from SpineLocalizerLib.networks import levels as LV

    names = level_names(5)
    centres = np.array([[0.0, 0.0, 36.0 * r] for r in range(9)])
    p = np.full((9, 4), 0.003)
    for r in range(9):
        p[r, LV.class_of(names[r])] = 0.99
    p[0] = [0.003, 0.94, 0.05, 0.007]
    logp = np.log(p / p.sum(axis=1, keepdims=True))
    responses = np.zeros((9, len(D.LEVELS)))
    assert _match(responses, centres, None, sacrum_below=True, class_logp=logp)[1:3] == (5, 0)
    # Without the sacrum in view, one patch is too little evidence against the prevalence of six lumbar
    # vertebrae; with every count as likely, a sixth lumbar vertebra with its lowest disc below the field of view
    # would be the better reading of the same classifier output.
    assert _match(responses, centres, None, sacrum_below=False, class_logp=logp)[1] == 5
    from SpineLocalizerLib.networks import labeling

    monkeypatch.setattr(labeling, "COUNT_LOG_PRIOR", {4: 0.0, 5: 0.0, 6: 0.0})
    assert _match(responses, centres, None, sacrum_below=False, class_logp=logp)[1:3] == (6, 1)


RUNTIMES = ["onnxruntime", "torchscript"]


def _inference_net(net, runtime, monkeypatch, *args):
    from SpineLocalizerLib.networks.runtime import RUNTIME_ENV, InferenceNet

    monkeypatch.setenv(RUNTIME_ENV, "torch" if runtime == "torchscript" else "onnxruntime")
    fast = InferenceNet(net, *args)
    assert fast.backend == runtime  # onnxruntime is a requirement: no silent fallback to the slower path
    return fast


def test_vnets_run_in_bf16_where_the_cpu_has_it_and_segment_as_in_fp32(phantoms, monkeypatch):
    """bf16 (2x faster here) for the V-Nets on CPUs with native bf16; the classifier asks for fp32. On a phantom
    localizer the bf16 disc network marks the same voxels as fp32 but for a thin boundary fraction."""
    from SpineLocalizerLib.networks.infer import _run, _softmax, prepare_input
    from SpineLocalizerLib.networks.runtime import RUNTIME_ENV, InferenceNet, native_bf16
    from SpineLocalizerLib.volume_io import read_volume

    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    net, _ = load_model("discs")
    fast = InferenceNet(net)
    assert fast.backend == ("bf16" if native_bf16() else "onnxruntime")
    assert InferenceNet(net, bf16=False).backend == "onnxruntime"
    monkeypatch.setenv(RUNTIME_ENV, "onnxruntime")
    assert InferenceNet(net).backend == "onnxruntime"  # forcing a runtime also forces fp32
    if not native_bf16():
        pytest.skip("this CPU has no native bf16: the V-Nets run in fp32 (the checks above)")
    folder, truth = phantoms.get(32, lumbar_count=5)
    image2, _ = prepare_input([read_volume(folder / truth["files"]["localizer"])])
    box = image2[40:120, 40:120, 40:200]
    with torch.inference_mode():
        ref = _softmax(net(torch.from_numpy(np.ascontiguousarray(box))[None, None])[0].numpy())[2]
    out = _softmax(_run(fast, box))[2]
    assert out.shape == ref.shape and (ref > 0.5).sum() > 2000  # the box holds discs
    disagree = ((out > 0.5) != (ref > 0.5)).sum() / (ref > 0.5).sum()
    assert disagree < 0.01 and np.abs(out - ref).mean() < 0.001  # measured: 0.0008 and 8e-6


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inference_net_gives_the_plain_network_output(runtime, monkeypatch):
    net, _ = load_model("discs")
    fast = _inference_net(net, runtime, monkeypatch)
    for shape in ((1, 1, 24, 32, 40), (1, 1, 48, 16, 24)):  # sizes other than the one exported or traced
        x = torch.rand(shape)
        with torch.inference_mode():
            plain = net(x)
        out = fast(x)
        assert out.shape == plain.shape
        assert torch.allclose(out, plain, atol=1e-3)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inference_net_runs_the_level_classifier_at_any_batch_size(runtime, monkeypatch):
    from SpineLocalizerLib.networks import levels as LV

    net, _ = load_model("levels")
    fast = _inference_net(net, runtime, monkeypatch, (2, 1) + LV.PATCH_2MM)  # recorded on two, used on one and five
    for n in (1, 5):
        x = torch.rand((n, 1) + LV.PATCH_2MM)
        with torch.inference_mode():
            assert torch.allclose(fast(x), net(x), atol=1e-3)


# L, P, S grid (tilted too far to align); grid along the image's own axes
@pytest.mark.parametrize("angles", [(20, -10, 35), (4, -7, 6)])
def test_inside_images_of_a_tilted_image_matches_a_voxel_by_voxel_check(angles):
    from scipy.spatial.transform import Rotation
    from SpineLocalizerLib.networks.canonical import canonical_grid_for
    from SpineLocalizerLib.networks.infer import INSIDE_MARGIN_MM, _inside_images
    from SpineLocalizerLib.volume_io import Volume

    direction = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    image = Volume(np.zeros((40, 50, 9), dtype=np.float32), (1.5, 1.5, 5.0), np.array([-30.0, 10.0, 5.0]), direction)
    grid = canonical_grid_for(image, align=True)
    assert np.array_equal(grid.direction, np.eye(3)) == (max(np.abs(angles)) > 20)
    box = (slice(3, 60), slice(10, 90), slice(0, 70))
    fast = _inside_images([image], grid, box)
    ijk = np.stack(np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij"), axis=-1).reshape(-1, 3)
    idx = image.world_to_index(grid.index_to_world(ijk))
    n = np.array(image.array.shape, dtype=float)
    m = np.minimum(INSIDE_MARGIN_MM / np.asarray(image.spacing), 0.25 * n)
    slow = np.all((idx >= -0.5 + m) & (idx <= n - 0.5 - m), axis=1).reshape(fast.shape)
    assert slow.sum() > 1000 and (~slow).sum() > 1000  # the box cuts through the tilted image
    assert np.array_equal(fast, slow)


def test_downsample_is_the_block_mean_and_drops_an_odd_last_row():
    vol = np.random.default_rng(3).random((7, 8, 5)).astype(np.float32)
    expected = vol[:6, :, :4].reshape(3, 2, 4, 2, 2, 2).mean(axis=(1, 3, 5))
    out = D.downsample2(vol)
    assert out.shape == (3, 4, 2) and out.dtype == np.float32
    assert np.allclose(out, expected, atol=1e-6)


def test_smooth_random_field_is_the_linear_zoom_of_its_coarse_noise():
    """The bias and texture fields are interpolated by torch (faster); the values must be scipy's linear zoom."""
    from scipy import ndimage

    for shape, scale in (((40, 33, 57), 8.0), ((64, 64, 96), 40.0)):
        small = tuple(max(2, int(np.ceil(s / scale))) for s in shape)
        coarse = np.random.default_rng(5).normal(size=small).astype(np.float32)
        expected = ndimage.zoom(coarse, [s / c for s, c in zip(shape, small)], order=1)
        field = D._smooth_random_field(shape, np.random.default_rng(5), scale)
        assert field.shape == shape == expected.shape
        assert np.abs(field - expected).max() < 1e-4 and field.std() > 0.1


def test_a_two_class_disc_network_becomes_three_class_without_changing_its_discs():
    old = VNet(1, 2, base_channels=4, levels=2).eval()
    cfg = T.StageConfig("discs", 3, base_channels=4, levels=2)
    new = T.make_net(cfg)
    new.load_state_dict(T.adapt_head(old.state_dict(), new))
    new.eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.inference_mode():
        p_old = torch.softmax(old(x), 1)[0, 1]
        p_new = torch.softmax(new(x), 1)[0]
    assert p_new.shape[0] == 3
    assert torch.allclose(p_new[2], p_old, atol=0.01)  # disc channel kept
    assert float(p_new[1].max()) < 0.01  # the body class starts (almost) empty


def test_three_class_disc_loss_scores_both_the_discs_and_the_spine():
    target = torch.zeros(1, 6, 6, 6, dtype=torch.long)
    target[0, :, :, 1:3] = 1  # a body
    target[0, :, :, 3] = 2  # a disc on it
    perfect = torch.full((1, 3, 6, 6, 6), -20.0).scatter_(1, target[:, None], 20.0)
    swapped = torch.where(target == 1, 2, torch.where(target == 2, 1, 0))
    wrong = torch.full((1, 3, 6, 6, 6), -20.0).scatter_(1, swapped[:, None], 20.0)
    good = float(T.focal_dice_loss(perfect, target, dice_sets=T.DISC_DICE_SETS))
    bad = float(T.focal_dice_loss(wrong, target, dice_sets=T.DISC_DICE_SETS))
    assert good < 1e-3
    # Bodies and discs swapped: the spine term is still perfect, the disc term and the focal term are not.
    assert bad > 1.0
    # Class fractions that are one-hot give the same loss as the class indices.
    onehot = torch.nn.functional.one_hot(target, 3).permute(0, 4, 1, 2, 3).float()
    logits = torch.randn(1, 3, 6, 6, 6, generator=torch.Generator().manual_seed(0))
    same = [float(T.focal_dice_loss(logits, t, dice_sets=T.DISC_DICE_SETS)) for t in (target, onehot)]
    assert same[0] == pytest.approx(same[1], rel=1e-5)
    # Half-and-half fractions are best met by a probability of one half, not by either class.
    half = torch.full((1, 3, 6, 6, 6), 0.0)
    half[:, 1:] = 0.5
    unsure = torch.full((1, 3, 6, 6, 6), -20.0)
    unsure[:, 1:] = 0.0
    sure = unsure.clone()
    sure[:, 2] = 20.0
    assert float(T.focal_dice_loss(unsure, half)) < float(T.focal_dice_loss(sure, half))
    # Voxels whose fractions sum to 0 (outside the field of view) are not scored, whatever is predicted there.
    blank = onehot.clone()
    blank[..., 3:] = 0.0
    left = perfect.clone()
    left[..., 3:] = torch.randn(1, 3, 6, 6, 3)
    assert float(T.focal_dice_loss(left, blank, dice_sets=T.DISC_DICE_SETS)) < 1e-3


def test_bf16_training_step_follows_the_fp32_gradient():
    """Training in bf16 autocast (2-3x faster on CPUs with native bf16) must still descend the fp32 loss: its
    gradient differs from the fp32 one far less than the gradient for a disc 12 mm higher does."""
    torch.manual_seed(0)
    net = T.make_net(T.STAGES["discs"])
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
        T.focal_dice_loss(out.float(), target, dice_sets=T.DISC_DICE_SETS).backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    g32 = grad(False, blob(16))
    bf16_error = float((grad(True, blob(16)) - g32).norm() / g32.norm())
    other_target = float((grad(False, blob(10)) - g32).norm() / g32.norm())
    assert bf16_error < 0.03 and other_target > 3 * bf16_error
    assert T.training_precision("fp32") == "fp32" and T.training_precision("auto") in ("bf16", "fp32")
    with pytest.raises(ValueError, match="precision"):
        T.training_precision("fp16")


def test_a_sample_stream_is_repeated_by_its_seed_and_a_resumed_run_draws_new_samples(tmp_path):
    paths = [D.make_phantom_case(seed, tmp_path) for seed in (7, 8)]

    def first(stage, seed, start_step, n=3):
        stream = iter(T._Samples(stage, paths, seed, [], 0.5, start_step=start_step))
        return [next(stream) for _ in range(n)]

    for stage in ("discs", "levels"):
        a, b = first(stage, 5, 0), first(stage, 5, 0)
        for x, y in zip(a, b):
            assert all(np.array_equal(p, q) for p, q in zip(x, y))
        resumed = first(stage, 5, 300)
        assert not np.array_equal(a[0][0], resumed[0][0])
        assert not np.array_equal(a[0][0], first(stage, 6, 0)[0][0])


def _blas_threads(_=None):
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


class _BlasThreadsSeen(torch.utils.data.IterableDataset):
    def __iter__(self):
        yield _blas_threads()


def test_pool_workers_and_the_sample_worker_run_one_blas_thread_each():
    from SpineLocalizerLib.parallel import process_pool

    with process_pool(2) as pool:
        per_worker = list(pool.map(_blas_threads, range(2)))
    assert all(threads and set(threads) == {1} for threads in per_worker)  # numpy's and scipy's OpenBLAS
    loader = torch.utils.data.DataLoader(
        _BlasThreadsSeen(), batch_size=None, num_workers=1, worker_init_fn=T._single_threaded_worker
    )
    assert set(next(iter(loader))) == {1}
    assert max(_blas_threads()) > 1 or os.cpu_count() == 1  # only the workers are limited, not this process
