"""The calibrated per-disc quality reads the lumbar count's doubt: a spine counted wrong has every name wrong, so
a doubted count makes every disc doubtful, and that alone never passes for a flipped image (pipeline.py)."""

from __future__ import annotations

import pytest
from SpineLocalizerLib.pipeline import _doubtful_beyond_count
from SpineLocalizerLib.planning.quality import FEATURES, calibration, count_doubt, disc_quality


@pytest.mark.parametrize(
    ("naming", "doubt"),
    [
        ({"lumbar_count": 5, "count_basis": "assumed", "images_favour": 5}, 0.0),
        ({"lumbar_count": 5, "count_basis": "assumed", "images_favour": 5, "classifier_count": 4}, 1.0),
        ({"lumbar_count": 5, "count_basis": "assumed", "images_favour": 6}, 1.0),
        ({"lumbar_count": 4, "count_basis": "given", "images_favour": 5, "classifier_count": 5}, 0.0),
        ({"lumbar_count": 4, "count_basis": "seen", "images_favour": 4}, 0.0),
        (None, 0.0),
    ],
)
def test_count_doubt(naming, doubt):
    assert count_doubt(naming) == doubt


def _clear_disc(**changes):
    # Evidence of a disc the networks found clearly (the median disc of the calibration phantoms).
    feats = {
        "class_logit": 9.0,
        "disc_probability": 0.95,
        "heatmap_response": 0.2,
        "thinness": 0.42,
        "spacing_residual": 0.02,
        "count_doubt": 0.0,
        "lumbosacral": 0.0,
    }
    feats.update(changes)
    return feats


def test_the_shipped_calibration_reads_every_feature_and_a_doubted_count_flags_a_clear_disc():
    model = calibration()
    assert tuple(model["features"]) == FEATURES
    threshold = float(model["threshold"])
    assert disc_quality(_clear_disc(), model) >= threshold
    assert disc_quality(_clear_disc(count_doubt=1.0), model) < threshold
    assert disc_quality(_clear_disc(disc_probability=0.5), model) < disc_quality(_clear_disc(), model)


def _plan(codes, quality_factor, count_aside, threshold=0.3):
    return {
        "doubts": [{"code": c, "reason": c} for c in codes],
        "quality": {"quality_factor": quality_factor, "quality_if_count_right": count_aside, "threshold": threshold},
    }


def test_only_doubts_beyond_the_count_start_the_orientation_check():
    # A flipped plan must beat the given one's count-aside quality by FLIP_MIN_GAIN: from 0.9 it cannot.
    assert not _doubtful_beyond_count(_plan(["count_disputed", "low_disc_quality"], 0.01, 0.9))
    assert _doubtful_beyond_count(_plan(["count_disputed", "low_disc_quality"], 0.01, 0.5))
    assert _doubtful_beyond_count(_plan(["lumbosacral_missing"], 0.9, 0.9))
    assert not _doubtful_beyond_count(_plan([], 0.9, 0.9))
