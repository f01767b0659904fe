import pytest
from SpineLocalizerLib.labels import all_labels, vertebra_sequence
from SpineLocalizerLib.phantom.params import Herniation, sample_params


def test_same_seed_same_parameters_and_different_seeds_differ():
    assert sample_params(11) == sample_params(11)
    assert sample_params(11) != sample_params(12)


@pytest.mark.parametrize(
    "overrides,name",
    [
        ({"size_scale": -1.0}, "size_scale"),
        ({"disc_height_mm": 0.0}, "disc_height_mm"),
        ({"lumbar_count": 3}, "lumbar_count"),
        ({"localizer_fov_mm": (120.0, 300.0, 400.0)}, "localizer_fov_mm"),
        ({"highres_spacing_mm": -0.5}, "highres_spacing_mm"),
        ({"contrast": "flair"}, "contrast"),
        ({"canal_ap_mm": {"L9-L10": 12.0}}, "canal_ap_mm"),
        ({"herniations": (Herniation("L4-L5", 4, "A"),)}, "herniation"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_parameter(overrides, name):
    with pytest.raises(ValueError, match=name):
        sample_params(5, **overrides)


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="lordosis"):
        sample_params(5, lordosis=3)


@pytest.mark.parametrize("count", [4, 5, 6])
def test_label_table_follows_the_lumbar_count(count):
    names = vertebra_sequence(count)
    assert names[-1] == "S1"
    assert names[-2] == f"L{count}"
    table = all_labels(count)
    assert table[f"L{count}-S1"] == 100 + table[f"L{count}"]
    assert f"L{count + 1}" not in table
