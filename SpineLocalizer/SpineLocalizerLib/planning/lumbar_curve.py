"""Which way the planned lumbar discs curve in the sagittal plane: a sign of an image flipped front to back.

A lumbar spine is lordotic: its middle discs lie in front of the line from its highest to its lowest disc
(L1-S1 lordosis is ~40-60 deg in asymptomatic adults standing, Roussouly et al., Spine 2005; less supine, but
still lordotic). Flipping an image's content front to back while its header stays makes the curve kyphotic,
and on real scans the networks then still plan it, sometimes without any other doubt (docs/results.md, Images
flipped against their header). The curve is read from the disc centres in patient coordinates (LPS, +y
posterior), so it tests the header against the anatomy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# A plan whose inner discs lie on average this far behind the chord is doubted. Measured (`$PY
# Testing/bench/orientation_real.py`): as given, the 29 real volumes of ../shared/data/real curve -4.5 to -26 mm
# (the one above 0, +0.7 mm, is a plan of four upper discs) and held-out phantoms -6 to -17 mm; flipped front to
# back, 21 of the 29 curve more than +3 mm backwards.
BACKWARD_CURVE_DOUBT_MM = 3.0
MIN_DISCS = 4  # two inner discs at least: with one, a single misplaced centre decides


def backward_curve_mm(discs: Sequence[Mapping[str, Any]]) -> float | None:
    """Mean distance (mm, + posterior) of the inner discs from the chord between the highest and the lowest disc,
    along the patient's AP axis; None with fewer than `MIN_DISCS` discs."""
    if len(discs) < MIN_DISCS or any("centroid_lps" not in d for d in discs):
        return None
    centres = np.array([d["centroid_lps"] for d in discs], dtype=float)
    centres = centres[np.argsort(-centres[:, 2])]  # head first
    top, bottom = centres[0], centres[-1]
    chord = top - bottom
    length2 = float(chord @ chord)
    if length2 < 1e-6:
        return None
    offsets = []
    for p in centres[1:-1]:
        on_chord = bottom + ((p - bottom) @ chord / length2) * chord
        offsets.append(p[1] - on_chord[1])
    return float(np.mean(offsets))
