"""The 1 mm output head of the disc network (networks/fine.py): sub-voxel layout, grid, memory-bounded
probabilities, weights that belong to their disc network, and 1 mm training targets."""

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as functional
from SpineLocalizerLib.networks import MODEL_DIR, ModelError, data
from SpineLocalizerLib.networks import fine as fine_head
from SpineLocalizerLib.networks.canonical import CanonicalGrid
from SpineLocalizerLib.networks.vnet import VNet


def test_sub_voxel_channels_land_on_their_1mm_voxels():
    rng = np.random.default_rng(0)
    fine = torch.from_numpy(rng.normal(size=(1, 3, 6, 4, 8)).astype(np.float32))
    # Pack by hand: channel c * 8 + 4a + 2b + d of 2 mm voxel (i, j, k) is 1 mm voxel (2i + a, 2j + b, 2k + d).
    packed = torch.zeros(1, 24, 3, 2, 4)
    for c in range(3):
        for a in range(2):
            for b in range(2):
                for d in range(2):
                    packed[0, c * 8 + 4 * a + 2 * b + d] = fine[0, c, a::2, b::2, d::2]
    assert torch.equal(fine_head.unpack(packed, 3), fine)


def test_an_untrained_head_gives_the_2mm_logits_interpolated_to_1mm():
    vnet = VNet(1, 3, base_channels=4, levels=2)
    net = fine_head.DiscNetWithFine(vnet, fine_head.FineHead(4, 3, channels=4)).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        out = net(x)
        coarse = vnet(x)
    assert out.shape == (1, 27, 8, 8, 8)
    assert torch.allclose(out[:, :3], coarse)
    fine = fine_head.fine_logits(out[:, :3], out[:, 3:])
    assert torch.allclose(fine, functional.interpolate(coarse, scale_factor=2, mode="trilinear", align_corners=False))
    # On a linear ramp of 2 mm logits, 1 mm voxel m reads the ramp a quarter of a 2 mm voxel off: at m / 2 - 0.25.
    i = torch.arange(8, dtype=torch.float32)
    ramp = (3.0 * i[:, None, None] - 2.0 * i[None, :, None] + 0.5 * i[None, None, :]).expand(1, 3, 8, 8, 8)
    m = torch.arange(16, dtype=torch.float32) / 2 - 0.25
    expected = 3.0 * m[:, None, None] - 2.0 * m[None, :, None] + 0.5 * m[None, None, :]
    got = fine_head.fine_logits(ramp, torch.zeros(1, 24, 8, 8, 8))[0, 1]
    assert torch.allclose(got[1:-1, 1:-1, 1:-1], expected[1:-1, 1:-1, 1:-1], atol=1e-5)


def test_fine_grid_puts_two_1mm_voxels_a_quarter_voxel_either_side_of_each_2mm_centre():
    direction = np.array([[0.99, -0.1, 0.0], [0.1, 0.99, 0.0], [0.0, 0.0, 1.0]])
    direction /= np.linalg.norm(direction, axis=0)
    grid = CanonicalGrid(origin=np.array([-100.0, -80.0, -200.0]), size=(64, 64, 96), direction=direction)
    box = (slice(10, 30), slice(5, 45), slice(20, 60))
    g1 = fine_head.fine_grid(grid, box)
    assert g1.size == (40, 80, 80) and g1.spacing == 1.0
    centre = grid.index_to_world([12, 7, 33])
    a = g1.index_to_world([2 * 2, 2 * 2, 2 * 13])
    b = g1.index_to_world([2 * 2 + 1, 2 * 2 + 1, 2 * 13 + 1])
    assert np.allclose((a + b) / 2, centre)
    assert np.linalg.norm(b - a) == pytest.approx(np.sqrt(3.0))


def test_fine_margins_in_slabs_equal_the_whole_box_at_once_and_are_the_log_odds():
    rng = np.random.default_rng(1)
    out = rng.normal(scale=3.0, size=(27, 2 * fine_head.FINE_SLAB + 5, 6, 7)).astype(np.float32)
    disc, spine = fine_head.fine_margins(out)
    t = torch.from_numpy(out)[None]
    prob = torch.softmax(fine_head.fine_logits(t[:, :3].double(), t[:, 3:].double()), dim=1)[0].numpy()
    assert disc.shape == prob.shape[1:]
    assert np.allclose(disc, np.log(prob[2] / (1 - prob[2])), atol=1e-4)
    assert np.allclose(spine, np.log((prob[1] + prob[2]) / prob[0]), atol=1e-4)


