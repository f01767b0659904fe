"""Output label maps (networks/output_maps.py): log-odds on the box's grids, shifted sampling, averaging on the
input's grid, and that none of it changes the naming."""

import numpy as np
from SpineLocalizerLib.networks import output_maps
from SpineLocalizerLib.networks.canonical import CanonicalGrid
from SpineLocalizerLib.volume_io import Volume


def _grid(size=(20, 20, 20)):
    d = np.eye(3)
    return CanonicalGrid(origin=np.array([-20.0, -20.0, -20.0]), size=size, spacing=2.0, direction=d)


def test_the_shifted_box_grid_samples_half_a_voxel_further_on_every_axis():
    grid = _grid()
    box = (slice(2, 12), slice(4, 10), slice(0, 20))
    g0, g1 = output_maps.box_grid(grid, box), output_maps.box_grid(grid, box, output_maps.SHIFT_VOX)
    assert g0.size == g1.size == (10, 6, 20)
    assert np.allclose(g0.index_to_world([0, 0, 0]), grid.index_to_world([2, 4, 0]))
    assert np.allclose(g1.index_to_world([0, 0, 0]) - g0.index_to_world([0, 0, 0]), [1.0, 1.0, 1.0])


def test_a_plane_between_voxels_is_placed_by_the_log_odds_not_half_way():
    """Log-odds +3 and -1 on neighbouring voxels put the surface 3/4 of the way to the negative one; the
    probabilities 0.95 and 0.27 put the 0.5 crossing elsewhere, and saturated ones always half-way."""
    grid = _grid()
    disc = np.full(grid.size, -1.0, dtype=np.float32)
    disc[:10] = 3.0  # voxel 9 (x = -2 mm) +3, voxel 10 (x = 0 mm) -1: zero crossing at x = -0.5 mm
    maps = [output_maps.OutputMap(grid, disc, disc)]
    target = Volume(np.zeros((40, 4, 4), dtype=np.float32), (0.25, 1.0, 1.0), np.array([-5.0, -2.0, -2.0]), np.eye(3))
    x = -5.0 + 0.25 * np.arange(40)
    inside = output_maps.margin_on(maps, "disc", target)[:, 1, 1] >= 0
    assert np.array_equal(inside, x <= -0.5 + 1e-6)


def test_maps_are_averaged_on_the_target_and_empty_outside_them():
    grid = _grid()
    a = output_maps.OutputMap(grid, np.full(grid.size, 2.0, np.float32), np.full(grid.size, 2.0, np.float32))
    b = output_maps.OutputMap(grid, np.full(grid.size, -4.0, np.float32), np.full(grid.size, 0.0, np.float32))
    target = Volume(np.zeros((30, 3, 3), dtype=np.float32), (2.0, 2.0, 2.0), np.array([-10.0, 0.0, 0.0]), np.eye(3))
    disc = output_maps.margin_on([a, b], "disc", target)
    spine = output_maps.margin_on([a, b], "spine", target)
    assert np.allclose(disc[:5], -1.0) and np.allclose(spine[:5], 1.0)
    assert np.allclose(disc[-3:], output_maps.OUTSIDE_MARGIN)  # x = 44.. 48 mm: beyond the grid (up to 18 mm)


def test_draw_output_maps_reuses_the_naming_pass_and_runs_one_shifted_pass():
    grid = _grid()
    box = (slice(2, 10), slice(2, 10), slice(2, 18))
    seen = []

    def segment(arr):
        seen.append(arr.shape)
        return np.stack([np.zeros(arr.shape), np.zeros(arr.shape), arr]).astype(np.float32)

    def image_on(g):
        return np.full(g.size, float(g.origin[0]), dtype=np.float32)

    first = np.zeros((3,) + tuple(s.stop - s.start for s in box), dtype=np.float32)
    maps = output_maps.draw_output_maps(segment, image_on, grid, box, first)
    assert seen == [(8, 8, 16)]  # only the shifted pass ran
    assert len(maps) == 2 and np.allclose(maps[0].disc, -np.log(2.0))  # logits 0, 0, 0: disc odds 1 : 2
    assert np.allclose(maps[1].grid.origin - maps[0].grid.origin, 1.0)
    assert len(output_maps.draw_output_maps(segment, image_on, grid, box, first, shifted=False)) == 1


