import numpy as np
import pytest
from SpineLocalizerLib.geometry import Frame, angle_between_deg, half_rotation, rotation_about, rotation_from_euler_deg


def test_rotation_about_turns_x_into_y_for_a_quarter_turn_about_z():
    r = rotation_about(np.array([0, 0, 1.0]), np.pi / 2)
    assert np.allclose(r @ [1, 0, 0], [0, 1, 0])
    assert np.isclose(np.linalg.det(r), 1.0)


def test_half_rotation_squares_back():
    r = rotation_from_euler_deg(20, -35, 50)
    h = half_rotation(r)
    assert np.allclose(h @ h, r, atol=1e-12)


def test_frame_round_trip_and_axes():
    f = Frame(np.array([10.0, -5.0, 3.0]), rotation_from_euler_deg(10, 20, 30))
    pts = np.random.default_rng(0).normal(size=(20, 3)) * 50
    assert np.allclose(f.to_parent(f.to_local(pts)), pts)
    assert np.allclose(f.to_parent(np.array([0, 0, 1.0])) - f.origin, f.w)


@pytest.mark.parametrize("a,b,expected", [([1, 0, 0], [0, 1, 0], 90.0), ([1, 0, 0], [-1, 0, 0], 180.0)])
def test_angle_between(a, b, expected):
    assert angle_between_deg(np.array(a), np.array(b)) == pytest.approx(expected)


def test_undirected_angle_ignores_sign():
    assert angle_between_deg(np.array([0, 0, 1.0]), np.array([0, 0.1, -1.0]), undirected=True) < 6.0
