"""The continual-learning formulas (docs/design.md section 3) on small matrices worked out by hand."""

import json
import math

import numpy as np
import pytest

from hybridcl.cl_figures import (
    SCORE_FLOOR,
    average,
    bwt,
    cl_figures,
    forgetting,
    forgetting_rate,
    fwt,
    summarize,
    summarize_cl,
    summarize_matrices,
    t_critical,
)

# Rows: stage 0 (base), stage 1 (after task 1), stage 2 (after task 2). Columns: task 1, task 2.
R2 = [
    [0.10, 0.20],
    [0.50, 0.30],
    [0.40, 0.60],
]

# Rows: stages 0..3; columns: tasks 1..3. Task 1 peaks at stage 2 (0.62 > 0.60 at its own stage), so
# F (a max over stages) differs from -BWT (which uses the diagonal): an index slip shows up.
R3 = [
    [0.10, 0.20, 0.30],
    [0.60, 0.25, 0.35],
    [0.62, 0.70, 0.40],
    [0.55, 0.60, 0.80],
]


def test_n2_by_hand():
    # A = mean of the last row = (0.40 + 0.60) / 2 = 0.50
    assert average(R2) == pytest.approx(0.50)
    # F: only task 1: max_{s in 1..1} R[s][1] - R[2][1] = 0.50 - 0.40 = 0.10
    assert forgetting(R2) == pytest.approx(0.10)
    # rate: (R[1][1] - R[2][1]) / R[1][1] = (0.50 - 0.40) / 0.50 = 0.20
    assert forgetting_rate(R2) == pytest.approx(0.20)
    # BWT: R[2][1] - R[1][1] = 0.40 - 0.50 = -0.10
    assert bwt(R2) == pytest.approx(-0.10)
    # FWT: only task 2: R[1][2] - R[0][2] = 0.30 - 0.20 = 0.10
    assert fwt(R2) == pytest.approx(0.10)


def test_n3_by_hand():
    # A = (0.55 + 0.60 + 0.80) / 3 = 1.95 / 3 = 0.65
    assert average(R3) == pytest.approx(0.65)
    # F_1 = max(R[1][1], R[2][1]) - R[3][1] = max(0.60, 0.62) - 0.55 = 0.07
    # F_2 = max(R[2][2]) - R[3][2] = 0.70 - 0.60 = 0.10
    # F = (0.07 + 0.10) / 2 = 0.085
    assert forgetting(R3) == pytest.approx(0.085)
    # rate_1 = (0.60 - 0.55) / 0.60 = 0.083333...; rate_2 = (0.70 - 0.60) / 0.70 = 0.142857...
    # rate = (0.0833333 + 0.1428571) / 2 = 0.1130952
    assert forgetting_rate(R3) == pytest.approx((0.05 / 0.60 + 0.10 / 0.70) / 2)
    assert forgetting_rate(R3) == pytest.approx(0.1130952, abs=1e-6)
    # BWT = ((0.55 - 0.60) + (0.60 - 0.70)) / 2 = (-0.05 - 0.10) / 2 = -0.075
    assert bwt(R3) == pytest.approx(-0.075)
    # FWT: task 2: R[1][2] - R[0][2] = 0.25 - 0.20 = 0.05; task 3: R[2][3] - R[0][3] = 0.40 - 0.30 = 0.10
    # FWT = (0.05 + 0.10) / 2 = 0.075
    assert fwt(R3) == pytest.approx(0.075)
    figs = cl_figures(R3)
    assert set(figs) == {"average", "forgetting", "forgetting_rate", "bwt", "fwt"}
    assert figs["forgetting"] == pytest.approx(0.085) and figs["fwt"] == pytest.approx(0.075)
    assert all(type(v) is float for v in figs.values())


def test_numpy_input_and_negative_forgetting():
    # Task 1 improves after task 2: F_1 = 0.50 - 0.70 = -0.20 (Chaudhry's F can be negative), BWT = +0.20.
    R = np.array([[0.1, 0.2], [0.5, 0.3], [0.7, 0.6]])
    assert forgetting(R) == pytest.approx(-0.20)
    assert bwt(R) == pytest.approx(0.20)
    assert forgetting_rate(R) == pytest.approx(-0.40)  # (0.5 - 0.7) / 0.5


