"""Batches of localizers: planned in worker processes (one thread each) by default, with the same plans as in
one process, a line per input as it finishes, and the batch's pace."""

from __future__ import annotations

import json

import numpy as np
from SpineLocalizerLib.cli import main as localizer_main
from SpineLocalizerLib.plan_batch import default_jobs


def test_a_batch_in_worker_processes_plans_as_one_process_does(phantoms, tmp_path, capsys):
    images = []
    for seed in (32, 33):
        folder, truth = phantoms.get(seed, lumbar_count=5)
        images.append(str(folder / truth["files"]["localizer"]))
    plans = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        assert localizer_main(["plan", *images, "--jobs", jobs, "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert "2 inputs: 2 planned, 0 failed" in err and "per minute" in err
        assert ("in 2 worker processes" in err) == (jobs == "2")
        assert err.count("] localizer.nii.gz: ") == 2, err
        plans[jobs] = [json.loads(p.read_text()) for p in sorted(out.glob("*/plan.json"))]
        assert len(plans[jobs]) == 2 and all((p.parent / "discs.nii.gz").exists() for p in out.glob("*/plan.json"))
    for one, two in zip(plans["1"], plans["2"]):
        assert [d["label"] for d in one["discs"]] == [d["label"] for d in two["discs"]]
        for a, b in zip(one["discs"], two["discs"]):
            # One thread or two: the same networks, the same plan (bf16 sums may differ in their last bits).
            cos = float(np.dot(a["normal_lps"], b["normal_lps"]))
            assert np.degrees(np.arccos(min(1.0, abs(cos)))) < 0.5
            assert np.linalg.norm(np.subtract(a["scan_center_lps"], b["scan_center_lps"])) < 0.5


def test_workers_default_to_one_per_core_at_most_two_and_one_per_input():
    assert default_jobs(1) == 1
    assert 1 <= default_jobs(10) <= 2
    assert default_jobs(0) == 1
