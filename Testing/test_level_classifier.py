"""Level classifier (thoracic / lumbar / lumbosacral disc): classes, patches, training samples, and its use in
the sequence matching that decides the lumbar count."""

import numpy as np
import pytest
import torch
from SpineLocalizerLib.networks import data
from SpineLocalizerLib.networks import levels as level_classifier
from SpineLocalizerLib.networks.sequence_matching import level_names
from SpineLocalizerLib.networks.sequence_matching import match_sequence as _match


def test_classes_follow_the_upper_and_lower_vertebra():
    assert [level_classifier.class_of(n) for n in ("T8-T9", "T11-T12", "T12-L1")] == [0, 0, 0]
    assert [level_classifier.class_of(n) for n in ("L1-L2", "L4-L5", "L5-L6")] == [1, 1, 1]
    assert [level_classifier.class_of(n) for n in ("L4-S1", "L5-S1", "L6-S1")] == [2, 2, 2]


def test_patch_is_centred_and_zero_outside_the_volume():
    vol = np.arange(20 * 22 * 24, dtype=np.float32).reshape(20, 22, 24)
    p = level_classifier.cut_patch(vol, (10, 11, 12), size=(6, 6, 6))
    assert np.array_equal(p, vol[7:13, 8:14, 9:15])
    edge = level_classifier.cut_patch(vol, (1, 11, 12), size=(6, 6, 6))  # starts 2 voxels before the volume
    assert np.all(edge[:2] == 0) and np.array_equal(edge[2:], vol[0:4, 8:14, 9:15])
    assert not level_classifier.cut_patch(vol, (100, 11, 12), size=(6, 6, 6)).any()
    assert level_classifier.cut_patch(vol.astype(np.uint8), (10, 11, 12)).dtype == np.uint8


def test_level_net_gives_log_probabilities_of_each_class_per_candidate():
    net = level_classifier.LevelNet().eval()
    image = np.random.default_rng(0).random((60, 60, 80)).astype(np.float32)
    logp = level_classifier.class_log_probabilities(net, image, np.array([[30.0, 30.0, 20.0], [30.0, 30.0, 60.0]]))
    assert logp.shape == (2, len(level_classifier.CLASSES)) == (2, 4)
    assert np.allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-5)
    assert level_classifier.class_log_probabilities(net, image, np.zeros((0, 3))).shape == (0, 4)
    assert sum(p.numel() for p in net.parameters()) < 1_000_000


def test_unsure_candidates_are_averaged_with_their_mirror_image_and_sure_ones_are_not(monkeypatch):
    torch.manual_seed(0)
    net = level_classifier.LevelNet().eval()  # untrained: near-uniform probabilities, unsure of every patch
    image = np.random.default_rng(3).random((60, 60, 80)).astype(np.float32)
    centre = np.array([[27.0, 30.0, 40.0]])
    mirrored = np.ascontiguousarray(image[::-1])
    centre_m = np.array([[60.0 - 27.0, 30.0, 40.0]])  # the same patch, mirrored (cut_patch starts at centre - 24)
    # (normalised on a subsample of the patch, so equal to ~1e-4)
    assert np.allclose(
        level_classifier.patches_at(mirrored, centre_m)[0, 0],
        level_classifier.patches_at(image, centre)[0, 0, ::-1],
        atol=1e-3,
    )
    both = np.exp(level_classifier.class_log_probabilities(net, image, centre))
    assert both.max() < level_classifier.MIRROR_BELOW
    assert np.allclose(both, np.exp(level_classifier.class_log_probabilities(net, mirrored, centre_m)), atol=1e-4)
    monkeypatch.setattr(level_classifier, "MIRROR_BELOW", 0.0)  # every patch counts as sure: single views only
    one = np.exp(level_classifier.class_log_probabilities(net, image, centre))
    other = np.exp(level_classifier.class_log_probabilities(net, mirrored, centre_m))
    assert np.abs(one - other).max() > 1e-2  # the single views differ: the average is what makes it symmetric
    assert np.allclose(both, 0.5 * (one + other), atol=1e-5)
    # Two candidates, the threshold between their top probabilities: only the less sure one is averaged.
    centres = np.array([[27.0, 30.0, 40.0], [30.0, 34.0, 30.0]])
    single = np.exp(level_classifier.class_log_probabilities(net, image, centres))
    tops = single.max(axis=1)
    assert abs(tops[0] - tops[1]) > 1e-3
    monkeypatch.setattr(level_classifier, "MIRROR_BELOW", float(tops.mean()))
    mixed = np.exp(level_classifier.class_log_probabilities(net, image, centres))
    sure = int(np.argmax(tops))
    assert np.allclose(mixed[sure], single[sure]) and not np.allclose(mixed[1 - sure], single[1 - sure], atol=1e-3)