def test_single_task_and_joint_give_none():
    one_task = [[0.1], [0.5]]  # N = 1, S = 1
    assert cl_figures(one_task) == {
        "average": 0.5,
        "forgetting": None,
        "forgetting_rate": None,
        "bwt": None,
        "fwt": None,
    }
    joint = [[0.1, 0.2], [0.6, 0.7]]  # N = 2 tasks, one stage (S = 1): only A applies; A = (0.6 + 0.7) / 2
    figs = cl_figures(joint)
    assert figs["average"] == pytest.approx(0.65)
    assert (
        figs["forgetting"] is None and figs["forgetting_rate"] is None and figs["bwt"] is None and figs["fwt"] is None
    )


def test_none_cells():
    # CodeBLEU on natural-language targets: every cell None -> every figure None.
    assert cl_figures([[None, None], [None, None], [None, None]]) == dict.fromkeys(
        ["average", "forgetting", "forgetting_rate", "bwt", "fwt"]
    )
    # A missing last row cell makes A, F, rate, BWT None, but FWT (rows 0 and 1) still computes.
    R = [[0.1, 0.2], [0.5, 0.3], [0.4, None]]
    figs = cl_figures(R)
    assert figs["average"] is None
    assert figs["fwt"] == pytest.approx(0.1)
    assert figs["forgetting"] == pytest.approx(0.1)  # only task 1's cells are needed: 0.5 - 0.4
    # NaN counts as missing.
    assert average([[0.1, 0.2], [0.5, 0.3], [0.4, float("nan")]]) is None


def test_forgetting_rate_is_none_below_the_score_floor():
    # R[1][1] == 0: no rate. F and BWT (differences, not ratios) still exist.
    R = [[0.0, 0.0], [0.0, 0.1], [0.0, 0.3]]
    assert forgetting_rate(R) is None
    assert forgetting(R) == pytest.approx(0.0)
    # A tiny model's own-stage BLEU 0.0004 -> 0.0024 after stage 2 would read as a rate of -5 (-500%).
    tiny = [[0.0, 0.0], [0.0004, 0.001], [0.0024, 0.003]]
    assert forgetting_rate(tiny) is None and bwt(tiny) == pytest.approx(0.002)
    # One task below the floor withholds the rate of all: a mean over the others would be another figure.
    R = [[0, 0, 0], [0.005, 0.1, 0.1], [0.1, 0.5, 0.2], [0.2, 0.25, 0.6]]
    assert forgetting_rate(R) is None
    # At the floor and above, the ratio is reported: ((0.01 - 0.008) / 0.01 + (0.5 - 0.25) / 0.5) / 2
    R = [[0, 0, 0], [SCORE_FLOOR, 0.1, 0.1], [0.1, 0.5, 0.2], [0.008, 0.25, 0.6]]
    assert forgetting_rate(R) == pytest.approx((0.2 + 0.5) / 2)


def test_summarize_cl_says_why_the_forgetting_rate_is_null():
    healthy = [[0.1, 0.2], [0.5, 0.3], [0.4, 0.6]]
    tiny = [[0.0, 0.0], [0.0004, 0.001], [0.0024, 0.003]]
    assert summarize_cl([healthy])["notes"] == {}
    assert summarize_cl([healthy])["forgetting_rate"]["mean"] == pytest.approx(0.2)
    one_seed = summarize_cl([tiny])
    assert one_seed["forgetting_rate"] is None
    assert one_seed["notes"] == {"forgetting_rate": "own-stage score 0.0004 is below the floor 0.01"}
    assert one_seed["bwt"]["mean"] == pytest.approx(0.002)  # not a ratio: kept
    # One seed of three below the floor: the rate is null for the run, and the note says in how many seeds.
    three = summarize_cl([healthy, tiny, healthy])
    assert three["forgetting_rate"] is None
    assert three["notes"]["forgetting_rate"] == "own-stage score 0.0004 is below the floor 0.01 in 1 of 3 seeds"
    assert json.loads(json.dumps(three)) == three  # goes into the results JSON as it is


def test_unfinished_sequential_run_gives_none_for_transfer_figures():
    # 3 tasks but only stages 0..1 present: not the N + 1 rows the figures need.
    R = [[0.1, 0.2, 0.3], [0.5, 0.3, 0.2]]
    figs = cl_figures(R)
    assert figs["forgetting"] is None and figs["bwt"] is None and figs["fwt"] is None
    assert figs["average"] == pytest.approx(1.0 / 3)  # mean of the last available row


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        average([])
    with pytest.raises(ValueError):
        average([[0.1, 0.2], [0.3]])


