"""Reader-landmark measurements reproduce hand-computed values exactly."""

import json

import numpy as np
import pytest
from SpineMeasureLib import geometry
from SpineMeasureLib.landmark_mode import load_landmarks, measure_landmarks


def _by_key(rows):
    return {(r.level, r.measurement): r for r in rows}


def test_every_reader_measurement_from_hand_made_landmarks():
    data = {
        "reader": "R1",
        "levels": {
            "L4-L5": {
                "points": {
                    "disc_superior": [0, 0, 5.0],
                    "disc_inferior": [0, 0, -4.0],  # 9 mm
                    "disc_posterior_mid": [0, 10, 0],
                    "spinous_mid": [0, 22, 0],  # 12 mm
                    "sac_anterior": [0, 11, 0],
                    "sac_posterior": [0, 21.5, 0],  # 10.5 mm
                    "upper_pedicle_inferior_left": [15, 15, 9],
                    "lower_pedicle_superior_left": [15, 15, -11],  # 20
                    "midline_anterior": [0, 0, 0],
                    "midline_posterior": [0, 30, 0],
                    "facet_left_anterior": [10, 14, 0],
                    "facet_left_posterior": [20, 24, 0],  # 45 deg
                    "sap_tip_left": [10, 14, 0],
                    "floor_left_a": [5, 10, 0],
                    "floor_left_b": [15, 10, 0],  # 4 mm
                    "roof_left_a": [10, 14, 0],
                    "roof_left_b": [10 + np.sqrt(3), 13, 0],  # 30 deg
                },
                "contours": {
                    "dural_sac": [[-5, 11, 0], [5, 11, 0], [5, 21, 0], [-5, 21, 0]],  # 100 mm2
                    "herniation": [[-2, 10, 0], [2, 10, 0], [0, 13, 0]],  # 6 mm2
                    "canal": [[-10, 10, 0], [10, 10, 0], [10, 22, 0], [-10, 22, 0]],  # 240 mm2
                },
            },
            "L3": {
                "contours": {
                    "psoas_left": [[30, 0, 0], [50, 0, 0], [50, 30, 0], [30, 30, 0]],
                    "psoas_right": [[-30, 0, 0], [-40, 0, 0], [-40, 30, 0]],
                }
            },
        },
    }
    rows = _by_key(measure_landmarks(data))
    expected = {
        ("L4-L5", "disc_height_mm"): 9.0,
        ("L4-L5", "canal_diameter_mm"): 12.0,
        ("L4-L5", "dural_sac_ap_mm"): 10.5,
        ("L4-L5", "canal_area_mm2"): 100.0,
        ("L4-L5", "herniation_ratio"): 6.0 / 240.0,
        ("L4-L5", "foraminal_height_left_mm"): 20.0,
        ("L4-L5", "facet_angle_left_deg"): 45.0,
        ("L4-L5", "lateral_recess_depth_left_mm"): 4.0,
        ("L4-L5", "lateral_recess_angle_left_deg"): 30.0,
        ("L3", "psoas_area_left_mm2"): 600.0,
        ("L3", "psoas_area_right_mm2"): 150.0,
        ("L3", "psoas_asymmetry_mm2"): 450.0,
    }
    for key, value in expected.items():
        assert rows[key].value == pytest.approx(value, abs=1e-3), key
        assert rows[key].method == "reader:R1"
    assert rows[("L4-L5", "lateral_recess_angle_left_deg")].flags == []  # 30 is not below 30
    assert "lateral recess stenosis" not in rows[("L4-L5", "lateral_recess_depth_left_mm")].flags
    assert rows[("L4-L5", "canal_area_mm2")].flags == []


def test_missing_landmarks_are_reported_not_invented():
    rows = measure_landmarks({"levels": {"L5-S1": {"points": {"disc_superior": [0, 0, 4]}, "contours": {}}}})
    assert len(rows) == 1
    assert rows[0].status == "not measurable" and rows[0].value is None
    assert "disc_inferior" in rows[0].reason


def test_disc_height_along_the_normal_when_given():
    data = {
        "levels": {"L1-L2": {"points": {"disc_superior": [0, 3, 8], "disc_inferior": [0, 0, 0]}, "normal": [0, 0, 1]}}
    }
    assert measure_landmarks(data)[0].value == pytest.approx(8.0)


@pytest.mark.parametrize(
    "apex,expected",
    [
        ([0, 12, 0], (1, "A")),
        ([0, 17, 0], (2, "A")),
        ([0, 22, 0], (3, "A")),
        ([-7, 17, 0], (2, "B")),
        ([14, 12, 0], (1, "C")),
    ],
)
def test_msu_class_hand_cases(apex, expected):
    # Intra-facet line y = 20 between tips at x = +-10; disc border y = 10; left = +x, posterior = +y.
    size, zone, _ = geometry.msu_class(apex, [apex[0], 10, 0], [10, 20, 0], [-10, 20, 0], [1, 0, 0], [0, 1, 0])
    assert (size, zone) == expected


def test_landmark_file_errors_are_clear(tmp_path):
    bad = tmp_path / "l.json"
    bad.write_text(json.dumps({"coordinate_system": "RAS", "levels": {}}))
    with pytest.raises(ValueError, match="LPS"):
        load_landmarks(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_landmarks(bad)


def test_polygon_area_is_orientation_independent():
    square = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], dtype=float)
    rot = np.array([[1, 0, 0], [0, np.cos(0.7), -np.sin(0.7)], [0, np.sin(0.7), np.cos(0.7)]])
    assert geometry.polygon_area(square @ rot.T + 5) == pytest.approx(100.0)