def test_the_shifted_pass_leaves_the_naming_and_sharpens_the_discs(phantoms):
    from pipeline_evaluation import dice
    from SpineLocalizerLib.labels import DISC_CODE_OFFSET
    from SpineLocalizerLib.networks.infer import discs_on, run_pipeline
    from SpineLocalizerLib.volume_io import read_volume

    folder, _ = phantoms.get(100_004)
    image = read_volume(folder / "localizer.nii.gz")
    labels = read_volume(folder / "localizer_labels.nii.gz").array
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the process's own setting (Slicer's, another module's): ours must not stick
    try:
        one = run_pipeline([image], shifted_output=False)
        two = run_pipeline([image])
        assert torch.get_num_threads() == 1
        one.maps()  # the deferred maps run on the pipeline's threads too, and give the setting back
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    # The plan does not wait for the maps: they are drawn when first asked for, and timed apart.
    assert two.output_maps is None and "output_maps" not in two.timings_s
    assert np.array_equal(one.discs_canonical, two.discs_canonical) and one.confidences == two.confidences
    assert len(one.maps()) == 1 and len(two.maps()) == 2
    assert two.timings_s["output_maps"] > 0 and two.maps() is two.output_maps
    truth = (labels > DISC_CODE_OFFSET) & (labels < DISC_CODE_OFFSET + 30)
    d1, d2 = dice(discs_on(one, image) > 0, truth), dice(discs_on(two, image) > 0, truth)
    assert d1 > 0.88 and d2 > d1 - 0.005  # 40 tuning phantoms: +0.005 on average (README)


def test_the_shifted_pass_sees_the_input_scaled_as_the_first_pass_did():
    """The box is resampled on its own for the shifted pass; with the first pass's intensity levels it must
    reproduce the first pass's image exactly at zero shift (one image, and a fused sagittal + coronal pair)."""
    from SpineLocalizerLib.networks import infer

    rng = np.random.default_rng(3)
    sag = Volume(rng.gamma(2.0, 100.0, size=(12, 90, 80)).astype(np.float32), (4.0, 1.5, 1.5), np.zeros(3), np.eye(3))
    cor = Volume(
        rng.gamma(2.0, 300.0, size=(70, 10, 80)).astype(np.float32),
        (1.5, 4.0, 1.5),
        np.array([-20.0, 10.0, 0.0]),
        np.eye(3),
    )
    for images in ([sag], [sag, cor]):
        image, grid, levels = infer._prepare(images, "lps")
        assert np.array_equal(image, infer.prepare_input(images)[0])
        box = (slice(40, 72), slice(40, 72), slice(40, 80))
        part = infer._canonical_image(images, output_maps.box_grid(grid, box), levels)
        assert np.allclose(part, image[box], atol=1e-5)
    # The pair is each image scaled by its own levels and averaged where both are: not the first image alone.
    pair, _, _ = infer._prepare([sag, cor], "lps")
    alone, _, _ = infer._prepare([sag], "lps")
    assert not np.allclose(pair, alone)


def test_the_output_box_is_widened_about_its_centre_to_the_minimum_side_and_stays_in_the_grid():
    from SpineLocalizerLib.networks.infer import widened_box

    grid = CanonicalGrid(origin=np.zeros(3), size=(100, 50, 200), spacing=2.0, direction=np.eye(3))
    box = (slice(40, 60), slice(0, 30), slice(10, 190))
    out = widened_box(box, grid, 80.0)  # 40 voxels
    assert out[0] == slice(30, 70)  # about its centre
    assert out[1] == slice(0, 40)  # at the grid's edge: moved inwards, not cut
    assert out[2] == box[2]  # already longer: unchanged
    assert widened_box(box, grid, 120.0)[1] == slice(0, 50)  # the grid is all there is
    for b, w in zip(box, out):  # never loses any of the naming box
        assert w.start <= b.start and w.stop >= b.stop