def test_summarize_known_numbers():
    s = summarize([1, 2, 3])
    # mean 2; sample std sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1; t_{0.975,2} = 4.30265; half = 4.30265 / sqrt(3)
    assert s["mean"] == pytest.approx(2.0)
    assert s["std"] == pytest.approx(1.0)
    half = 4.30265 * 1 / math.sqrt(3)  # = 2.48414...
    assert s["ci95"] == pytest.approx([2 - half, 2 + half], abs=1e-5)
    assert s["ci95"][1] == pytest.approx(4.48414, abs=1e-4)
    assert s["n"] == 3 and s["values"] == [1.0, 2.0, 3.0]
    assert set(s) == {"mean", "std", "ci95", "n", "values"}


def test_summarize_edge_cases():
    assert summarize([0.25]) == {"mean": 0.25, "std": 0.0, "ci95": [0.25, 0.25], "n": 1, "values": [0.25]}
    assert summarize([None, None]) is None
    assert summarize([]) is None
    # A None seed is left out (n = 2) but kept in `values` for alignment with the run's seeds.
    s = summarize([1.0, None, 3.0])
    # mean 2; std sqrt((1 + 1) / 1) = sqrt(2); t_{0.975,1} = 12.7062; half = 12.7062 * sqrt(2) / sqrt(2)
    assert s["n"] == 2 and s["values"] == [1.0, None, 3.0]
    assert s["std"] == pytest.approx(math.sqrt(2))
    assert s["ci95"] == pytest.approx([2 - 12.7062, 2 + 12.7062], abs=1e-4)
    # numpy scalars come out as plain floats (JSON-serialisable).
    s = summarize([np.float32(0.5), np.float64(0.7)])
    assert type(s["mean"]) is float and all(type(v) is float for v in s["values"])


def test_t_quantiles_are_exact():
    # Published two-sided 95% critical values (4 decimals) and the normal limit for large df.
    for df, value in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (30, 2.0423), (40, 2.0211), (60, 2.0003)):
        assert t_critical(df) == pytest.approx(value, abs=5e-5)
    assert t_critical(10**6) == pytest.approx(1.95996, abs=1e-5)
    # 32 values (df 31): 16 zeros and 16 ones: mean 0.5, std sqrt(32 * 0.25 / 31); half = t_{.975,31} * std / sqrt(32)
    s = summarize([0.0, 1.0] * 16)
    std = math.sqrt(8 / 31)
    assert s["std"] == pytest.approx(std)
    assert s["ci95"][1] - s["mean"] == pytest.approx(2.0395 * std / math.sqrt(32), abs=1e-4)
    with pytest.raises(ValueError):
        t_critical(0)


def test_summarize_matrices():
    seed0 = [[0.1, None], [0.5, None], [0.4, None]]
    seed1 = [[0.3, None], [0.7, None], [0.6, None]]
    mean, summary = summarize_matrices([seed0, seed1])
    assert [row[0] for row in mean] == pytest.approx([0.2, 0.6, 0.5])
    assert [row[1] for row in mean] == [None, None, None]
    assert all(row[1] is None for row in summary)  # not applicable stays None
    cell = summary[1][0]
    # values 0.5 and 0.7: mean 0.6, std sqrt((0.01 + 0.01) / 1) = 0.141421, half = 12.7062 * 0.141421 / sqrt(2) = 1.27062
    assert cell["mean"] == pytest.approx(0.6)
    assert cell["std"] == pytest.approx(math.sqrt(0.02))
    assert cell["ci95"] == pytest.approx([0.6 - 1.27062, 0.6 + 1.27062], abs=1e-5)
    assert cell["n"] == 2 and cell["values"] == pytest.approx([0.5, 0.7])


def test_summarize_matrices_ragged_rows():
    # Seed 1 is a stage behind: its row 2 counts as None, so row 2 is summarised from seed 0 alone.
    mean, summary = summarize_matrices([[[0.1], [0.5], [0.4]], [[0.3], [0.7]]])
    assert len(mean) == 3
    assert mean[2] == [pytest.approx(0.4)]
    assert summary[2][0]["n"] == 1 and summary[2][0]["values"] == [0.4, None]
    with pytest.raises(ValueError):
        summarize_matrices([[[0.1, 0.2]], [[0.1]]])


