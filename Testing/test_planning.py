"""Planning from disc label maps: accuracy against phantom truth, quality factor, bad input, reslicing."""

import numpy as np
import pytest
import SimpleITK as sitk
from SpineLocalizerLib.cli import main as localizer_main
from SpineLocalizerLib.geometry import angle_between_deg
from SpineLocalizerLib.labels import VERTEBRA_CODES
from SpineLocalizerLib.planning.axial_reslice import reslice_disc
from SpineLocalizerLib.planning.plan import build_plan
from SpineLocalizerLib.planning.protocol import default_protocol
from SpineLocalizerLib.volume_io import Volume, read_volume, write_volume


def _plan_case(phantoms, seed, **overrides):
    folder, truth = phantoms.get(seed, **overrides)
    labels = read_volume(folder / truth["files"]["disc_labels"])
    plan, _ = build_plan(labels, lumbar_count=truth["lumbar_count"])
    return folder, truth, labels, plan


@pytest.mark.parametrize("seed,count", [(31, 4), (32, 5), (33, 6)])
def test_plan_from_true_labels_matches_truth(phantoms, seed, count):
    _, truth, _, plan = _plan_case(phantoms, seed, lumbar_count=count)
    by_value = {d["value"]: d for d in truth["discs"]}
    names = [d["label"] for d in plan["discs"]]
    assert names[0] == "T12-L1" and names[-1] == f"L{count}-S1"
    assert len(names) == count + 1
    normal_err, center_err = [], []
    for disc in plan["discs"]:
        ref = by_value[disc["value"]]
        assert disc["label"] == ref["label"]
        normal_err.append(angle_between_deg(np.array(disc["normal_lps"]), np.array(ref["normal_lps"])))
        center_err.append(np.linalg.norm(np.array(disc["scan_center_lps"]) - ref["posterior_edge_lps"]))
        assert np.array(disc["normal_lps"])[2] > 0  # cranial
    assert np.median(normal_err) < 1.0 and max(normal_err) < 2.5
    assert np.median(center_err) < 1.0 and max(center_err) < 3.0
    assert plan["quality_factor"] > 0.8 and not plan["quality"]["needs_review"]
    assert [v["label"] for v in plan["vertebrae"] if v["label"].startswith("L")] == [
        f"L{i}" for i in range(1, count + 1)
    ]


def test_slabs_are_perpendicular_and_band_is_anterior(phantoms):
    _, truth, _, plan = _plan_case(phantoms, 32, lumbar_count=5)
    n_sag, n_cor = np.array(plan["sagittal"]["normal_lps"]), np.array(plan["coronal"]["normal_lps"])
    assert abs(n_sag @ n_cor) < 1e-9
    assert abs(n_sag[0]) > 0.9 and abs(n_cor[1]) > 0.8
    band = plan["saturation_bands"][0]
    edges = np.array([d["anterior_edge_lps"] for d in truth["discs"] if d["upper"].startswith("L")])
    gap = (edges - np.array(band["center_lps"])) @ n_cor  # positive: band anterior of the disc edge
    expected = band["distance_mm"] + band["thickness_mm"] / 2
    assert gap.min() > expected - 4.0
    assert gap.min() < expected + 4.0
    for disc in plan["discs"]:  # every disc lies inside both slabs' fields of view
        for key in ("sagittal", "coronal"):
            slab = plan[key]
            rel = np.array(disc["centroid_lps"]) - slab["center_lps"]
            assert abs(rel @ slab["x_axis_lps"]) < slab["fov_mm"][0] / 2
            assert abs(rel @ slab["y_axis_lps"]) < slab["fov_mm"][1] / 2


def test_quality_factor_flags_a_skipped_level(phantoms):
    _, truth, labels, _ = _plan_case(phantoms, 32, lumbar_count=5)
    arr = labels.array.copy()
    code = {d["label"]: d["value"] for d in truth["discs"]}
    # A labeller that missed L2-L3 and shifted the levels above it down by one.
    arr[arr == code["L2-L3"]] = 0
    for name, new in (("L1-L2", "L2-L3"), ("T12-L1", "L1-L2"), ("T11-T12", "T12-L1")):
        arr[labels.array == code[name]] = code[new]
    plan, _ = build_plan(Volume(arr, labels.spacing, labels.origin, labels.direction), lumbar_count=5)
    assert plan["quality"]["needs_review"], plan["quality"]
    assert "spacing" in plan["quality"]["message"]


def _write(tmp_path, name, vol):
    path = tmp_path / name
    write_volume(vol, path)
    return str(path)