def test_training_samples_carry_the_class_of_the_disc_they_show(phantoms, tmp_path):
    case = data.load_case(data.make_phantom_case(11, tmp_path))
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(12):
        img, cls = level_classifier.level_sample(case, rng)
        assert img.shape == (1,) + level_classifier.PATCH_2MM and np.isfinite(img).all() and img.max() > 0
        seen.add(cls)
    assert seen <= {0, 1, 2, 3} and len(seen) >= 2
    # With a single disc left in the case, the class is that disc's, or now and then "not a disc".
    code, info = next((c, i) for c, i in case.discs.items() if i["name"] == "T12-L1")
    only = data.Case(case.labels, case.tissue, None, {code: info})
    drawn = [level_classifier.level_sample(only, rng)[1] for _ in range(8)]
    assert set(drawn) <= {0, level_classifier.NOT_A_DISC} and drawn.count(0) >= 4


def _chain(n_components: int):
    centres = np.array([[0.0, 0.0, 36.0 * r] for r in range(n_components)])
    return np.zeros((n_components, len(data.LEVELS))), centres


def _confident(classes) -> np.ndarray:
    """Log-probabilities of a classifier 95 % sure of each class in `classes`."""
    logp = np.full((len(classes), 3), np.log(0.025))
    logp[np.arange(len(classes)), classes] = np.log(0.95)
    return logp


@pytest.mark.parametrize("n_lumbar", [4, 5, 6])
def test_the_classifier_decides_the_lumbar_count_as_far_as_its_accuracy_carries(n_lumbar, monkeypatch):
    # Lumbosacral at the bottom, n_lumbar - 1 lumbar discs, then thoracic ones: thickness and footprint are the
    # same everywhere, so only the classifier can tell where the thoracolumbar junction is.
    from SpineLocalizerLib.networks import sequence_matching

    classes = [2] + [1] * (n_lumbar - 1) + [0] * 4
    responses, centres = _chain(len(classes))
    heights, areas = np.full(len(classes), 8.0), np.full(len(classes), 1000.0)
    kwargs = dict(heights_mm=heights, areas_mm2=areas, sacrum_below=True, class_logp=_confident(classes))
    # With its junction error on unseen scanners (JUNCTION_ERROR_UNSEEN) one patch cannot outweigh the prevalence
    # of five: five is kept and the classifier's reading is reported.
    overruled: dict = {}
    assert _match(responses, centres, None, overruled=overruled, **kwargs)[1:3] == (5, 0)
    assert overruled == ({} if n_lumbar == 5 else {"count": n_lumbar})
    # A classifier right 99 % of the time at the junction would carry its reading.
    monkeypatch.setattr(sequence_matching, "COUNT_EVIDENCE_CAP", float(np.log(0.99 / 0.01)))
    _, count, shift, names = _match(responses, centres, None, **kwargs)
    assert (count, shift) == (n_lumbar, 0)
    assert names[n_lumbar] == "T12-L1" and names[0].endswith("-S1")


def test_a_lumbosacral_patch_anchors_a_chain_cut_at_the_bottom():
    # The lowest visible disc is lumbar, not lumbosacral (L5-S1 below the field of view): shift 1.
    classes = [1, 1, 1, 1, 0, 0, 0]
    responses, centres = _chain(len(classes))
    _, count, shift, names = _match(responses, centres, None, class_logp=_confident(classes))
    assert (count, shift) == (5, 1) and names[shift] == "L4-L5"
    assert level_names(5)[5] == "T12-L1"


def _confident4(classes) -> np.ndarray:
    logp = np.full((len(classes), 4), np.log(0.02))
    logp[np.arange(len(classes)), classes] = np.log(0.94)
    return logp


def test_a_sacral_candidate_below_the_lumbosacral_disc_is_not_named(monkeypatch):
    # Bottom-up: a candidate in the sacrum (class 3), the lumbosacral disc, four lumbar, four thoracic discs.
    classes = [3, 2, 1, 1, 1, 1, 0, 0, 0, 0]
    responses, centres = _chain(len(classes))
    _, count, shift, names = _match(responses, centres, None, sacrum_below=True, class_logp=_confident4(classes))
    assert (count, shift) == (5, -1)
    assert names[1 + shift].endswith("-S1") and names[5 + shift] == "L1-L2"
    # Read as a disc (a three-class classifier cannot say otherwise), it would add a lumbar vertebra.
    three = _confident4(classes)[:, :3]
    three[0] = np.log([0.02, 0.02, 0.96])
    overruled: dict = {}
    assert _match(responses, centres, None, sacrum_below=True, class_logp=three, overruled=overruled)[1:3] == (5, 0)
    assert overruled == {"count": 6}  # (five kept: one patch's evidence is capped, sequence_matching)
    from SpineLocalizerLib.networks import sequence_matching

    monkeypatch.setattr(sequence_matching, "COUNT_EVIDENCE_CAP", 10.0)
    assert _match(responses, centres, None, sacrum_below=True, class_logp=three)[1:3] == (6, 0)


