"""Inference (networks/infer.py, runtime.py, canonical.py): network outputs, runtimes, grids and the images' footprint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from SpineLocalizerLib.networks.models import load_model
from SpineLocalizerLib.networks.vnet import VNet


def test_vnet_output_shape_and_size():
    net = VNet(1, 11, base_channels=8, levels=4)
    x = torch.randn(1, 1, 16, 24, 32)
    assert net(x).shape == (1, 11, 16, 24, 32)
    assert sum(p.numel() for p in net.parameters()) < 1_000_000
    assert net.multiple == 8


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
    from SpineLocalizerLib.networks import levels as level_classifier

    net, _ = load_model("levels")
    fast = _inference_net(
        net, runtime, monkeypatch, (2, 1) + level_classifier.PATCH_2MM
    )  # recorded on two, used on one and five
    for n in (1, 5):
        x = torch.rand((n, 1) + level_classifier.PATCH_2MM)
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


def test_a_second_plan_in_one_process_reuses_the_loaded_networks(tmp_path):
    import os
    import shutil
    import time

    from SpineLocalizerLib.networks import MODEL_DIR, loaded

    models = tmp_path / "models"
    shutil.copytree(MODEL_DIR, models)
    loaded._LOADED.clear()
    t = time.perf_counter()
    first = loaded.loaded_networks(models)
    loading = time.perf_counter() - t
    t = time.perf_counter()
    assert loaded.loaded_networks(models) is first
    assert time.perf_counter() - t < loading / 10
    # Weights replaced in the folder are loaded again (and checked against their card again).
    card = models / "levels.json"
    os.utime(card, ns=(card.stat().st_atime_ns, card.stat().st_mtime_ns + 1_000_000))
    assert loaded.loaded_networks(models) is not first


def test_exported_graph_is_kept_on_disk_and_reused_by_the_next_load(tmp_path, monkeypatch):
    """A second load of the same weights reads the stored graph instead of exporting again (the exporter is not
    called), and gives the same output; a damaged stored graph is exported again and replaced; changed weights
    get a graph of their own."""
    import torch
    from SpineLocalizerLib.networks import onnx_cache, runtime
    from SpineLocalizerLib.networks.runtime import RUNTIME_ENV, InferenceNet

    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv(RUNTIME_ENV, "onnxruntime")
    net, card = load_model("levels")
    shape = (2, 1, 48, 48, 48)
    first = InferenceNet(net, shape, bf16=False, weights_sha256=card["sha256"])
    graphs = list((tmp_path / "onnx").glob("*.onnx"))
    assert first.backend == "onnxruntime" and len(graphs) == 1

    exports = []
    real_export = runtime._export
    monkeypatch.setattr(runtime, "_export", lambda *a: exports.append(1) or real_export(*a))
    second = InferenceNet(net, shape, bf16=False, weights_sha256=card["sha256"])
    assert second.backend == "onnxruntime" and not exports
    x = torch.randn(3, 1, 48, 48, 48)
    with torch.inference_mode():
        assert torch.allclose(second(x), net(x), atol=1e-4)

    graphs[0].write_bytes(b"not a graph")
    third = InferenceNet(net, shape, bf16=False, weights_sha256=card["sha256"])
    assert third.backend == "onnxruntime" and len(exports) == 1
    assert graphs[0].read_bytes() != b"not a graph"

    InferenceNet(net, shape, bf16=False, weights_sha256="0" * 64)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2 and len(exports) == 2

    monkeypatch.setenv(onnx_cache.CACHE_ENV, "none")
    assert onnx_cache.cache_folder() is None
    InferenceNet(net, shape, bf16=False, weights_sha256=card["sha256"])
    assert len(exports) == 3
