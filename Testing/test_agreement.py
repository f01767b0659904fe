import numpy as np
import pytest
from SpineMeasureLib.agreement import agreement_table, bland_altman, icc_2_1
from SpineMeasureLib.cli import main as measure_main

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; their ICC(2,1) is 0.29.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)


def test_icc_matches_shrout_and_fleiss():
    assert icc_2_1(SHROUT_FLEISS) == pytest.approx(0.29, abs=0.005)


def test_icc_is_one_for_identical_raters_and_drops_with_a_bias():
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    assert icc_2_1(np.stack([x, x], axis=1)) == pytest.approx(1.0)
    assert icc_2_1(np.stack([x, x + 3.0], axis=1)) < 0.8


def test_bland_altman_known_values():
    a = np.array([10.0, 12.0, 14.0, 16.0])
    b = a + np.array([1.0, -1.0, 1.0, -1.0]) + 0.5
    ba = bland_altman(a, b)
    sd = np.std([1.5, -0.5, 1.5, -0.5], ddof=1)
    assert ba["bias"] == pytest.approx(0.5)
    assert ba["loa_high"] == pytest.approx(0.5 + 1.96 * sd)
    assert ba["mad"] == pytest.approx(1.0)


def test_agreement_cli_writes_table_and_plot(tmp_path):
    rows_a = "level,measurement,value,unit,method\n" + "".join(
        f"L{i},disc_height_mm,{8 + i},mm,auto\n" for i in range(1, 6)
    )
    rows_b = "level,measurement,value,unit,method\n" + "".join(
        f"L{i},disc_height_mm,{8.4 + i},mm,reader\n" for i in range(1, 6)
    )
    (tmp_path / "a.csv").write_text(rows_a)
    (tmp_path / "b.csv").write_text(rows_b)
    out = tmp_path / "agr"
    assert (
        measure_main(
            ["agreement", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(out), "--names", "AI,R1"]
        )
        == 0
    )
    assert (out / "bland_altman.png").exists()
    text = (out / "agreement.csv").read_text()
    assert "disc_height_mm,5,0.4" in text
    assert (
        agreement_table(
            [{"level": "L1", "measurement": "x", "value": "n/a"}], [{"level": "L1", "measurement": "x", "value": "1"}]
        )
        == []
    )