def _output_folder(tmp_path):
    """Shipped weights plus an output network made of the shipped disc network and an untrained head."""
    from SpineLocalizerLib.networks.models import load_model
    from SpineLocalizerLib.networks.train_fine import export_fine

    folder = tmp_path / "models"
    folder.mkdir()
    for stage in ("localize", "discs", "levels"):
        for ext in ("safetensors", "json"):
            shutil.copy(MODEL_DIR / f"{stage}.{ext}", folder)
    vnet, card = load_model("discs", MODEL_DIR)
    net = fine_head.DiscNetWithFine(vnet, fine_head.FineHead(16))
    export_fine(net, folder, [], discs_card=card, seed=0, steps=0, peak_lr=0.0, bf16=False)
    return folder


def test_an_output_network_is_loaded_and_a_damaged_one_refused(tmp_path):
    folder = _output_folder(tmp_path)
    net = fine_head.load_output_net(folder)
    assert isinstance(net, fine_head.DiscNetWithFine) and net.head.out.out_channels == 24
    assert fine_head.load_output_net(tmp_path) is None  # none there: the output maps come from the 2 mm disc network
    weights = folder / f"{fine_head.FINE_STAGE}.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="damaged"):
        fine_head.load_output_net(folder)


def test_fine_classes_of_a_box_are_placed_on_its_1mm_grid_and_background_outside():
    classes = np.zeros((20, 10, 12), dtype=np.uint8)
    classes[4:6, 2:4, 0:2] = 2  # the 1 mm voxels of 2 mm voxel (lo + (2, 1, 0))
    lo = np.array([5, 7, 9])
    box = (slice(6, 9), slice(7, 11), slice(8, 12))  # starts one 2 mm voxel before lo on the last axis
    out = data.fine_classes_in(classes, lo, box)
    assert out.shape == (6, 8, 8)
    # 2 mm voxel (7, 8, 9) in absolute index is box voxel (1, 1, 1): 1 mm voxels 2-3 on each axis.
    assert np.argwhere(out == 2).min(axis=0).tolist() == [2, 2, 2]
    assert (out == 2).sum() == 8
    assert not out[:, :, :2].any()  # before the stored part: background
    assert not data.fine_classes_in(classes, lo, (slice(0, 3), slice(0, 3), slice(0, 3))).any()


