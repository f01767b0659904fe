"""A plan whose lumbar discs curve backwards (kyphotic) is doubted: the sign of an image flipped front to back
against its header that the networks still plan (planning/lumbar_curve.py)."""

from __future__ import annotations

import numpy as np
import pytest
from SpineLocalizerLib.planning.doubts import plan_doubts
from SpineLocalizerLib.planning.lumbar_curve import BACKWARD_CURVE_DOUBT_MM, backward_curve_mm


def _discs(apex_mm: float, n: int = 6) -> list[dict]:
    """n disc centres 35 mm apart head to foot on an arc whose middle lies `apex_mm` along +y (posterior) of the
    chord, listed foot first (the order must not matter)."""
    s = np.linspace(-1.0, 1.0, n)
    return [{"label": f"D{k}", "centroid_lps": [2.0, apex_mm * (1 - t**2), 87.5 * t]} for k, t in enumerate(s)]


def _plan(discs: list[dict]) -> dict:
    return {"lumbar_count": 5, "naming": {}, "quality": {}, "discs": discs}


def test_a_lordotic_spine_is_not_doubted_and_a_kyphotic_one_is_first():
    lordotic = _discs(-15.0)
    assert backward_curve_mm(lordotic) == pytest.approx(-15.0 * np.mean(1 - np.linspace(-1, 1, 6)[1:-1] ** 2))
    assert plan_doubts(_plan(lordotic)) == []
    kyphotic = _discs(+15.0)
    doubts = plan_doubts(_plan(kyphotic))
    assert doubts[0]["code"] == "curve_backwards" and "flipped front to back" in doubts[0]["reason"]
    # A flat spine sits at the line: not doubted.
    assert plan_doubts(_plan(_discs(0.5 * BACKWARD_CURVE_DOUBT_MM))) == []


def test_too_few_discs_say_nothing_about_the_curve():
    assert backward_curve_mm(_discs(15.0, n=3)) is None
    assert backward_curve_mm([{"label": "D0"}] * 5) is None


def test_a_real_localizer_flipped_front_to_back_that_plans_confidently_is_doubted(real_data):
    """vertebrae_t2 vb2_04 flipped front to back (header unchanged) was planned with no doubt at all."""
    from SpineLocalizerLib.networks.localizer_like import resample_to_localizer
    from SpineLocalizerLib.pipeline import _flipped, plan_from_localizer
    from SpineLocalizerLib.volume_io import read_volume

    image = resample_to_localizer(read_volume(real_data / "vertebrae_t2" / "vb2_04_image.nii.gz"))
    given, _ = plan_from_localizer([image], check_orientation=False)
    assert "curve_backwards" not in [d["code"] for d in given["doubts"]]
    flipped, _ = plan_from_localizer([_flipped(image, 1)], check_orientation=False)
    assert "curve_backwards" in [d["code"] for d in flipped["doubts"]]
