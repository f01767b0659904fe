"""Disc labeling without the classifier's weights (networks/labeling.py, sequence_matching.py): channels, sequence matching, shape priors, the sacrum."""

from __future__ import annotations

import numpy as np
import pytest
from SpineLocalizerLib.networks import data
from SpineLocalizerLib.networks.sequence_matching import level_names
from SpineLocalizerLib.networks.sequence_matching import match_sequence as _match


def test_lumbosacral_channel_whatever_the_lumbar_count():
    assert (
        data.level_channel("L4-S1")
        == data.level_channel("L5-S1")
        == data.level_channel("L6-S1")
        == data.LEVELS.index("LS")
    )
    assert data.level_channel("L5-L6") == data.LEVELS.index("L5-L6")
    assert level_names(4)[:3] == ["L4-S1", "L3-L4", "L2-L3"]


def test_sequence_matching_finds_the_count_and_a_cut_field_of_view():
    # Seven components 36 mm apart; heatmaps that answer for a five-lumbar spine whose L5-S1 is below the FOV.
    names = level_names(5)  # LS upwards
    centres = np.array([[0.0, 0.0, 36.0 * r] for r in range(7)])
    responses = np.zeros((7, len(data.LEVELS)))
    for r in range(7):
        responses[r, data.level_channel(names[r + 1])] = 0.8
    score, count, shift, matched = _match(responses, centres, None)
    assert (count, shift) == (5, 1)
    # With L5-S1 outside the field of view, six lumbar vertebrae fit equally well (lowest visible disc L4-L5,
    # two levels above L6-S1): forcing the count moves the shift, not the names.
    forced = _match(responses, centres, 6)
    from SpineLocalizerLib.networks.sequence_matching import COUNT_LOG_PRIOR

    assert forced[1:3] == (6, 2)
    assert forced[0] == pytest.approx(score - COUNT_LOG_PRIOR[5] + COUNT_LOG_PRIOR[6])  # only the count prior differs
    assert _match(responses, centres, 4)[0] < score


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
    heat4 = np.zeros((len(data.LEVELS), 16, 16, 56), dtype=np.float32)
    usable = _inside_images([image], grid, box)
    assert usable[16, 16, 80] and not usable[:, :, 100].any() and not usable[0].any()
    out, _, _, _, _ = label_discs(prob, heat4, np.zeros(3, int), box, grid, 5, usable=usable)
    assert out[16, 16, 104] == 0
    assert all(out[16, 16, k] > 0 for k in (10, 28, 46, 64, 82))
    # Without the footprint the blob would have been named as a disc.
    unfiltered, _, _, _, _ = label_discs(prob, heat4, np.zeros(3, int), box, grid, 5)
    assert unfiltered[16, 16, 104] > 0


def test_a_thin_but_wide_lumbar_disc_is_not_taken_for_a_thoracic_one(monkeypatch):
    # Bottom-up: L5-S1 .. L2-L3 thick, L1-L2 degenerated (as thin as a thoracic disc) but with a lumbar footprint,
    # then three small thin thoracic discs. The sacrum lies below the lowest disc.
    heights = np.array([10.0, 10.5, 10.0, 9.5, 5.2, 5.5, 5.0, 5.0])
    areas = np.array([900.0, 1000.0, 1000.0, 980.0, 960.0, 780.0, 700.0, 650.0])
    centres = np.array([[0.0, 0.0, 36.0 * r] for r in range(len(heights))])
    responses = np.zeros((len(heights), len(data.LEVELS)))
    with_footprint = _match(responses, centres, None, heights_mm=heights, sacrum_below=True, areas_mm2=areas)
    assert with_footprint[1:3] == (5, 0)
    # Thickness alone calls the degenerated disc T12-L1 and loses a lumbar vertebra when every count is as likely;
    # the prevalence prior on the count keeps five.
    assert _match(responses, centres, None, heights_mm=heights, sacrum_below=True)[1:3] == (5, 0)
    from SpineLocalizerLib.networks import sequence_matching

    monkeypatch.setattr(sequence_matching, "COUNT_LOG_PRIOR", {4: 0.0, 5: 0.0, 6: 0.0})
    assert _match(responses, centres, None, heights_mm=heights, sacrum_below=True)[1:3] == (4, 0)


def test_a_visible_sacrum_outweighs_one_lumbosacral_disc_the_classifier_calls_lumbar(monkeypatch):
    # Tuning phantom 60056 in miniature: five lumbar vertebrae, the classifier sure of every disc but the
    # lumbosacral one, which it calls lumbar (p = 0.94, lumbosacral 0.05). "L5-L6 with L6-S1 unseen below" then
    # names every disc as the classifier likes; only the sacrum in view below the lowest disc speaks against it.
    from SpineLocalizerLib.networks import levels as level_classifier

    names = level_names(5)
    centres = np.array([[0.0, 0.0, 36.0 * r] for r in range(9)])
    p = np.full((9, 4), 0.003)
    for r in range(9):
        p[r, level_classifier.class_of(names[r])] = 0.99
    p[0] = [0.003, 0.94, 0.05, 0.007]
    logp = np.log(p / p.sum(axis=1, keepdims=True))
    responses = np.zeros((9, len(data.LEVELS)))
    assert _match(responses, centres, None, sacrum_below=True, class_logp=logp)[1:3] == (5, 0)
    # Without the sacrum in view, one patch is too little evidence against the prevalence of six lumbar
    # vertebrae; with every count as likely, a sixth lumbar vertebra with its lowest disc below the field of view
    # would be the better reading of the same classifier output.
    assert _match(responses, centres, None, sacrum_below=False, class_logp=logp)[1] == 5
    from SpineLocalizerLib.networks import sequence_matching

    monkeypatch.setattr(sequence_matching, "COUNT_LOG_PRIOR", {4: 0.0, 5: 0.0, 6: 0.0})
    assert _match(responses, centres, None, sacrum_below=False, class_logp=logp)[1:3] == (6, 1)
