"""Disc positions from labelled vertebral bodies: the real-data references and the level targets that let the
level classifier be fine-tuned on label maps that have bodies only (shared/data/real/vertebrae_t2)."""

import numpy as np
import pytest
from SpineLocalizerLib.labels import VERTEBRA_CODES
from SpineLocalizerLib.networks import data
from SpineLocalizerLib.networks import levels as level_classifier
from SpineLocalizerLib.networks.body_references import level_targets, reference_discs_from_bodies
from SpineLocalizerLib.volume_io import Volume, read_volume, write_volume

BODIES = ("T11", "T12", "L1", "L2", "L3", "L4", "L5")


def _bodies_only(labels: Volume, keep=BODIES) -> Volume:
    codes = [VERTEBRA_CODES[n] for n in keep]
    return Volume(
        np.where(np.isin(labels.array, codes), labels.array, 0), labels.spacing, labels.origin, labels.direction
    )


@pytest.fixture(scope="module")
def five_lumbar(phantoms):
    folder, truth = phantoms.get(21, lumbar_count=5)
    labels = read_volume(folder / truth["files"]["localizer_labels"])
    # The disc centre of the mid-plane section (a herniation or bulge pulls the centroid away from it).
    centres = {d["label"]: np.asarray(d["center_lps"]) for d in truth["discs"]}
    return folder, truth, labels, centres


def test_discs_between_labelled_bodies_sit_at_the_true_discs(five_lumbar):
    _, _, labels, centres = five_lumbar
    ref = reference_discs_from_bodies(_bodies_only(labels))
    assert sorted(ref) == sorted(f"{a}-{b}" for a, b in zip(BODIES[:-1], BODIES[1:]))
    for name, info in ref.items():
        assert np.linalg.norm(info["center"] - centres[name]) < 3.0, name
        assert info["normal"][2] > 0.5  # cranial


def test_level_targets_extrapolate_the_lumbosacral_disc_below_l5_without_a_sacrum_label(five_lumbar):
    _, _, labels, centres = five_lumbar
    targets = level_targets(_bodies_only(labels))
    names = [n for _, n in targets]
    assert names.count("L5-S1") == 1 and names.count("not a disc") == len(BODIES) + 2
    ls = next(p for p, n in targets if n == "L5-S1")
    # Half a disc spacing is the error that would name the wrong disc; the extrapolation is well inside it.
    assert np.linalg.norm(ls - centres["L5-S1"]) < 12.0
    sacral = [p for p, n in targets if n == "not a disc"][-2:]
    assert all(p[2] < ls[2] - 10.0 for p in sacral)  # below the lumbosacral disc (LPS: +z superior)


def test_a_labelled_sacrum_gives_the_lumbosacral_disc_from_both_sides(five_lumbar):
    _, _, labels, centres = five_lumbar
    targets = level_targets(_bodies_only(labels, BODIES + ("S1",)))
    ls = [p for p, n in targets if n == "L5-S1"]
    assert len(ls) == 1 and np.linalg.norm(ls[0] - centres["L5-S1"]) < 12.0
    assert [n for _, n in targets].count("not a disc") == len(BODIES)  # bodies; no guessed sacral points


def test_fewer_than_two_bodies_give_no_targets(five_lumbar):
    _, _, labels, _ = five_lumbar
    assert level_targets(_bodies_only(labels, ("L3",))) == []
    assert level_targets(_bodies_only(labels, ())) == []


def test_user_cases_with_bodies_only_train_the_level_classifier(five_lumbar, tmp_path):
    folder, truth, labels, centres = five_lumbar
    write_volume(read_volume(folder / truth["files"]["localizer"]), tmp_path / "p21_image.nii.gz")
    write_volume(_bodies_only(labels), tmp_path / "p21_labels.nii.gz")
    (case,) = data.user_cases(tmp_path)
    grid_origin = np.asarray(case.level_targets[0][0])  # canonical voxels
    assert grid_origin.shape == (3,)
    names = {n for _, n in case.level_targets}
    assert {"T12-L1", "L4-L5", "L5-S1", "not a disc"} <= names
    rng = np.random.default_rng(4)
    classes = [level_classifier.level_sample(case, rng)[1] for _ in range(40)]
    assert set(classes) <= {0, 1, 2, 3} and {0, 1} <= set(classes)
    img, _ = level_classifier.level_sample(case, rng)
    assert img.shape == (1,) + level_classifier.PATCH_2MM and np.isfinite(img).all()


def test_training_refuses_user_label_maps_without_disc_positions(five_lumbar, tmp_path):
    from SpineLocalizerLib.networks.train import train

    folder, truth, labels, _ = five_lumbar
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    write_volume(read_volume(folder / truth["files"]["localizer"]), user_dir / "p21_image.nii.gz")
    write_volume(_bodies_only(labels, ("L3",)), user_dir / "p21_labels.nii.gz")  # one body: no disc between two
    with pytest.raises(ValueError, match="no disc position"):
        train("levels", tmp_path / "cache", tmp_path / "out", user_folder=user_dir)
    with pytest.raises(ValueError, match="no <case>_image"):
        train("levels", tmp_path / "cache", tmp_path / "out", user_folder=tmp_path / "cache")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # nothing slow started