def _disc_stack(n_discs: int):
    """label_discs arguments for a probability map of `n_discs` flat discs 36 mm apart (2 mm canonical grid),
    with no heatmap response, and the discs' k indices."""
    from SpineLocalizerLib.networks.canonical import CanonicalGrid

    size = (40, 40, 200)
    ks = [10 + 18 * r for r in range(n_discs)]
    prob = np.zeros(size, dtype=np.float32)
    for k in ks:
        prob[10:30, 12:28, k - 2 : k + 3] = 0.95
    grid = CanonicalGrid(origin=np.zeros(3), size=size, spacing=2.0)
    heat4 = np.zeros((len(data.LEVELS), 20, 20, 100), dtype=np.float32)
    box = tuple(slice(0, n) for n in size)
    return (prob, heat4, np.zeros(3, int), box, grid, None), ks


def test_label_discs_leaves_a_sacral_candidate_unlabelled():
    from SpineLocalizerLib.networks.labeling import label_discs

    args, ks = _disc_stack(10)
    classes = [3, 2, 1, 1, 1, 1, 0, 0, 0, 0]

    def classify(centres_vox):
        assert len(centres_vox) == len(classes)
        return _confident4(classes)

    out, _, count, _, _ = label_discs(*args, classify=classify)
    assert count == 5
    assert out[20, 20, ks[0]] == 0  # the sacral candidate
    assert out[20, 20, ks[1]] == 124 and out[20, 20, ks[5]] == 120  # L5-S1 and L1-L2 (codes 100 + upper)


def test_the_longest_chain_keeps_the_spine_and_drops_blobs_beside_it():
    from SpineLocalizerLib.networks.labeling import _longest_chain

    spine = [[0.0, 0.0, 36.0 * r] for r in range(6)]
    blobs = [[0.0, -70.0, 50.0], [0.0, -75.0, 90.0], [0.0, 5.0, 40.0]]  # bowel in front; a fragment 4 mm up
    centres = np.array(sorted(spine + blobs, key=lambda c: c[2]))
    chain = centres[_longest_chain(centres)]
    assert len(chain) == 6 and np.allclose(chain[:, 1], 0.0)
    # One missed disc (72 mm gap) does not break the chain.
    gap = np.array([c for k, c in enumerate(spine) if k != 3])
    assert len(_longest_chain(gap)) == 5
    # A lordotic lumbar spine: L5-S1 19 mm in front of L4-L5 and 27 mm lower is still the next disc, and with
    # the lowest two candidates both able to start the chain, the one in line (L4-L5) is not dropped.
    lordotic = np.array([[0.0, 55.0, 100.0], [8.0, 36.0, 127.0], [0.0, 29.0, 163.0], [0.0, 31.0, 201.0]])
    assert list(_longest_chain(lordotic)) == [0, 1, 2, 3]


def test_a_chain_found_outside_the_spine_box_needs_the_classifier_to_call_it_discs():
    from SpineLocalizerLib.networks.labeling import label_discs

    args, _ = _disc_stack(6)
    discs = _confident4([2, 1, 1, 1, 1, 0])
    noise = _confident4([3, 3, 3, 3, 1, 3])
    out, conf, _, _, _ = label_discs(*args, classify=lambda c: discs, outside_spine=True)
    assert len(conf) == 6 and out.any()
    out, conf, _, message, _ = label_discs(*args, classify=lambda c: noise, outside_spine=True)
    assert conf == {} and not out.any() and "no chain" in message
    # Inside a located spine the same candidates are still labelled (the gate is for the wide search only).
    assert len(label_discs(*args, classify=lambda c: noise)[1]) > 0


def test_two_pieces_of_one_disc_are_one_candidate():
    from SpineLocalizerLib.networks.labeling import _fragment_groups, label_discs

    centres = np.array([[0.0, 0.0, 0.0], [14.0, 12.0, 8.0], [0.0, 0.0, 36.0], [0.0, 60.0, 40.0]])
    assert sorted(map(sorted, _fragment_groups(centres))) == [[0, 1], [2], [3]]  # far behind: not a piece of it
    args, ks = _disc_stack(7)
    prob = args[0]
    k = ks[3]
    prob[10:30, 12:28, k - 2 : k + 3] = 0.0
    prob[10:18, 12:28, k - 4 : k + 1] = 0.95  # the disc broken into a left and a right piece, one 4 mm higher
    prob[22:30, 12:28, k - 2 : k + 3] = 0.95
    seen = []

    def classify(c):
        seen.append(len(c))
        return _confident4([2, 1, 1, 1, 1, 0, 0])

    out, conf, count, _, _ = label_discs(*args, classify=classify)
    assert seen == [7] and len(conf) == 7 and count == 5
    assert out[12, 20, k - 3] == out[26, 20, k] == 121  # both pieces carry L2-L3
