"""The phantom's ground truth is true: the label maps it writes agree with truth.json."""

import numpy as np
import pytest
from SpineLocalizerLib.geometry import angle_between_deg
from SpineLocalizerLib.labels import STRUCTURE_CODES, VERTEBRA_CODES, codes_present
from SpineLocalizerLib.volume_io import read_volume

SAC = (STRUCTURE_CODES["dural_sac"], STRUCTURE_CODES["spinal_cord"])


def _world_coords(vol, mask):
    return vol.index_to_world(np.argwhere(mask))


@pytest.fixture(scope="module")
def highres_case(phantoms):
    # A case with herniation, stenosis and tilt, sampled at 1 mm so the suite stays fast.
    return phantoms.get(21, highres=True, highres_spacing_mm=1.0)


def test_disc_pca_normal_matches_truth_within_one_degree(highres_case):
    folder, truth = highres_case
    labels = read_volume(folder / truth["files"]["highres_labels"])
    checked = 0
    for disc in truth["discs"]:
        if not disc["upper"].startswith("L"):
            continue
        pts = _world_coords(labels, labels.array == disc["value"])
        evals, evecs = np.linalg.eigh(np.cov((pts - pts.mean(axis=0)).T))
        normal = evecs[:, 0]  # smallest variance: across the disc
        err = angle_between_deg(normal, np.array(disc["normal_lps"]), undirected=True)
        assert err < 1.0, f"{disc['label']}: PCA normal off by {err:.2f} deg"
        assert np.linalg.norm(pts.mean(axis=0) - disc["centroid_lps"]) < 0.5
        checked += 1
    assert checked == truth["lumbar_count"]


def test_dural_sac_ap_on_label_map_matches_truth_within_one_voxel(highres_case):
    folder, truth = highres_case
    labels = read_volume(folder / truth["files"]["highres_labels"])
    voxel = max(labels.spacing)
    for disc in truth["discs"]:
        if "dural_sac_ap_mm" not in disc:
            continue
        s = np.arange(-5.0, 45.0, 0.05)
        line = np.asarray(disc["center_lps"]) + s[:, None] * np.asarray(disc["posterior_lps"])
        ijk = np.rint(labels.world_to_index(line)).astype(int)
        on = np.isin(labels.array[tuple(ijk.T)], SAC)
        measured = s[on].max() - s[on].min() + 0.05 if on.any() else 0.0
        assert abs(measured - disc["dural_sac_ap_mm"]) <= voxel, disc["label"]


def test_psoas_area_in_the_mid_vertebral_plane_matches_truth(highres_case):
    from SpineLocalizerLib.reslice import sample_plane

    folder, truth = highres_case
    labels = read_volume(folder / truth["files"]["highres_labels"])
    for vert in truth["vertebrae"]:
        if vert["label"] not in ("L2", "L3", "L4"):
            continue
        axes = vert["axes_lps"]
        plane = sample_plane(
            labels,
            np.array(vert["center_lps"]),
            np.array(axes["posterior"]),
            np.array(axes["left"]),
            (180, 220),
            0.5,
            order=0,
        )
        for side in ("left", "right"):
            area = np.count_nonzero(plane == STRUCTURE_CODES[f"psoas_{side}"]) * 0.25
            expected = vert[f"psoas_area_{side}_mm2"]
            assert area == pytest.approx(expected, rel=0.06), (vert["label"], side)


def test_left_structures_lie_on_the_patients_left_in_lps(highres_case):
    folder, truth = highres_case
    labels = read_volume(folder / truth["files"]["highres_labels"])
    left = _world_coords(labels, labels.array == STRUCTURE_CODES["psoas_left"]).mean(axis=0)
    right = _world_coords(labels, labels.array == STRUCTURE_CODES["psoas_right"]).mean(axis=0)
    axis = np.asarray(truth["vertebrae"][-3]["axes_lps"]["left"])
    assert (left - right) @ axis > 40.0
    assert left[0] > right[0]  # LPS: +x is the patient's left


