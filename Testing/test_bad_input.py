"""Bad input is refused with one line that says what is wrong, a non-zero exit status, no traceback, and the
output folder exactly as it was (SpineLocalizerLib/cli_errors.py, nifti_check.py, plan_file.py, json_files.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from SpineLocalizerLib.cli import main as localizer_main
from SpineLocalizerLib.phantom.cli import main as phantom_main
from SpineMeasureLib.cli import main as measure_main


def _snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _image(path: Path, array: np.ndarray) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 4.0))
    sitk.WriteImage(image, str(path), True)
    return path


@pytest.fixture(scope="module")
def planned(phantoms, tmp_path_factory):
    """A phantom localizer, its disc labels, and a plan of it in an output folder."""
    folder, truth = phantoms.get(32, lumbar_count=5)
    out = tmp_path_factory.mktemp("planned") / "plan"
    image, labels = folder / truth["files"]["localizer"], folder / truth["files"]["disc_labels"]
    assert localizer_main(["plan", str(image), "--discs", str(labels), "--out", str(out)]) == 0
    return image, labels, out


def _refused(capsys, run, out: Path, expect: str, codes=(1, 2)) -> str:
    before = _snapshot(out)
    code = run()
    err = capsys.readouterr().err
    assert code in codes, (code, err)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines and "Traceback" not in err, err
    assert any(expect in ln for ln in lines), err
    assert _snapshot(out) == before, "a refused run changed the output folder"
    assert not [p for p in out.parent.glob(f".{out.name}.*")], "staging litter"
    return err


def test_a_truncated_nifti_is_refused_not_read_as_zeros(planned, tmp_path, capsys):
    image, _, out = planned
    cut = tmp_path / "cut.nii.gz"
    data = image.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _refused(capsys, lambda: localizer_main(["plan", str(cut), "--out", str(out)]), out, "damaged")
    raw = _image(tmp_path / "whole.nii", np.ones((30, 40, 50), dtype=np.int16))
    (tmp_path / "short.nii").write_bytes(raw.read_bytes()[:-500])
    _refused(
        capsys, lambda: localizer_main(["plan", str(tmp_path / "short.nii"), "--out", str(out)]), out, "ends early"
    )


def test_nan_voxels_in_a_nifti_are_refused(planned, tmp_path, capsys):
    _, _, out = planned
    array = np.random.default_rng(0).random((30, 40, 50)).astype(np.float32)
    array[5, 6, 7] = np.nan
    path = _image(tmp_path / "nan.nii.gz", array)
    _refused(capsys, lambda: localizer_main(["plan", str(path), "--out", str(out)]), out, "NaN or infinite")
    array[5, 6, 7] = np.inf
    path = _image(tmp_path / "inf.nii.gz", array.astype(np.float64))
    _refused(capsys, lambda: localizer_main(["plan", str(path), "--out", str(out)]), out, "NaN or infinite")


@pytest.mark.parametrize(
    "edit, expect",
    [
        (lambda p: p["discs"][0].update(normal_lps=[5 * v for v in p["discs"][0]["normal_lps"]]), "unit vector"),
        (lambda p: p["discs"][0].update(centroid_lps=[float("nan"), 0.0, 0.0]), "three finite numbers"),
        (lambda p: p["discs"][0].update(centroid_lps=[900.0, 900.0, 900.0]), "outside the image"),
        (lambda p: p.update(schema_version=7), "schema_version 7"),
        (lambda p: p.update(discs="L4-L5"), "'discs' must be a list"),
    ],
)
def test_a_broken_or_foreign_plan_is_refused_by_reslice_and_measure(planned, tmp_path, capsys, edit, expect):
    image, labels, out = planned
    plan = json.loads((out / "plan.json").read_text())
    edit(plan)
    bad = tmp_path / "bad_plan.json"
    bad.write_text(json.dumps(plan))
    target = tmp_path / "axial"
    err = _refused(
        capsys,
        lambda: localizer_main(["reslice", str(image), "--plan", str(bad), "--out", str(target)]),
        target,
        expect,
    )
    assert str(bad) in err
    measured = tmp_path / "measured"
    args = [str(image), "--labels", str(labels), "--plan", str(bad), "--out", str(measured)]
    _refused(capsys, lambda: measure_main(args), measured, expect)


def test_malformed_json_files_are_named_in_the_message(planned, tmp_path, capsys):
    image, labels, out = planned
    broken = tmp_path / "broken.json"
    broken.write_text('{"discs": [')
    for run, target in (
        (lambda: localizer_main(["reslice", str(image), "--plan", str(broken), "--out", str(tmp_path / "r")]), "r"),
        (lambda: localizer_main(["plan", str(image), "--protocol", str(broken), "--out", str(out)]), "plan"),
        (lambda: measure_main(["--landmarks", str(broken), "--out", str(tmp_path / "m")]), "m"),
    ):
        err = _refused(capsys, run, out if target == "plan" else tmp_path / target, "not valid JSON")
        assert str(broken) in err


def test_out_naming_a_file_is_refused_in_one_line(planned, tmp_path, capsys):
    image, labels, out = planned
    afile = tmp_path / "a_file"
    afile.write_text("keep me")
    _refused(
        capsys,
        lambda: localizer_main(["plan", str(image), "--discs", str(labels), "--out", str(afile)]),
        tmp_path / "nothing",
        "is a file, not a folder",
    )
    assert afile.read_text() == "keep me"


def test_a_label_map_of_unknown_codes_is_not_called_empty(planned, tmp_path, capsys):
    image, _, _ = planned
    labels = sitk.ReadImage(str(image))
    unknown = sitk.GetImageFromArray(np.full(sitk.GetArrayFromImage(labels).shape, 77, dtype=np.uint8))
    unknown.CopyInformation(labels)
    path = tmp_path / "unknown.nii.gz"
    sitk.WriteImage(unknown, str(path), True)
    err = _refused(
        capsys, lambda: measure_main(["--labels", str(path), "--out", str(tmp_path / "m")]), tmp_path / "m", "77"
    )
    assert "empty" not in err and "project's codes" in err


def test_a_nan_value_leaves_one_pair_out_and_agreement_json_stays_standard(tmp_path):
    head = "level,measurement,value,status,method\n"
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    a.write_text(head + "L3-L4,disc_height_mm,9.0,ok,r\nL4-L5,disc_height_mm,nan,ok,r\nL5-S1,disc_height_mm,11,ok,r\n")
    b.write_text(
        head + "L3-L4,disc_height_mm,9.3,ok,r\nL4-L5,disc_height_mm,10.0,ok,r\nL5-S1,disc_height_mm,11.2,ok,r\n"
    )
    assert measure_main(["agreement", str(a), str(b), "--out", str(tmp_path / "ag")]) == 0
    text = (tmp_path / "ag" / "agreement.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    row = json.loads(text)[0]
    assert row["n"] == 2 and row["bias"] == pytest.approx(0.25)  # (B - A over the two finite pairs)


def test_damaged_weights_are_refused_in_one_line(planned, tmp_path, capsys):
    from SpineLocalizerLib.networks import MODEL_DIR

    image, _, out = planned
    models = tmp_path / "models"
    models.mkdir()
    for path in MODEL_DIR.iterdir():
        (models / path.name).write_bytes(path.read_bytes())
    weights = models / "localize.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-10] ^= 0xFF
    weights.write_bytes(bytes(raw))
    err = _refused(
        capsys,
        lambda: localizer_main(["plan", str(image), "--models", str(models), "--out", str(out)]),
        out,
        "checksum",
    )
    assert "damaged" in err


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(planned, tmp_path, capsys, monkeypatch):
    from SpineLocalizerLib import cli

    image, labels, out = planned

    def broken(*_a, **_k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "output_subfolders", broken)
    args = ["plan", str(image), "--discs", str(labels), "--out", str(out)]
    err = _refused(capsys, lambda: localizer_main(args), out, "--debug")
    assert "ZeroDivisionError" in err
    with pytest.raises(ZeroDivisionError):
        localizer_main(args + ["--debug"])


def test_phantom_with_an_unknown_setting_is_one_line(tmp_path, capsys):
    out = tmp_path / "ph"
    _refused(
        capsys,
        lambda: phantom_main(["--seed", "3", "--set", "no_such_field=1", "--out", str(out)]),
        out,
        "no_such_field",
    )


def test_a_screenshot_that_cannot_be_written_is_reported(planned, tmp_path, capsys):
    image, labels, out = planned
    code = localizer_main(
        [
            "scene",
            "--image",
            str(image),
            "--plan",
            str(out / "plan.json"),
            "--out",
            str(tmp_path / "case.mrb"),
            "--screenshot",
            str(tmp_path / "no_such_folder" / "shot.png"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "screenshot" in err and "Traceback" not in err


def _volume_file(path: Path, array: np.ndarray, spacing, direction=None) -> str:
    image = sitk.GetImageFromArray(array.transpose(2, 1, 0).copy())
    image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path), True)
    return str(path)


@pytest.mark.parametrize(
    "name, array, spacing, direction, expect",
    [
        ("constant", np.full((100, 120, 40), 7, np.int16), (1.5, 1.5, 4.0), None, "holds no anatomy"),
        (
            "coarse",
            np.random.default_rng(1).random((20, 20, 20)).astype(np.float32),
            (15.0, 15.0, 15.0),
            None,
            "spacing",
        ),
        # 12 axial slices of 4 mm: 48 mm from head to foot
        ("axial", np.random.default_rng(2).random((200, 200, 12)).astype(np.float32), (1.0, 1.0, 4.0), None, "48 mm"),
        # coronal slices: the thick axis runs anterior-posterior
        (
            "coronal",
            np.random.default_rng(3).random((200, 10, 200)).astype(np.float32),
            (1.5, 6.0, 1.5),
            None,
            "stack of coronal slices",
        ),
        (
            "sheared",
            np.random.default_rng(4).random((60, 60, 80)).astype(np.float32),
            (2.0, 2.0, 2.0),
            (1.0, 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
            "not orthogonal",
        ),
    ],
)
def test_an_input_that_cannot_be_a_lumbar_localizer_is_refused_fast(
    tmp_path, capsys, name, array, spacing, direction, expect
):
    import time

    path = _volume_file(tmp_path / f"{name}.mha", array, spacing, direction)
    out = tmp_path / "out"
    t = time.perf_counter()
    _refused(capsys, lambda: localizer_main(["plan", path, "--out", str(out)]), out, expect)
    assert time.perf_counter() - t < 3.0


def _dicom_series(folder: Path, uid: str, description: str, positions, normal_axis: int = 0) -> None:
    """A tiny DICOM series: slices of 40 x 50 at the given positions along `normal_axis` (0: sagittal).
    (GDCM's writer sets the C locale and leaves it so; it is put back, or later text I/O of the process turns
    ASCII-only.)"""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    try:
        _write_dicom_series(folder, uid, description, positions, normal_axis)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_dicom_series(folder: Path, uid: str, description: str, positions, normal_axis: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = {0: "0\\1\\0\\0\\0\\-1", 2: "1\\0\\0\\0\\1\\0"}[normal_axis]
    for k, pos in enumerate(positions):
        image = sitk.GetImageFromArray((np.random.default_rng(k).random((50, 40)) * 100).astype(np.int16))
        xyz = [0.0, 0.0, 0.0]
        xyz[normal_axis] = float(pos)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for tag, value in (
            ("0020|000e", uid),
            ("0008|103e", description),
            ("0020|0037", rows),
            ("0020|0032", "\\".join(f"{v:g}" for v in xyz)),
            ("0020|0013", str(k + 1)),
            ("0008|0018", f"{uid}.{k + 1}"),
            ("0028|0030", "2\\2"),
        ):
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{uid[-1]}_{k:03d}.dcm"))
        writer.Execute(image)


def test_a_dicom_folder_with_several_series_takes_the_sagittal_one_or_asks(tmp_path):
    from SpineLocalizerLib.volume_io import read_volume

    folder = tmp_path / "study"
    _dicom_series(folder, "1.2.826.0.1.3680043.2.1", "loc sag", [0, 4, 8, 12, 16], normal_axis=0)
    _dicom_series(folder, "1.2.826.0.1.3680043.2.2", "loc ax", [0, 5, 10], normal_axis=2)
    vol = read_volume(folder)
    assert vol.array.shape[2] == 5 or 5 in vol.array.shape  # the sagittal series, not the first one found
    _dicom_series(folder, "1.2.826.0.1.3680043.2.3", "loc sag 2", [1, 5, 9], normal_axis=0)
    with pytest.raises(ValueError, match="choose the localizer with --series UID") as err:
        read_volume(folder)
    assert "loc sag 2" in str(err.value) and "loc ax" in str(err.value)
    assert 3 in read_volume(folder, "1.2.826.0.1.3680043.2.3").array.shape


def test_a_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    from SpineLocalizerLib.volume_io import read_volume

    folder = tmp_path / "gap"
    _dicom_series(folder, "1.2.826.0.1.3680043.2.9", "loc sag", [0, 4, 8, 16, 20], normal_axis=0)
    with pytest.raises(ValueError, match="unevenly spaced slices"):
        read_volume(folder)


def test_train_user_data_is_checked_before_the_slow_part(tmp_path, capsys):
    import time

    from SpineLocalizerLib.cli import main as cli_main

    user = tmp_path / "mine"
    user.mkdir()
    image = np.random.default_rng(5).random((40, 40, 40)).astype(np.float32)
    _volume_file(user / "a_image.nii.gz", image, (2.0, 2.0, 2.0))
    _volume_file(user / "a_labels.nii.gz", np.zeros((30, 40, 40), np.uint8), (2.0, 2.0, 2.0))  # another grid
    _volume_file(user / "b_image.nii.gz", image, (2.0, 2.0, 2.0))
    _volume_file(user / "b_labels.nii.gz", np.full((40, 40, 40), 7, np.uint8), (2.0, 2.0, 2.0))  # no project code
    t = time.perf_counter()
    code = cli_main(
        [
            "train",
            "--stage",
            "levels",
            "--user-data",
            str(user),
            "--cache",
            str(tmp_path / "c"),
            "--out",
            str(tmp_path / "m"),
        ]
    )
    err = capsys.readouterr().err
    assert (
        code == 2 and "2 pair(s) cannot be trained on" in err and "a: the label map is not on the image's grid" in err
    )
    assert "b: the label map holds no vertebra or disc code" in err and "Traceback" not in err
    assert time.perf_counter() - t < 10.0 and not (tmp_path / "c").exists()  # no phantom cache was built


def _flipped_copy(path: Path, lps_component: int, out: Path) -> Path:
    """The image at `path` with its content flipped along the axis that runs along LPS `lps_component`, its
    header unchanged."""
    from SpineLocalizerLib.volume_io import read_volume, write_volume

    image = read_volume(path)
    axis = int(np.argmax(np.abs(np.asarray(image.direction)[lps_component])))
    write_volume(type(image)(np.flip(image.array, axis).copy(), image.spacing, image.origin, image.direction), out)
    return out


@pytest.mark.parametrize("flip, lps_component", [("head-foot", 2), ("front-back", 1)])
def test_a_localizer_flipped_against_its_header_is_refused_as_flipped(
    planned, tmp_path, capsys, monkeypatch, flip, lps_component
):
    """Items 17/18: the image's content upside down or front to back while its header says otherwise. Its plan
    would be no plan (or, of the flipped content, mirrored on the scanner): it is refused in one line that says
    the image looks flipped and how, before the search of the whole image for a spine (~7 s, 2 GB)."""
    from SpineLocalizerLib.networks import infer

    def no_wide_search(*args, **kwargs):
        raise AssertionError("the whole image was searched for discs before the flip was seen")

    monkeypatch.setattr(infer, "_footprint_box", no_wide_search)
    flipped = _flipped_copy(planned[0], lps_component, tmp_path / "flipped.nii.gz")
    out = tmp_path / "plan"
    code = localizer_main(["plan", str(flipped), "--out", str(out), "--strict"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1, lines
    assert f"looks flipped {flip} relative to its header" in lines[0] and "--trust-header" in lines[0], lines[0]
    assert not out.exists() and not list(tmp_path.glob(".plan.*"))


def test_trust_header_plans_a_flipped_localizer_as_given(planned, tmp_path):
    flipped = _flipped_copy(planned[0], 2, tmp_path / "flipped.nii.gz")
    out = tmp_path / "plan"
    assert localizer_main(["plan", str(flipped), "--out", str(out), "--strict", "--trust-header"]) == 3
    plan = json.loads((out / "plan.json").read_text())
    assert plan["doubtful"] and "orientation_check" not in plan["timings_s"]


def test_a_confident_plan_pays_nothing_for_the_orientation_check(planned, tmp_path):
    out = tmp_path / "plan"
    assert localizer_main(["plan", str(planned[0]), "--out", str(out), "--strict"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert not plan["doubtful"]
    assert "orientation_check" not in plan["timings_s"]  # only a doubtful plan is planned again flipped