def test_bad_inputs_fail_clearly_without_partial_output(phantoms, tmp_path, capsys):
    folder, truth = phantoms.get(32, lumbar_count=5)
    image = read_volume(folder / truth["files"]["localizer"])
    labels = read_volume(folder / truth["files"]["disc_labels"])
    img = str(folder / truth["files"]["localizer"])
    empty = Volume(np.zeros_like(labels.array), labels.spacing, labels.origin, labels.direction)
    one = Volume(np.where(labels.array == 123, labels.array, 0), labels.spacing, labels.origin, labels.direction)
    vert = Volume(
        np.full_like(labels.array, VERTEBRA_CODES["L3"]) * (labels.array > 0),
        labels.spacing,
        labels.origin,
        labels.direction,
    )
    shifted = Volume(labels.array, labels.spacing, labels.origin + 5.0, labels.direction)
    cases = {
        "empty": (_write(tmp_path, "empty.nii.gz", empty), "empty"),
        "one": (_write(tmp_path, "one.nii.gz", one), "at least two discs"),
        "vert": (_write(tmp_path, "vert.nii.gz", vert), "no disc labels"),
        "grid": (_write(tmp_path, "shift.nii.gz", shifted), "different grids"),
    }
    for key, (lab, message) in cases.items():
        out = tmp_path / f"out_{key}"
        assert localizer_main(["plan", img, "--discs", lab, "--out", str(out)]) == 1
        assert message in capsys.readouterr().err, key
        assert not out.exists(), key
    slice2d = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(image.array[:, :, 40].T.copy()), str(slice2d))
    out = tmp_path / "out_2d"
    assert (
        localizer_main(
            ["plan", str(slice2d), "--discs", str(folder / truth["files"]["disc_labels"]), "--out", str(out)]
        )
        == 1
    )
    assert "3D volume is needed" in capsys.readouterr().err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left


def test_cli_writes_the_plan_contract(cli_plan):
    out, plan = cli_plan
    assert plan["schema_version"] == 1 and plan["coordinate_system"] == "LPS"
    for key in (
        "input",
        "protocol",
        "discs",
        "vertebrae",
        "sagittal",
        "coronal",
        "saturation_bands",
        "quality_factor",
        "timings_s",
    ):
        assert key in plan
    assert "total" in plan["timings_s"]
    for disc in plan["discs"]:
        for key in ("label", "value", "centroid_lps", "normal_lps", "scan_center_lps", "slice_group", "confidence"):
            assert key in disc
        assert (out / f"{disc['label']}_axial.mrk.json").exists()
    for name in ("sagittal.mrk.json", "coronal.mrk.json", "saturation_band_1.mrk.json", "overview.png"):
        assert (out / name).exists()


def test_resliced_stack_contains_the_disc_and_is_parallel_to_it(phantoms):
    folder, truth = phantoms.get(21, highres=True, highres_spacing_mm=1.0)
    labels = read_volume(folder / truth["files"]["disc_labels"])
    hr_labels = read_volume(folder / truth["files"]["highres_labels"])
    protocol = default_protocol()
    # Fine slices (1 mm, no gap, 19 slices) so the disc's orientation inside the stack can be measured.
    protocol["axial"].update(n_slices=19, thickness_mm=1.0, gap_mm=0.0, fov_mm=[120.0, 120.0], matrix=[120, 120])
    plan, _ = build_plan(labels, protocol=protocol, lumbar_count=truth["lumbar_count"])
    for disc in plan["discs"]:
        if not disc["label"].startswith("L"):
            continue
        stack = reslice_disc(hr_labels, disc, labels=True)
        arr = sitk.GetArrayFromImage(stack)  # (z, y, x)
        idx = np.argwhere(arr == disc["value"])
        assert len(idx) > 1000, disc["label"]
        mid = arr[arr.shape[0] // 2]
        ys, xs = np.nonzero(mid == disc["value"])
        assert len(ys) > 600  # the middle slice cuts through the disc
        pts = idx[:, ::-1] * np.array(stack.GetSpacing())  # x, y, z in mm in the stack frame
        evals, evecs = np.linalg.eigh(np.cov((pts - pts.mean(axis=0)).T))
        tilt = angle_between_deg(evecs[:, 0], np.array([0.0, 0.0, 1.0]), undirected=True)
        assert tilt < 2.0, (disc["label"], tilt)
        # The scan centre (stack centre) sits at the disc's posterior edge: disc anterior (-y) of it, not posterior.
        cy = arr.shape[1] / 2
        assert np.mean(ys < cy) > 0.9
