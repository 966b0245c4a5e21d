"""The figures' drawn artists (base line, error bars, legends, colour scales) on synthetic results built by
`hybridcl.results`, as in test_report."""

from __future__ import annotations

import pytest
from matplotlib.container import ErrorbarContainer

import test_report
from hybridcl.report.plots import colour_scale, forgetting_figure, matrices_figure, score_vs_params_figure
from hybridcl.report.view import RunView
from hybridcl.results import strategy_results
from hybridcl.strategies import get_strategy
from test_report import KNOBS, make_results, stage_records

STRATEGIES = ("task_specific", "shared_layer")


def run_of(**kwargs) -> RunView:
    return RunView.of(make_results(**kwargs))


def errorbars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def bar_extent(container: ErrorbarContainer) -> tuple[float, float]:
    """(low, high) of the one vertical error bar of a point."""
    (segment,) = container.lines[2][0].get_segments()
    return segment[0][1], segment[1][1]


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def base_lines(ax, value: float) -> list:
    """The horizontal lines across the whole axes at `value`."""
    return [
        line
        for line in ax.get_lines()
        if list(line.get_xdata()) == [0, 1] and line.get_ydata()[0] == line.get_ydata()[1] == pytest.approx(value)
    ]


# --- score vs parameters -----------------------------------------------------------------------------------


def test_score_vs_params_shows_the_base_line_and_the_seeds_intervals():
    run = run_of(seeds=(0, 1, 2), noise=0.01)
    base = run.base_average("bleu")
    assert base.several and base.ci95[1] > base.ci95[0]  # the base row moves with the seeds' noise here
    fig = score_vs_params_figure(run, "bleu")
    for ax in fig.axes:
        assert len(base_lines(ax, base.mean)) == 1
        containers = errorbars(ax)
        assert len(containers) == len(run.strategies)
        for container in containers:
            assert container.has_yerr
        expected = sorted(run.figure(name, "bleu", "average").ci95 for name in run.names)
        drawn = sorted(bar_extent(c) for c in containers)
        assert [end for bar in drawn for end in bar] == pytest.approx([end for ci in expected for end in ci])
        assert ax.get_ylim()[0] == 0
        assert ax.get_ylim()[1] > max(high for _, high in expected)
    (label,) = legend_texts(fig.axes[0])
    assert label == f"stage 0, the base model ({base.mean:.3f}), band: 95% CI"
    assert "error bars: 95% CI across seeds" in fig.get_suptitle()


def test_score_vs_params_with_one_seed_has_no_error_bars():
    run = run_of(seeds=(0,))
    fig = score_vs_params_figure(run, "bleu")
    base = run.base_average("bleu")
    for ax in fig.axes:
        assert len(base_lines(ax, base.mean)) == 1
        assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > base.mean
        assert [c.has_yerr for c in errorbars(ax)] == [False] * len(run.strategies)
    assert legend_texts(fig.axes[0]) == [f"stage 0, the base model ({base.mean:.3f})"]  # no band: nothing to span
    assert "error bars" not in fig.get_suptitle()


# --- accuracy matrices ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "scale"),
    [([0.0, 0.0], (0.0, 1.0)), ([0.0011, 0.03], (0.0, 0.05)), ([0.35, 0.05], (0.0, 0.5)), ([0.2, 0.87], (0.0, 1.0))],
)
def test_colour_scales_start_at_zero_and_hold_every_value(values, scale):
    assert colour_scale(values) == scale


def matrix_images(fig) -> list:
    return [image for ax in fig.axes for image in ax.images]


def colour_bar_label(fig) -> str:
    (bar,) = [image.colorbar for image in matrix_images(fig) if image.colorbar is not None]
    return bar.ax.get_ylabel()


def test_an_all_zero_matrix_gets_the_whole_range(monkeypatch):
    monkeypatch.setitem(test_report.METRIC_SCALE, "exact_match", 0.0)  # every cell of every seed 0
    fig = matrices_figure(run_of(seeds=(0,), noise=0.0), "exact_match")
    images = matrix_images(fig)
    assert len(images) == len(run_of(seeds=(0,)).strategies)
    assert {image.get_clim() for image in images} == {(0.0, 1.0)}
    assert colour_bar_label(fig) == "exact match (0–1, higher is better)"


def test_a_matrix_colour_scale_runs_from_zero_over_every_value():
    run = run_of()
    fig = matrices_figure(run, "bleu")
    largest = max(c.mean for s in run.strategies.values() for row in s.cells["bleu"] for c in row)
    assert 0.2 < largest <= 0.5
    assert {image.get_clim() for image in matrix_images(fig)} == {(0.0, 0.5)}
    assert colour_bar_label(fig) == "BLEU (0–1, higher is better)\ncolours span 0–0.5"


def test_grey_means_na_only_when_a_cell_is_na():
    assert "grey = n/a" not in matrices_figure(run_of(strategies=STRATEGIES), "bleu").get_suptitle()
    # shared_layer's stage 2 has finished in no seed yet: its last row is n/a
    results = make_results(strategies=STRATEGIES)
    records = stage_records(STRATEGIES, results["tasks"], results["seeds"], KNOBS, 0.001)
    for seed in records["shared_layer"]:
        seed[2] = None
    results["strategies"]["shared_layer"] = strategy_results(
        get_strategy("shared_layer"), results["tasks"], records["shared_layer"],
        results["strategies"]["shared_layer"]["params"],
    )  # fmt: skip
    assert "grey = n/a" in matrices_figure(RunView.of(results), "bleu").get_suptitle()


# --- forgetting and transfer ------------------------------------------------------------------------------------


def test_forgetting_is_drawn_symmetric_around_zero():
    fig = forgetting_figure(run_of(seeds=(0, 1, 2)), "bleu")
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    assert low == pytest.approx(-high) and high > 0
    assert legend_texts(ax) == [
        "F: forgetting (lower is better)",
        "BWT: backward transfer (higher is better)",
        "FWT: forward transfer (higher is better)",
    ]
    assert "error bars: 95% CI across seeds" in ax.get_title()


def test_forgetting_legend_names_only_the_figures_drawn():
    results = make_results(seeds=(0,))
    for entry in results["strategies"].values():
        entry["cl"]["bleu"]["fwt"] = None
    (ax,) = forgetting_figure(RunView.of(results), "bleu").axes
    assert legend_texts(ax) == ["F: forgetting (lower is better)", "BWT: backward transfer (higher is better)"]
    assert "error bars" not in ax.get_title()
