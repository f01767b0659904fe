import filecmp
import json

import pytest
from SpineLocalizerLib.phantom.cli import main


def test_same_seed_gives_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["--seed", "5", "--out", str(out), "--no-highres"]) == 0
    names = sorted(p.name for p in a.iterdir())
    assert "overview.png" in names and "sagittal_stack.nii.gz" in names
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == []


def test_bad_parameter_fails_cleanly_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["--seed", "1", "--out", str(out), "--set", "size_scale=-2"]) == 2
    assert "size_scale" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no staging folder left behind


def test_set_accepts_json_values(tmp_path):
    out = tmp_path / "c"
    assert (
        main(
            [
                "--seed",
                "2",
                "--out",
                str(out),
                "--no-highres",
                "--no-stacks",
                "--no-overview",
                "--set",
                "lordosis_deg=60",
                "--lumbar-count",
                "6",
            ]
        )
        == 0
    )
    truth = json.loads((out / "truth.json").read_text())
    assert truth["parameters"]["lordosis_deg"] == 60
    assert truth["lumbar_count"] == 6


def test_unknown_option_is_rejected():
    with pytest.raises(SystemExit):
        main(["--seed", "1"])
