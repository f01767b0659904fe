"""Automatic measurement from label maps against phantom truth, and its handling of bad input."""

import json

import numpy as np
import pytest
from SpineLocalizerLib.volume_io import Volume, read_volume, write_volume
from SpineMeasureLib.cli import main as measure_main
from SpineMeasureLib.muscles import areas_per_slice
from SpineMeasureLib.validation import compare_case, summarise


@pytest.fixture(scope="module")
def measured(phantoms):
    folder, truth = phantoms.get(21, highres=True, highres_spacing_mm=0.8)
    return folder, truth, compare_case(folder)


def test_auto_measurements_match_truth(measured):
    _, truth, pairs = measured
    table = summarise(pairs)
    for key in (
        "disc_height_mm",
        "canal_diameter_mm",
        "dural_sac_ap_mm",
        "lateral_recess_depth_left_mm",
        "foraminal_height_left_mm",
    ):
        assert table[key]["mae"] < 0.7, (key, table[key])
    for key in ("facet_angle_left_deg", "facet_angle_right_deg", "offset_angle_deg"):
        assert table[key]["mae"] < 2.5, (key, table[key])
    for key in ("canal_area_mm2", "psoas_area_left_mm2", "psoas_area_right_mm2"):
        assert table[key]["mean_abs_rel_error"] < 0.05, (key, table[key])
    assert table["msu_class"]["agreement"] >= 0.8


def test_cli_writes_rows_with_landmarks_and_pictures(measured, tmp_path):
    folder, truth, _ = measured
    out = tmp_path / "m"
    assert (
        measure_main(
            [str(folder / "highres.nii.gz"), "--labels", str(folder / "highres_labels.nii.gz"), "--out", str(out)]
        )
        == 0
    )
    rows = json.loads((out / "measurements.json").read_text())
    keys = {"level", "measurement", "value", "unit", "method", "flags", "landmarks"}
    assert all(keys <= set(r) for r in rows)
    canal = [r for r in rows if r["measurement"] == "canal_diameter_mm"]
    assert canal and all(len(r["landmarks"]) == 2 for r in canal)
    assert (out / "level_L4-L5.png").exists() and (out / "measurements.csv").exists()


def test_missing_structures_are_not_measurable_not_invented(measured, tmp_path):
    folder, truth, _ = measured
    labels = read_volume(folder / "highres_labels.nii.gz")
    arr = labels.array.copy()
    arr[np.isin(arr, (8, 10))] = 0  # remove superior articular processes and facet joints
    path = tmp_path / "nofacets.nii.gz"
    write_volume(Volume(arr, labels.spacing, labels.origin, labels.direction), path)
    out = tmp_path / "m"
    assert measure_main(["--labels", str(path), "--out", str(out)]) == 0
    rows = json.loads((out / "measurements.json").read_text())
    recess = [r for r in rows if r["measurement"].startswith(("lateral_recess", "facet_angle"))]
    assert recess and all(r["status"] == "not measurable" and r["value"] is None and r["reason"] for r in recess)
    assert any(r["measurement"] == "canal_diameter_mm" and r["status"] == "ok" for r in rows)


def test_bad_inputs_fail_clearly(measured, tmp_path, capsys):
    folder, truth, _ = measured
    labels = read_volume(folder / "highres_labels.nii.gz")
    empty = tmp_path / "empty.nii.gz"
    write_volume(Volume(np.zeros_like(labels.array), labels.spacing, labels.origin, labels.direction), empty)
    assert measure_main(["--labels", str(empty), "--out", str(tmp_path / "o1")]) == 2
    assert "empty" in capsys.readouterr().err
    assert (
        measure_main(
            [
                str(folder / "localizer.nii.gz"),
                "--labels",
                str(folder / "highres_labels.nii.gz"),
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert "different grids" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.real_data
def test_real_psoas_areas_per_slice_are_plausible(real_data):
    mask = read_volume(real_data / "axial_muscles" / "musclemap01_muscles.nii.gz")
    for code in (5, 6):  # psoas right, left (MuscleMap codes)
        areas = np.array([a for _, a in areas_per_slice(mask, code)]) / 100.0  # cm^2
        assert len(areas) >= 10
        # Sanity range 5-20 cm^2 (issue); the top slice or two only graze the muscle's origin.
        assert np.mean((areas >= 5.0) & (areas <= 20.0)) >= 0.85, areas.round(1)
        assert 5.0 <= np.median(areas) <= 20.0


def test_the_slicer_sample_loads_the_label_map_every_measurement_needs(measured):
    """The sample case of the Slicer modules (phantom.generate.SAMPLE_VOLUMES): measured from the labels it
    loads, nearly every measurement is made; from the disc labels alone (what it loaded before) few are."""
    from SpineLocalizerLib.phantom.generate import SAMPLE_VOLUMES
    from SpineMeasureLib.catalogue import Thresholds
    from SpineMeasureLib.measure_sources import measure_label_map

    folder, truth, _ = measured

    def ok_share(role):
        m = measure_label_map(
            read_volume(folder / truth["files"][role]),
            convention=None,
            instances=None,
            plan=None,
            lumbar_count=None,
            thresholds=Thresholds(),
            reference=None,
        )
        return sum(r.status == "ok" for r in m.rows) / len(m.rows), len(m.rows)

    label_roles = [role for _, role, is_label in SAMPLE_VOLUMES if is_label]
    best = max(ok_share(role)[0] for role in label_roles)
    discs_only, _ = ok_share("disc_labels")
    assert best > 0.9 and discs_only < 0.5, (best, discs_only)
