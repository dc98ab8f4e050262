"""The schedule PNG's marks: tick labels, stacked and skipped events, the stop mark.

These tests draw the figure (``plotting._figure``) and inspect its artists and their
positions on the canvas, not pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from algoperf_reinit import _plot_axes, plotting
from algoperf_reinit.plotting import PlotEvent, plot_schedule, schedule_geometry
from algoperf_reinit.schedules import CycleSpec, table_from_cycles

MARKER_POINTS = 8  # the markersize of event markers, in points


def _table(peak=1e-3):
    return table_from_cycles([CycleSpec(100, warmup=10, peak=peak)] * 2, capacity=4)


def _drawn(geometry):
    fig = plotting._figure(geometry, dpi=50)
    fig.canvas.draw()
    return fig, fig.axes[0]


def _line(ax, label):
    (line,) = [artist for artist in ax.get_lines() if artist.get_label() == label]
    return line


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (1e-3, "1e-3"), (2.5e-4, "2.5e-4"), (0.0015000000001, "1.5e-3"), (0.05, "0.05"),
    (0.1, "0.1"), (1, "1"), (1500, "1500"), (2e5, "2e5"), (-3e-3, "-3e-3"), (9.999e-4, "1e-3"),
])
def test_number_labels_are_plain_or_scientific(value, text):
    assert _plot_axes.number_label(value) == text


def test_step_labels_have_thousands_separators():
    assert [_plot_axes.step_label(v) for v in (0, 2500.0, 10_000, 12.5)] == [
        "0", "2,500", "10,000", "12.5"]


def test_tick_labels_are_scientific_not_si_prefixes():
    _, ax = _drawn(schedule_geometry(_table(1e-3), budget=20_000, num_points=50))
    y_text = [t.get_text() for t in ax.get_yticklabels()]
    x_text = [t.get_text() for t in ax.get_xticklabels()]
    assert "1e-3" in y_text and "0" in y_text
    assert not any(t.endswith((" m", " µ", " k")) for t in y_text + x_text)
    assert "10,000" in x_text


def test_events_at_one_step_are_stacked_in_the_geometry():
    events = [PlotEvent(100, "early_stop"), PlotEvent(100, "reset"), PlotEvent(150, "reset")]
    geometry = schedule_geometry(_table(1.0), events=events, num_points=50)
    stop, reset = geometry.events
    assert (stop.kind, reset.kind) == ("early_stop", "reset")
    np.testing.assert_array_equal(stop.y, stop.v)  # the first at a step sits on the curve
    span = geometry.ylim[1] - geometry.ylim[0]
    assert reset.y[0] > reset.v[0] == stop.v[0]
    assert reset.y[0] - stop.y[0] > 0.05 * span
    assert reset.y[1] == reset.v[1]  # alone at step 150: on the curve
    assert geometry.ylim[1] > reset.y[0]  # the stacked marker is inside the axes


def test_coinciding_markers_are_both_visible_on_the_canvas():
    events = [PlotEvent(100, "reset"), PlotEvent(100, "early_stop")]
    geometry = schedule_geometry(_table(1.0), events=events, num_points=50)
    fig, ax = _drawn(geometry)
    reset = ax.transData.transform(_line(ax, "reset").get_xydata())
    stop = ax.transData.transform(_line(ax, "early stop").get_xydata())
    assert reset[0, 0] == pytest.approx(stop[0, 0])  # same step...
    marker_pixels = MARKER_POINTS * fig.dpi / 72
    assert abs(reset[0, 1] - stop[0, 1]) > marker_pixels  # ...markers do not overlap
    # A stem joins the raised marker to the curve.
    raised = geometry.events[1]
    stems = [c.get_segments()[0] for c in ax.collections if c.get_segments()
             and np.allclose(c.get_segments()[0][:, 0], 100.0)]
    assert [seg[:, 1].tolist() for seg in stems if seg[1, 1] == raised.y[0]] == [
        [raised.v[0], raised.y[0]]]


def test_skipped_early_stops_are_drawn_hollow_with_their_own_legend_entry():
    events = [PlotEvent(120, "early_stop"), PlotEvent(160, "early_stop_skipped"),
              PlotEvent(180, "early_stop_skipped")]
    fig, ax = _drawn(schedule_geometry(_table(), events=events, num_points=50))
    stop, skipped = _line(ax, "early stop"), _line(ax, "early stop skipped")
    assert skipped.get_xdata().tolist() == [160.0, 180.0]
    assert to_rgba(skipped.get_markerfacecolor()) == to_rgba("white")
    assert to_rgba(stop.get_markerfacecolor()) == to_rgba(stop.get_color())
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "early stop" in legend and "early stop skipped" in legend


def test_stopped_at_draws_a_line_and_shades_the_rest():
    geometry = schedule_geometry(_table(), stopped_at=150, num_points=50)
    assert geometry.stopped_at == 150.0 and geometry.xlim == (0.0, 200.0)
    fig, ax = _drawn(geometry)
    line = _line(ax, "training stopped at 150")
    assert list(line.get_xdata()) == [150, 150]
    shaded = [p for p in ax.patches if p.get_x() == pytest.approx(150.0)]
    assert len(shaded) == 1 and shaded[0].get_width() == pytest.approx(50.0)
    assert "training stopped at 150" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_no_stop_mark_by_default():
    _, ax = _drawn(schedule_geometry(_table(), num_points=50))
    assert not [line for line in ax.get_lines() if "stopped" in line.get_label()]
    assert len(ax.patches) == 0


def test_a_stop_past_the_budget_extends_the_axis_but_not_the_title():
    geometry = schedule_geometry(_table(), budget=150, stopped_at=260, num_points=50)
    assert geometry.xlim == (0.0, 260.0)
    assert geometry.title == "2 cycles, budget 150 steps"
    assert geometry.curve.t[-1] == 260.0


@pytest.mark.parametrize(("stopped_at", "error", "message"), [
    (-5, ValueError, r"stopped_at must be >= the start of the x axis \(0\), got -5"),
    ("end", TypeError, "stopped_at must be a real number, got .end."),
    (float("nan"), ValueError, "stopped_at must be a number, not NaN"),
])
def test_bad_stopped_at_is_rejected(tmp_path, stopped_at, error, message):
    with pytest.raises(error, match=message):
        plot_schedule(_table(), tmp_path / "x.png", stopped_at=stopped_at, num_points=50)


def test_stopped_at_changes_the_png(tmp_path):
    plain = plot_schedule(_table(), tmp_path / "a.png", num_points=50, dpi=30).read_bytes()
    stop = plot_schedule(_table(), tmp_path / "b.png", num_points=50, dpi=30,
                         stopped_at=120).read_bytes()
    assert plain != stop


def test_one_cycle_title_is_singular():
    table = table_from_cycles([CycleSpec(100, warmup=10)], capacity=2)
    assert schedule_geometry(table, num_points=10).title == "1 cycle, budget 100 steps"


@pytest.mark.parametrize("name", [
    "algoperf_reinit.plotting", "algoperf_reinit._plot_axes", "algoperf_reinit._plot_inputs",
    "algoperf_reinit._plot_run", "algoperf_reinit.run_plot", "algoperf_reinit.__main__",
])
def test_docstring_examples_of_the_plotting_modules(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize(("clock", "xlabel", "title"), [
    ("steps", "step", "2 cycles, budget 200 steps"),
    ("seconds", "seconds", "2 cycles, budget 200 s"),
    ("layer_tokens", "layer tokens", "2 cycles, budget 200 layer tokens"),
])
def test_each_clock_names_its_axis_and_budget(clock, xlabel, title):
    geometry = schedule_geometry(_table(), clock=clock, num_points=10)
    assert (geometry.xlabel, geometry.title) == (xlabel, title)