def test_summarize_cl_is_per_seed_then_mean():
    # seed a: F = 0.5 - 0.4 = 0.1; seed b: F = 0.6 - 0.6 = 0.0 -> mean 0.05.
    a = [[0.1, 0.2], [0.5, 0.3], [0.4, 0.6]]
    b = [[0.1, 0.2], [0.6, 0.3], [0.6, 0.6]]
    cl = summarize_cl([a, b])
    assert cl["forgetting"]["values"] == pytest.approx([0.1, 0.0])
    assert cl["forgetting"]["mean"] == pytest.approx(0.05)
    assert cl["average"]["mean"] == pytest.approx((0.5 + 0.6) / 2)  # A_a = 0.5, A_b = 0.6
    assert summarize_cl([[[0.1], [0.2]]])["fwt"] is None


# A stream of four tasks whose third (summarisation) has no CodeBLEU: its column is None in every row.
R4_WITHOUT_TASK_3 = [
    [0.10, 0.20, None, 0.30],
    [0.50, 0.25, None, 0.35],
    [0.45, 0.60, None, 0.40],
    [0.40, 0.55, None, 0.42],
    [0.35, 0.50, None, 0.70],
]


def test_figures_skip_a_task_the_metric_does_not_apply_to():
    R = R4_WITHOUT_TASK_3
    # A over tasks 1, 2 and 4: (0.35 + 0.50 + 0.70) / 3
    assert average(R) == pytest.approx(1.55 / 3)
    # F over tasks 1 and 2 (task 3 n/a, task 4 last): F_1 = max(0.50, 0.45, 0.40) - 0.35 = 0.15,
    # F_2 = max(0.60, 0.55) - 0.50 = 0.10 -> 0.125
    assert forgetting(R) == pytest.approx(0.125)
    # rate: (0.50 - 0.35) / 0.50 = 0.3 and (0.60 - 0.50) / 0.60 = 1/6 -> (0.3 + 1/6) / 2
    assert forgetting_rate(R) == pytest.approx((0.3 + 1 / 6) / 2)
    # BWT: (0.35 - 0.50) + (0.50 - 0.60) over 2 = -0.125
    assert bwt(R) == pytest.approx(-0.125)
    # FWT over tasks 2 and 4, each at its own index: R[1][2] - R[0][2] = 0.05, R[3][4] - R[0][4] = 0.12 -> 0.085
    assert fwt(R) == pytest.approx(0.085)


def test_a_nan_column_is_not_applicable_and_a_partial_column_is_not_computed_yet():
    nan = float("nan")
    with_nan = [[x if x is not None else nan for x in row] for row in R4_WITHOUT_TASK_3]
    assert cl_figures(with_nan) == pytest.approx(cl_figures(R4_WITHOUT_TASK_3))
    # Task 3 has a score at stage 0 only: not applicable is not what it is, so every figure reading
    # its later cells is None; FWT reads R[2][3], also None.
    partial = [row[:2] + [0.1 if s == 0 else None] + row[3:] for s, row in enumerate(R4_WITHOUT_TASK_3)]
    assert cl_figures(partial) == dict.fromkeys(["average", "forgetting", "forgetting_rate", "bwt", "fwt"])


def test_a_metric_of_the_last_task_alone_has_only_a_and_fwt():
    R = [[None, 0.1], [None, 0.3], [None, 0.5]]
    figs = cl_figures(R)
    assert figs["average"] == pytest.approx(0.5)
    assert figs["fwt"] == pytest.approx(0.2)  # R[1][2] - R[0][2]
    assert figs["forgetting"] is None and figs["forgetting_rate"] is None and figs["bwt"] is None


def test_summarize_cl_over_seeds_with_a_task_not_applicable():
    seeds = [R4_WITHOUT_TASK_3, [[x + 0.01 if x is not None else None for x in row] for row in R4_WITHOUT_TASK_3]]
    cl = summarize_cl(seeds)
    assert cl["average"]["values"] == pytest.approx([1.55 / 3, 1.58 / 3])
    assert cl["bwt"]["n"] == 2 and cl["notes"] == {}
