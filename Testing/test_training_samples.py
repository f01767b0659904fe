"""Training samples of the phantom stages (networks/samples.py, data.py): targets, field-of-view cuts, seeded streams, the sample worker."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from SpineLocalizerLib.networks import data, samples
from SpineLocalizerLib.networks import train as training


def test_heatmap_peak_is_256_at_the_disc_centre():
    discs = {
        123: {"name": "L4-L5", "centroid_vox": [10.0, 12.0, 14.0]},
        124: {"name": "L5-S1", "centroid_vox": [10.0, 12.0, 4.0]},
    }
    h = data.heatmaps((20, 24, 28), discs, spacing_mm=2.0)
    ls, l45 = data.LEVELS.index("LS"), data.LEVELS.index("L4-L5")
    assert np.unravel_index(np.argmax(h[l45]), h[l45].shape) == (10, 12, 14)
    assert h[l45].max() == pytest.approx(256.0)
    assert h[ls].max() == pytest.approx(256.0) and h[data.LEVELS.index("L5-L6")].max() == 0.0
    # sigma 6 mm: one sigma away (3 voxels at 2 mm) the value is 256 * exp(-1/2)
    assert h[l45][13, 12, 14] == pytest.approx(256 * np.exp(-0.5), rel=1e-5)


def test_training_samples_have_consistent_targets(phantoms, tmp_path):
    path = data.make_phantom_case(7, tmp_path)
    case = data.load_case(path)
    rng = np.random.default_rng(0)
    img, spine, heat = samples.localize_sample(case, rng)
    assert img.shape == (1,) + samples.LOCALIZE_CROP_4MM and spine.shape == samples.LOCALIZE_CROP_4MM
    assert heat.shape == (len(data.LEVELS),) + samples.LOCALIZE_CROP_4MM
    assert spine.sum() > 500 and np.isfinite(img).all()
    dimg, dtarget = samples.disc_sample(case, rng)
    assert dimg.shape == (1,) + samples.DISC_PATCH_2MM and dtarget.any()
    # --sacrum-share: all patches centred in the sacrum or none. The large sacrum (labelled body) fills a sacral
    # patch: ~20000 body voxels against ~12500 in a patch centred on a disc (seed 7, measured).
    sacral = [samples.disc_sample(case, rng, sacrum_share=1.0)[1] for _ in range(6)]
    on_discs = [samples.disc_sample(case, rng, sacrum_share=0.0)[1] for _ in range(6)]
    assert np.mean([(t == 1).sum() for t in sacral]) > 1.25 * np.mean([(t == 1).sum() for t in on_discs])
    with pytest.raises(ValueError, match="sacrum"):
        training.train("discs", tmp_path / "cache", tmp_path, sacrum_share=1.5)


def _paired_disc_samples(tmp_path, targets: str, n: int = 8):
    """(image, hard target, image, `targets` target) from the same seeds: the same crop, flip and image."""
    case = data.load_case(data.make_phantom_case(7, tmp_path))
    for seed in range(n):
        hard = samples.disc_sample(case, np.random.default_rng(seed), sacrum_share=0.0, targets="hard")
        yield *hard, *samples.disc_sample(case, np.random.default_rng(seed), sacrum_share=0.0, targets=targets)


def test_soft_disc_targets_are_label_fractions_on_a_shifted_grid(tmp_path):
    cut = 0
    for img_h, hard, img_s, soft in _paired_disc_samples(tmp_path, "soft"):
        assert soft.shape == (3,) + samples.DISC_PATCH_2MM and soft.dtype == np.float32
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
        training.train("localize", tmp_path / "cache", tmp_path, targets="soft")
    with pytest.raises(ValueError, match="targets"):
        training.train("discs", tmp_path / "cache", tmp_path, targets="fuzzy")


def test_cut_disc_targets_are_the_hard_labels_with_part_of_the_field_of_view_unscored(tmp_path):
    cut = 0
    for img_h, hard, img_c, onehot in _paired_disc_samples(tmp_path, "cut"):
        assert onehot.shape == (3,) + samples.DISC_PATCH_2MM and set(np.unique(onehot)) <= {0.0, 1.0}
        scored = onehot.sum(axis=0) > 0.5
        assert scored.sum() > 1000
        # Same crop, flip and image as the hard sample where scored; blank image and no target outside.
        assert np.array_equal(onehot.argmax(axis=0)[scored], hard[scored])
        assert np.allclose(img_c[0][scored], img_h[0][scored]) and not img_c[0][~scored].any()
        cut += not scored.all()
    assert 1 <= cut <= 7


def test_sample_stream_reads_each_case_once_and_leaves_it_unchanged(tmp_path, monkeypatch):
    """The sample worker keeps decompressed cases; that is only safe while no sample writes into them."""
    paths = [data.make_phantom_case(seed, tmp_path) for seed in (7, 8)]
    reads = []  # (path, the case handed out)
    real_load = data.load_case

    def counting_load(path):
        reads.append((str(path), real_load(path)))
        return reads[-1][1]

    monkeypatch.setattr(data, "load_case", counting_load)
    for stage in ("discs", "levels", "localize"):
        reads.clear()
        stream = iter(samples.Samples(stage, paths, 0, [], 0.5))
        for _ in range(6):
            next(stream)
        names = [path for path, _ in reads]
        assert len(names) == len(set(names)) <= 2  # every later sample came from the kept cases
        for path, case in reads:
            fresh = real_load(path)
            assert np.array_equal(case.labels, fresh.labels) and np.array_equal(case.tissue, fresh.tissue)


def test_spine_voxels_are_found_once_per_case(tmp_path):
    case = data.load_case(data.make_phantom_case(7, tmp_path))
    first = data.spine_voxels(case)
    assert np.array_equal(first, np.argwhere(data.spine_mask(case.labels)))
    assert data.spine_voxels(case) is first
    sacrum = data.label_voxels(case, samples.SACRUM_CODE)
    assert len(sacrum) and np.all(case.labels[tuple(sacrum.T)] == samples.SACRUM_CODE)


def test_downsample_is_the_block_mean_and_drops_an_odd_last_row():
    vol = np.random.default_rng(3).random((7, 8, 5)).astype(np.float32)
    expected = vol[:6, :, :4].reshape(3, 2, 4, 2, 2, 2).mean(axis=(1, 3, 5))
    out = data.downsample2(vol)
    assert out.shape == (3, 4, 2) and out.dtype == np.float32
    assert np.allclose(out, expected, atol=1e-6)


def test_smooth_random_field_is_the_linear_zoom_of_its_coarse_noise():
    """The bias and texture fields are interpolated by torch (faster); the values must be scipy's linear zoom."""
    from scipy import ndimage

    for shape, scale in (((40, 33, 57), 8.0), ((64, 64, 96), 40.0)):
        small = tuple(max(2, int(np.ceil(s / scale))) for s in shape)
        coarse = np.random.default_rng(5).normal(size=small).astype(np.float32)
        expected = ndimage.zoom(coarse, [s / c for s, c in zip(shape, small)], order=1)
        field = data._smooth_random_field(shape, np.random.default_rng(5), scale)
        assert field.shape == shape == expected.shape
        assert np.abs(field - expected).max() < 1e-4 and field.std() > 0.1


def test_a_sample_stream_is_repeated_by_its_seed_and_a_resumed_run_draws_new_samples(tmp_path):
    paths = [data.make_phantom_case(seed, tmp_path) for seed in (7, 8)]

    def first(stage, seed, start_step, n=3):
        stream = iter(samples.Samples(stage, paths, seed, [], 0.5, start_step=start_step))
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
        _BlasThreadsSeen(), batch_size=None, num_workers=1, worker_init_fn=samples.single_threaded_worker
    )
    assert set(next(iter(loader))) == {1}
    assert max(_blas_threads()) > 1 or os.cpu_count() == 1  # only the workers are limited, not this process
