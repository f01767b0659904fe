"""Label maps of other tools: detection of the convention, conversion to the project's codes, what each cannot
give; the SPINEPS importer on the real crops of ../shared/data/real/spineps_format."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from SpineLocalizerLib.labels import STRUCTURE_CODES, VERTEBRA_CODES
from SpineLocalizerLib.volume_io import Volume
from SpineMeasureLib.cli import main as measure_main
from SpineMeasureLib.label_conventions import convert, detect_convention

S = STRUCTURE_CODES


def _volume(a: np.ndarray) -> Volume:
    return Volume(a, (1.0, 1.0, 1.0), np.zeros(3), np.eye(3))


def _column(body_codes, disc_codes, canal=None, shape=(40, 60, 90)):
    """A toy spine along +z (superior) in LPS: bodies 20 mm tall at y 10-30 with 8 mm discs between, the canal
    behind them (y 34-44), bottom to top. Returns the array and each body's / disc's z range."""
    a = np.zeros(shape, dtype=np.int32)
    z, spans = 5, []
    for i, code in enumerate(body_codes):
        a[10:30, 10:30, z : z + 20] = code
        spans.append((z, z + 20))
        z += 20
        if i < len(disc_codes):
            a[10:30, 10:30, z : z + 8] = disc_codes[i]
            z += 8
    if canal is not None:
        a[15:25, 34:44, 5:z] = canal
    return a, spans


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({41, 42, 45, 46, 47, 48, 49, 50}, "spineps"),  # a SPINEPS subregion map (also in total_mr's range)
        ({49, 50, 60, 61, 62, 100}, "spineps"),
        ({18, 19, 20, 21, 48, 49}, "totalsegmentator"),
        ({1, 2, 41, 42, 92, 100, 50}, "totalspineseg"),
        ({23, 52, 68, 69, 70, 71}, "vibe"),
    ],
)
def test_each_convention_is_told_from_its_values(values, expected):
    assert detect_convention(values) == expected


def test_one_unknown_code_fits_no_convention_and_says_what_to_do():
    with pytest.raises(ValueError, match="project's codes") as err:
        detect_convention({77})
    assert "--labels-from" in str(err.value)


def test_spineps_bodies_and_discs_take_levels_from_the_instance_mask():
    inst, _ = _column([23, 22], [122])  # L4 below, L3 above, the L3-L4 disc between (100 + upper vertebra)
    sem = np.where(inst == 122, 100, np.where(inst > 0, 50, 0))
    sem[15:25, 34:44, 5:60] = 61
    sem[2:8, 40:46, 10:20] = 45  # a left superior articular process
    out = convert(_volume(sem), "spineps", _volume(inst))
    a = out.labels.array
    assert set(np.unique(a[inst == 23])) == {VERTEBRA_CODES["L4"]}
    assert set(np.unique(a[inst == 122])) == {100 + VERTEBRA_CODES["L3"]}
    assert (a[sem == 61] == S["dural_sac"]).all()
    assert (a[sem == 45] == S["superior_articular_process"]).all()
    assert out.cannot("foraminal_height_left_mm") and "pedicle" in out.cannot("foraminal_height_left_mm")
    assert out.cannot("canal_area_mm2") is None


def test_spineps_without_its_instance_mask_says_bodies_and_discs_have_no_level():
    sem = np.zeros((20, 20, 20), dtype=np.int32)
    sem[5:10, 5:10, 5:10] = 50
    sem[5:10, 12:15, 5:10] = 61
    out = convert(_volume(sem), "spineps", None)
    assert not np.isin(out.labels.array, list(VERTEBRA_CODES.values())).any()
    assert any("instance mask" in n for n in out.notes)


def test_totalspineseg_vertebrae_are_split_into_body_and_arch_at_the_canal():
    a, _ = _column([45, 44], [95], canal=2)  # L5, L4 and the L4-L5 disc, whole vertebrae
    a[10:30, 44:52, 5:25] = 45  # L5's arch, behind the canal
    out = convert(_volume(a), "totalspineseg").labels.array
    assert (out[10:30, 10:30, 5:25] == VERTEBRA_CODES["L5"]).all()  # the body stays the vertebra
    assert (out[10:30, 46:52, 5:25] == S["lamina"]).all()  # behind the canal's front wall: the arch
    assert (out[10:30, 10:30, 25:33] == 100 + VERTEBRA_CODES["L4"]).all()


def test_vibe_discs_are_named_upward_from_the_sacrum():
    a, spans = _column([23, 69, 69], [68, 68])  # sacrum, two bodies, one disc label for every disc
    out = convert(_volume(a), "vibe")
    lower, upper = spans[0][1], spans[1][1]
    assert (out.labels.array[20, 20, lower + 2] == 100 + VERTEBRA_CODES["L5"]).all()
    assert (out.labels.array[20, 20, upper + 2] == 100 + VERTEBRA_CODES["L4"]).all()
    assert "counted up from the sacrum" in out.levels


def test_totalsegmentator_has_no_dural_sac_to_measure_a_canal_area():
    a, _ = _column([18, 19], [20])
    out = convert(_volume(a), "totalsegmentator")
    assert "dural sac" in out.cannot("canal_area_mm2")
    assert out.cannot("psoas_area_left_mm2") is None


def _rows(folder):
    with open(folder / "measurements.csv", newline="") as f:
        return {(r["level"], r["measurement"]): r for r in csv.DictReader(f)}


def test_spineps_lumbar_ct_crop_gives_facet_angles(real_data, tmp_path, capsys):
    crop = real_data / "spineps_format"
    out = tmp_path / "ct"
    args = [str(crop / "sub-ct_label-22_ct.nii.gz"), "--labels", str(crop / "sub-ct_seg-subreg_label-22_msk.nii.gz")]
    args += ["--instances", str(crop / "sub-ct_seg-vert_label-22_msk.nii.gz"), "--out", str(out)]
    assert measure_main(args) == 0
    rows = _rows(out)
    for level in ("L2-L3", "L3-L4"):
        for side in ("left", "right"):
            r = rows[(level, f"facet_angle_{side}_deg")]
            assert r["status"] == "ok" and r["source"] == "imported spineps"
            assert 5.0 < float(r["value"]) < 80.0  # lumbar facets: oblique between sagittal and coronal
        # No disc label in the crop: its plane is taken between the bodies and the disc rows say so.
        assert "no disc" in rows[(level, "disc_height_mm")]["reason"]
        assert "pedicle" in rows[(level, "foraminal_height_left_mm")]["reason"]
    assert (out / "labels_project_codes.nii.gz").exists() and (out / "level_L3-L4.png").exists()


def test_spineps_cervical_mri_crop_gives_canal_and_disc_values(real_data, tmp_path, capsys):
    crop = real_data / "spineps_format"
    out = tmp_path / "mri"
    args = [str(crop / "sub-mri_label-6_T2w.nii.gz"), "--labels", str(crop / "sub-mri_seg-subreg_label-6_msk.nii.gz")]
    args += ["--instances", str(crop / "sub-mri_seg-vert_label-6_msk.nii.gz"), "--out", str(out)]
    assert measure_main(args) == 0
    rows = _rows(out)
    for level in ("C5-C6", "C6-C7"):
        for m in ("dural_sac_ap_mm", "canal_area_mm2", "canal_diameter_mm", "disc_height_mm"):
            assert rows[(level, m)]["status"] == "ok", rows[(level, m)]
        # The sac lies inside the bony canal: its AP is the smaller.
        assert float(rows[(level, "dural_sac_ap_mm")]["value"]) < float(rows[(level, "canal_diameter_mm")]["value"])
        assert "herniation label" in rows[(level, "msu_class")]["reason"]
    assert "C5, C6, C7" in capsys.readouterr().err  # bodies above T8 are outside the project's codes: said
