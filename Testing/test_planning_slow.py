"""Planning accuracy on 50 varied phantoms (run with `make slow`; the numbers are in the README)."""

import pytest
from planning_evaluation import evaluate, summary


@pytest.mark.slow
def test_planning_from_true_labels_on_fifty_phantoms():
    s = summary(evaluate(50))
    assert s["cases"] == 50
    assert s["normal_median_deg"] <= 1.0 and s["normal_p95_deg"] <= 2.0
    assert s["center_median_mm"] <= 1.0
    assert s["names_correct"] == 1.0