def test_phantom_classes_at_1mm_agree_with_its_2mm_labels(tmp_path):
    data.make_phantom_case(3, tmp_path)
    data.make_fine_classes(3, tmp_path)
    classes, lo = data.load_fine_classes(tmp_path / "phantom_fine_000003.npz")
    case = data.load_case(tmp_path / "phantom_000003.npz")
    box = tuple(slice(a, a + n // 2) for a, n in zip(lo, classes.shape))
    disc2 = data.disc_mask(case.labels[box])
    # Every 2 mm disc voxel's centre lies between its eight 1 mm sub-voxels: most of them are disc too.
    pooled = data.downsample2((classes == 2).astype(np.float32))
    agree = ((pooled >= 0.5) == disc2).mean()
    assert agree > 0.99
    assert abs(int((classes == 2).sum()) - 8 * int(disc2.sum())) < 0.05 * 8 * disc2.sum()


def test_1mm_classes_filled_from_the_2mm_labels_match_the_model_evaluated_everywhere(tmp_path):
    """Only 1 mm voxels whose eight 2 mm neighbours disagree are evaluated; check the filled ones against the
    phantom model evaluated at every 1 mm voxel of a slab through a disc and its two bodies."""
    from SpineLocalizerLib.phantom.anatomy import build_anatomy
    from SpineLocalizerLib.phantom.model import evaluate_world
    from SpineLocalizerLib.phantom.params import sample_params

    data.make_phantom_case(3, tmp_path)
    data.make_fine_classes(3, tmp_path)
    classes, lo = data.load_fine_classes(tmp_path / "phantom_fine_000003.npz")
    disc_k = np.argwhere(classes == 2)[:, 2]
    k0 = int(np.median(disc_k)) - 12  # 24 mm around a disc near the middle of the lumbar spine
    slab = np.stack(np.meshgrid(*(np.arange(n) for n in classes.shape[:2]), np.arange(k0, k0 + 24), indexing="ij"), -1)
    _, origin = data.canonical_axes()
    origin1 = origin + lo * data.CANONICAL_SPACING_MM - data.CANONICAL_SPACING_MM / 4
    labels, _ = evaluate_world(build_anatomy(sample_params(3)), origin1 + slab.reshape(-1, 3) * 1.0)
    truth = data.fine_classes(labels).reshape(slab.shape[:3])
    got = classes[:, :, k0 : k0 + 24]
    assert (truth == 2).sum() > 1000 and (truth == 1).sum() > 1000  # the slab holds disc and body
    assert (got != truth).mean() < 1e-4
    for c in (1, 2):
        assert abs(int((got == c).sum()) - int((truth == c).sum())) <= 0.001 * (truth == c).sum()


def test_the_output_network_redraws_the_maps_and_leaves_the_naming_alone(tmp_path, phantoms):
    from pipeline_evaluation import dice
    from SpineLocalizerLib.labels import DISC_CODE_OFFSET
    from SpineLocalizerLib.networks.infer import discs_on, run_pipeline, spine_on
    from SpineLocalizerLib.phantom.generate import spine_mask
    from SpineLocalizerLib.volume_io import read_volume

    folder_case, _ = phantoms.get(100_004)
    image = read_volume(folder_case / "localizer.nii.gz")
    labels = read_volume(folder_case / "localizer_labels.nii.gz").array
    with_output = run_pipeline([image], model_dir=_output_folder(tmp_path), shifted_output=False)
    without = run_pipeline([image], model_dir=MODEL_DIR, fine_output=False, shifted_output=False)
    assert [m.grid.spacing for m in with_output.maps()] == [1.0]
    assert [m.grid.spacing for m in without.maps()] == [2.0]
    # Naming and planning inputs are the naming network's, bit for bit.
    assert np.array_equal(with_output.discs_canonical, without.discs_canonical)
    assert with_output.confidences == without.confidences
    discs = discs_on(with_output, image)
    assert set(np.unique(discs)) - {0} <= set(np.unique(with_output.discs_canonical)) - {0}
    # An untrained head draws the 2 mm log-odds interpolated to 1 mm: about the same surfaces.
    truth = (labels > DISC_CODE_OFFSET) & (labels < DISC_CODE_OFFSET + 30)
    d_fine, d_coarse = dice(discs > 0, truth), dice(discs_on(without, image) > 0, truth)
    assert d_fine > 0.85 and abs(d_fine - d_coarse) < 0.02
    assert dice(spine_on(with_output, image) > 0, spine_mask(labels) > 0) > 0.85


def test_a_models_folder_without_the_output_network_still_plans(tmp_path, phantoms):
    """Weights trained before it existed: the output maps come from the 2 mm disc network's log-odds."""
    from SpineLocalizerLib.networks.infer import run_pipeline
    from SpineLocalizerLib.volume_io import read_volume

    folder = tmp_path / "old"
    folder.mkdir()
    for stage in ("localize", "discs", "levels"):
        for ext in ("safetensors", "json"):
            shutil.copy(MODEL_DIR / f"{stage}.{ext}", folder)
    folder_case, _ = phantoms.get(100_004)
    result = run_pipeline([read_volume(folder_case / "localizer.nii.gz")], model_dir=folder)
    assert [m.grid.spacing for m in result.maps()] == [2.0, 2.0]  # the box and the box shifted
    assert result.maps()[0].disc.shape == result.disc_probability[result.box].shape
    assert len(result.confidences) >= 5


def test_box_patches_hold_the_spine_across_with_a_margin_and_leave_padding_unscored(tmp_path):
    from SpineLocalizerLib.networks import train_fine as fine_training

    data.make_phantom_case(3, tmp_path)
    data.make_fine_classes(3, tmp_path)
    case = data.load_case(tmp_path / "phantom_000003.npz")
    fine = data.load_fine_classes(tmp_path / "phantom_fine_000003.npz")
    spine = np.argwhere(data.spine_mask(case.labels))
    lo, hi = spine.min(axis=0), spine.max(axis=0) + 1
    rng = np.random.default_rng(4)
    for _ in range(8):
        crop = fine_training.box_patch_crop(case, rng)
        # Across (L-R, A-P) the box holds the whole spine and a margin as the pipeline's does, within the grid.
        for axis in (0, 1):
            before = lo[axis] - crop[axis].start
            after = crop[axis].stop - hi[axis]
            assert before == lo[axis] or fine_training.BOX_MARGIN_2MM[0] <= before < fine_training.BOX_MARGIN_2MM[1]
            assert (
                crop[axis].stop == case.labels.shape[axis]
                or fine_training.BOX_MARGIN_2MM[0] <= after < fine_training.BOX_MARGIN_2MM[1]
            )
        assert 0 < crop[2].stop - crop[2].start < fine_training.BOX_SI_2MM[1]
    shapes = set()
    for _ in range(6):
        image, codes = fine_training.fine_sample(case, fine, rng, cut=False)
        onehot = fine_training.fine_fractions(torch.from_numpy(codes)[None])[0].numpy()
        shapes.add(image.shape)
        assert all(n % fine_training.PATCH_MULTIPLE == 0 for n in image.shape[1:])
        assert onehot.shape[1:] == tuple(2 * n for n in image.shape[1:])
        scored = onehot.sum(axis=0)
        assert set(np.unique(scored)) <= {0.0, 1.0}
        # What is not scored is the padding, where the image is zero too.
        padded = data.downsample2(scored) == 0
        assert np.all(image[0][padded] == 0)
        assert (onehot[1:].sum() > 0) and scored.mean() > 0.5
    assert len(shapes) > 1  # boxes of the pipeline's shapes, not only 64^3 cubes