@pytest.mark.parametrize("count", [4, 5, 6])
def test_lumbar_count_gives_the_right_label_sets(phantoms, count):
    folder, truth = phantoms.get(3, lumbar_count=count)
    labels = read_volume(folder / truth["files"]["localizer_labels"]).array
    present = set(np.unique(labels).tolist())
    lumbar_codes = {VERTEBRA_CODES[f"L{i}"] for i in range(1, count + 1)}
    assert lumbar_codes <= present
    assert VERTEBRA_CODES["S1"] in present
    if count < 6:
        assert VERTEBRA_CODES[f"L{count + 1}"] not in present
    disc_names = [d["label"] for d in truth["discs"]]
    assert disc_names[-1] == f"L{count}-S1"
    discs = read_volume(folder / truth["files"]["disc_labels"]).array
    assert set(np.unique(discs).tolist()) - {0} <= {d["value"] for d in truth["discs"]}
    assert {d["value"] for d in truth["discs"] if d["upper"].startswith("L")} <= set(np.unique(discs).tolist())
    assert codes_present(discs) == sorted(set(np.unique(discs).tolist()) - {0})


def test_grid_direction_does_not_change_the_truth_and_labels_agree_in_their_own_frame(phantoms):
    _, straight = phantoms.get(8, grid_tilt_deg=(0.0, 0.0, 0.0))
    folder_b, tilted = phantoms.get(8, grid_tilt_deg=(14.0, -9.0, 21.0))
    assert straight["discs"] == tilted["discs"]
    assert straight["vertebrae"] == tilted["vertebrae"]
    folder_a, _ = phantoms.get(8, grid_tilt_deg=(0.0, 0.0, 0.0))
    for folder, truth in ((folder_a, straight), (folder_b, tilted)):
        labels = read_volume(folder / truth["files"]["disc_labels"])
        assert not np.allclose(labels.direction, np.eye(3))  # sagittal acquisition, never identity
        for disc in truth["discs"]:
            if disc["upper"].startswith("L"):
                pts = _world_coords(labels, labels.array == disc["value"])
                assert np.linalg.norm(pts.mean(axis=0) - disc["centroid_lps"]) < 1.0, disc["label"]


def test_truth_lists_every_measurement_of_the_domain(phantoms):
    _, truth = phantoms.get(3)
    disc_keys = {
        "disc_height_mm",
        "foraminal_height_left_mm",
        "foraminal_height_right_mm",
        "facet_angle_left_deg",
        "facet_angle_right_deg",
        "canal_diameter_mm",
        "dural_sac_ap_mm",
        "canal_area_mm2",
        "lateral_recess_depth_left_mm",
        "lateral_recess_depth_right_mm",
        "lateral_recess_angle_left_deg",
        "lateral_recess_angle_right_deg",
        "herniation_ratio",
        "msu_class",
        "label",
        "value",
        "centroid_lps",
        "normal_lps",
        "posterior_edge_lps",
        "anterior_edge_lps",
    }
    lumbar = [d for d in truth["discs"] if d["upper"].startswith("L")]
    for disc in lumbar:
        assert disc_keys <= set(disc), disc_keys - set(disc)
        assert np.isclose(np.linalg.norm(disc["normal_lps"]), 1.0)
        assert disc["normal_lps"][2] > 0.5  # points cranially (LPS +z is superior)
        # The posterior edge lies posterior (LPS +y) of the anterior edge.
        assert disc["posterior_edge_lps"][1] > disc["anterior_edge_lps"][1]
    for vert in truth["vertebrae"]:
        if vert["label"].startswith("L"):
            assert {"psoas_area_left_mm2", "psoas_area_right_mm2", "centroid_lps", "axes_lps"} <= set(vert)
    psoas = [v["psoas_area_left_mm2"] for v in truth["vertebrae"] if v["label"].startswith("L")]
    assert psoas[:4] == sorted(psoas[:4]), "psoas areas grow from L1 to L4"
    for key, role in truth["files"].items():
        assert role.endswith(".nii.gz"), key


def test_sizes_are_anatomically_plausible(phantoms):
    for seed in (1, 2, 3, 4):
        _, truth = phantoms.get(seed)
        for disc in truth["discs"]:
            if disc["upper"].startswith("L") and disc["degeneration_height_factor"] == 1.0:
                assert 7.0 <= disc["disc_height_mm"] <= 14.0
            if "canal_diameter_mm" in disc:
                assert 6.0 <= disc["canal_diameter_mm"] <= 20.0
                assert 20.0 <= disc["canal_area_mm2"] <= 250.0
        for vert in truth["vertebrae"]:
            if "psoas_area_left_mm2" in vert:
                assert 150.0 <= vert["psoas_area_left_mm2"] <= 2600.0
