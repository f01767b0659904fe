"""The lumbar count: five unless the images show another, said as seen / assumed / given, and a plan that
doubts itself says why (planning/doubts.py, `spine-localizer plan --strict`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from SpineLocalizerLib.networks import data
from SpineLocalizerLib.networks.sequence_matching import (
    COUNT_EVIDENCE_CAP,
    COUNT_LOG_PRIOR,
    COUNT_SEEN_MARGIN,
    level_names,
    match_sequence,
    naming_evidence,
)
from SpineLocalizerLib.planning.doubts import attach_doubts, plan_doubts


def _chain(classes, p_right):
    """Components 36 mm apart, bottom up, with no heatmap response, and a classifier that gives `p_right` to
    the class in `classes` and shares the rest."""
    n = len(classes)
    centres = np.array([[0.0, 0.0, 36.0 * r] for r in range(n)])
    logp = np.full((n, 3), np.log((1 - p_right) / 2))
    logp[np.arange(n), classes] = np.log(p_right)
    return np.zeros((n, len(data.LEVELS))), centres, logp


def test_count_prior_follows_prevalence():
    p = {n: np.exp(v) for n, v in COUNT_LOG_PRIOR.items()}
    assert p[5] > 0.9 and p[4] < 0.1 and p[6] < 0.1
    assert sum(p.values()) == pytest.approx(1.0)


def test_a_weak_lean_to_four_lumbar_stays_five_and_is_assumed():
    # Four lumbar-looking discs and the classifier only 60 % sure at the junction disc: the prior keeps five.
    classes = [2, 1, 1, 1, 0, 0, 0, 0]
    responses, centres, logp = _chain(classes, 0.97)
    logp[4] = np.log([0.6, 0.4, 1e-3])  # the disc that decides between 4 and 5: unsure
    by_count: dict[int, float] = {}
    _, count, shift, names = match_sequence(responses, centres, None, class_logp=logp, by_count=by_count)
    assert count == 5 and shift == 0
    assert by_count[4] > by_count[5]  # the images alone lean to four ...
    ev = naming_evidence(count, None, by_count, [names[r] for r in range(len(classes))], shift)
    assert ev["count_basis"] == "assumed" and ev["images_favour"] == 4 and not ev["verify_count"]
    assert "too little against its prevalence" in ev["evidence"]


def test_a_clear_four_lumbar_spine_is_seen_where_the_classifier_is_trusted_and_asks_to_verify(monkeypatch):
    from SpineLocalizerLib.networks import sequence_matching

    monkeypatch.setattr(sequence_matching, "COUNT_EVIDENCE_CAP", 10.0)  # a classifier trusted at the junction
    classes = [2, 1, 1, 1, 0, 0, 0, 0]
    responses, centres, logp = _chain(classes, 0.999)
    by_count: dict[int, float] = {}
    overruled: dict = {}
    _, count, shift, names = match_sequence(
        responses, centres, None, class_logp=logp, by_count=by_count, overruled=overruled
    )
    assert count == 4 and overruled == {}
    ev = naming_evidence(count, None, by_count, [names[r] for r in range(len(classes))], shift)
    assert ev["count_basis"] == "seen" and ev["count_margin"] >= COUNT_SEEN_MARGIN and ev["verify_count"]


def test_four_lumbar_read_by_one_junction_patch_is_overruled_and_asks_to_verify():
    # The classifier is sure of four lumbar vertebrae; its junction error on unseen scanners caps that evidence
    # below the prevalence of five.
    classes = [2, 1, 1, 1, 0, 0, 0, 0]
    responses, centres, logp = _chain(classes, 0.999)
    by_count: dict[int, float] = {}
    overruled: dict = {}
    _, count, shift, names = match_sequence(
        responses, centres, None, class_logp=logp, by_count=by_count, overruled=overruled
    )
    assert by_count[4] - by_count[5] > COUNT_EVIDENCE_CAP  # the images alone are sure ...
    assert count == 5 and shift == 0 and overruled == {"count": 4}  # ... but one patch does not carry it
    ev = naming_evidence(count, None, by_count, [names[r] for r in range(len(classes))], shift, overruled["count"])
    assert ev["count_basis"] == "assumed" and ev["verify_count"] and ev["classifier_count"] == 4
    assert "too little evidence" in ev["evidence"]
    plan = {"lumbar_count": count, "naming": ev, "quality": {}, "discs": []}
    assert [d["code"] for d in plan_doubts(plan)] == ["count_disputed"]
    # The user's count is never overruled.
    assert match_sequence(responses, centres, 4, class_logp=logp)[1] == 4


def test_count_without_the_junction_in_view_is_assumed_and_a_given_count_is_given():
    names = level_names(5)[:4]  # L5-S1 .. L2-L3: no thoracolumbar junction in view
    ev = naming_evidence(5, None, {4: -1.0, 5: 3.0, 6: -2.0}, names, 0)
    assert ev["count_basis"] == "assumed" and "not in view" in ev["evidence"] and ev["lumbosacral_in_view"]
    ev = naming_evidence(4, 4, {4: 0.0}, level_names(4)[:6], 0)
    assert ev["count_basis"] == "given" and ev["verify_count"]


def _plan(count=5, basis="seen", verify=False, lumbosacral=True, coverage=1.0, needs_review=False, disc_flags=()):
    return {
        "lumbar_count": count,
        "naming": {"count_basis": basis, "verify_count": verify, "lumbosacral_in_view": lumbosacral},
        "quality": {"coverage": coverage, "needs_review": needs_review, "quality_factor": 0.9, "threshold": 0.5},
        "discs": [{"label": f"D{k}", "needs_review": f} for k, f in enumerate(disc_flags)],
    }


def test_doubts_name_each_reason_and_a_clean_plan_has_none():
    assert plan_doubts(_plan(disc_flags=(False, False))) == []
    codes = [d["code"] for d in plan_doubts(_plan(count=4, verify=True, lumbosacral=False, coverage=0.5))]
    assert codes == ["count_unusual", "lumbosacral_missing", "discs_missing"]
    assert plan_doubts(_plan(count=4, basis="given", verify=True)) == []  # the user's own count is not doubted
    low = plan_doubts(_plan(needs_review=True, disc_flags=(False, True)))
    assert [d["code"] for d in low] == ["low_disc_quality"] and "D1" in low[0]["reason"]
    assert [d["code"] for d in plan_doubts(_plan(needs_review=True))] == ["low_quality"]
    assert attach_doubts(_plan(count=6, verify=True))["doubtful"] is True


def test_strict_exits_non_zero_only_on_a_doubtful_plan(phantoms, tmp_path, capsys):
    from SpineLocalizerLib.cli import main as localizer_main

    folder, truth = phantoms.get(32, lumbar_count=5)
    image, labels = folder / truth["files"]["localizer"], folder / truth["files"]["disc_labels"]
    assert localizer_main(["plan", str(image), "--discs", str(labels), "--out", str(tmp_path / "a"), "--strict"]) == 0
    plan = json.loads((tmp_path / "a" / "plan.json").read_text())
    assert plan["doubtful"] is False and plan["naming"]["count_basis"] == "label map"
    # A protocol whose threshold lies above the plan's quality makes the same plan doubtful.
    from importlib import resources

    protocol = json.loads((resources.files("SpineLocalizerLib") / "resources/default_lumbar_protocol.json").read_text())
    protocol["quality_threshold"] = 0.999
    (tmp_path / "strict.json").write_text(json.dumps(protocol))
    args = ["plan", str(image), "--discs", str(labels), "--out", str(tmp_path / "b"), "--protocol"]
    code = localizer_main(args + [str(tmp_path / "strict.json"), "--strict"])
    assert code == 3
    assert "CHECK PLAN: quality factor" in capsys.readouterr().err
    assert json.loads((tmp_path / "b" / "plan.json").read_text())["doubtful"] is True
