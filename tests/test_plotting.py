"""Tests for algoperf_reinit.plotting: PNG output, determinism, events, describe_table."""

from __future__ import annotations

import collections
import pathlib
import re

import jax
import numpy as np
import pytest

from algoperf_reinit.plotting import PlotEvent, describe_table, plot_schedule
from algoperf_reinit.schedules import (
    CycleSpec,
    Decay,
    ScheduleConfig,
    build_cycle_table,
    jax_lr_schedule,
    table_from_cycles,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Small figures keep the suite fast; the drawing code is the same at any size.
FAST = dict(num_points=200, dpi=30)


@pytest.fixture(scope="module")
def table():
    hp = {"learning_rate": 2e-3, "warmup_factor": 0.05}
    config = ScheduleConfig(cycle_fractions=(0.2, 0.4, 0.4), alter_lr=(0.0, 5e-4, -5e-4),
                            alter_warmup=(0.0, 0.02, 0.0))
    return jax_lr_schedule(10_000, hp, config).schedule


def test_writes_a_png(table, tmp_path):
    path = plot_schedule(table, tmp_path / "lr.png", **FAST)
    assert path == tmp_path / "lr.png"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert b"IEND" in data[-12:]


def test_png_has_no_software_or_date_metadata(table, tmp_path):
    data = plot_schedule(table, tmp_path / "lr.png", **FAST).read_bytes()
    assert b"Software" not in data
    assert b"matplotlib" not in data.lower()


def test_same_inputs_give_identical_bytes(table, tmp_path):
    kwargs = dict(events=[PlotEvent(2000, "reinit")], eval_points=[500, 1500], **FAST)
    first = plot_schedule(table, tmp_path / "a.png", **kwargs).read_bytes()
    second = plot_schedule(table, tmp_path / "b.png", **kwargs).read_bytes()
    assert first == second


def test_events_change_the_figure(table, tmp_path):
    plain = plot_schedule(table, tmp_path / "plain.png", **FAST).read_bytes()
    with_events = plot_schedule(
        table, tmp_path / "events.png",
        events=[PlotEvent(2000, "reinit"), {"step": 8000, "kind": "early_stop", "label": "x"}],
        **FAST,
    ).read_bytes()
    assert plain != with_events


def test_each_event_kind_is_drawn(table, tmp_path):
    reinit = plot_schedule(table, tmp_path / "r.png", events=[PlotEvent(5000, "reinit")],
                           **FAST).read_bytes()
    stop = plot_schedule(table, tmp_path / "s.png", events=[PlotEvent(5000, "early_stop")],
                         **FAST).read_bytes()
    assert reinit != stop


def test_events_accept_any_record_with_step_and_kind(table, tmp_path):
    Record = collections.namedtuple("Record", "step kind")
    a = plot_schedule(table, tmp_path / "a.png", events=[Record(3000, "custom")], **FAST)
    b = plot_schedule(table, tmp_path / "b.png", events=[PlotEvent(3000, "custom")], **FAST)
    assert a.read_bytes() == b.read_bytes()


def test_eval_points_change_the_figure(table, tmp_path):
    plain = plot_schedule(table, tmp_path / "plain.png", **FAST).read_bytes()
    dots = plot_schedule(table, tmp_path / "dots.png", eval_points=np.arange(0, 10_000, 500),
                         **FAST).read_bytes()
    assert plain != dots


def test_budget_title_and_clock_change_the_figure(table, tmp_path):
    base = plot_schedule(table, tmp_path / "base.png", **FAST).read_bytes()
    for i, kwargs in enumerate([dict(budget=12_000), dict(title="mine"), dict(clock="seconds")]):
        assert plot_schedule(table, tmp_path / f"{i}.png", **kwargs, **FAST).read_bytes() != base


def test_creates_parent_directories(table, tmp_path):
    path = plot_schedule(table, tmp_path / "a" / "b" / "lr.PNG", **FAST)
    assert path.is_file()


def test_cycles_without_warmup_and_seconds_clock(tmp_path):
    cycles = [CycleSpec(length=10.5, warmup=0.0, peak=1.0, warmup_shape="none"),
              CycleSpec(length=20.25, warmup=2.5, peak=0.5, decay_shape=Decay.wsd(0.3, "1-sqrt"))]
    table = table_from_cycles(cycles, clock="seconds", capacity=4)
    path = plot_schedule(table, tmp_path / "s.png", clock="seconds", **FAST)
    assert path.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("bad", ["lr.jpg", "lr", "lr.png.txt"])
def test_rejects_a_path_without_png_extension(table, tmp_path, bad):
    with pytest.raises(ValueError, match=r"\.png"):
        plot_schedule(table, tmp_path / bad, **FAST)


def test_rejects_a_directory_or_a_file_in_the_way(table, tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ValueError, match="directory"):
        plot_schedule(table, tmp_path / "dir.png", **FAST)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="a file is in the way"):
        plot_schedule(table, tmp_path / "file" / "lr.png", **FAST)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(clock="minutes"), ValueError, "clock"),
        (dict(budget=0), ValueError, "budget"),
        (dict(budget=float("nan")), ValueError, "budget"),
        (dict(budget="10"), TypeError, "budget"),
        (dict(num_points=1), ValueError, "num_points"),
        (dict(dpi=0), ValueError, "dpi"),
        (dict(title=3), TypeError, "title"),
        (dict(events=[{"step": 5}]), TypeError, "events\\[0\\]"),
        (dict(events=[PlotEvent(5, "")]), ValueError, "kind"),
        (dict(events=[PlotEvent(float("inf"), "reinit")]), ValueError, "step"),
        (dict(events="reinit"), TypeError, "events"),
        (dict(eval_points=[[1, 2]]), TypeError, "eval_points"),
        (dict(eval_points=[float("nan")]), ValueError, "eval_points"),
    ],
)
def test_rejects_bad_arguments(table, tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_schedule(table, tmp_path / "lr.png", **kwargs)


def test_rejects_something_that_is_not_a_table(tmp_path):
    with pytest.raises(TypeError, match="CycleTable"):
        plot_schedule(lambda step: 0.1, tmp_path / "lr.png")
    with pytest.raises(TypeError, match="CycleTable"):
        describe_table({"start": [0.0]})


def test_describe_table_lists_every_cycle(table):
    text = describe_table(table)
    lines = text.splitlines()
    assert len(lines) == 1 + table.num_cycles
    header = lines[0].split()
    assert header[:4] == ["cycle", "start", "end", "warmup"]
    for peak in ("0.002", "0.0025", "0.0015"):
        assert peak in text
    # Boundaries and warmups (int(0.05 * 2000), int(0.07 * 4000), int(0.05 * 4000)).
    assert lines[1].split()[:4] == ["0", "0", "2000", "100"]
    assert lines[2].split()[:4] == ["1", "2000", "6000", "280"]
    assert lines[3].split()[:4] == ["2", "6000", "10000", "200"]
    assert all(line.split()[-2:] == ["linear", "cosine"] for line in lines[1:])
    # Fixed width: text columns start, and number columns end, where their headers do.
    shape_column = lines[0].index("warmup shape")
    peak_end = lines[0].index("peak") + len("peak")
    for line in lines[1:]:
        assert line[shape_column - 2:shape_column + 6] == "  linear"
        assert line[peak_end - 1] != " " and line[peak_end] == " "


def test_describe_table_names_shapes_and_skips_padding():
    cycles = [CycleSpec(length=100, warmup=10, peak=1e-3, warmup_shape="exponential",
                        init_value=1e-5, decay_shape="rsqrt"),
              CycleSpec(length=50, peak=5e-4, end_value=1e-5, warmup_shape="none",
                        decay_shape="wsd")]
    text = describe_table(table_from_cycles(cycles, capacity=8))
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[1].split()[-2:] == ["exponential", "rsqrt"]
    assert lines[2].split()[-2:] == ["none", "wsd"]
    assert "1e-05" in lines[2] and "0.0005" in lines[2]


def test_describe_table_of_a_built_table():
    table = build_cycle_table(ScheduleConfig(num_cycles=4, cycle_mul=2.0), 1500, 1e-3, 0.1)
    starts = [line.split()[1] for line in describe_table(table).splitlines()[1:]]
    assert starts == ["0", "100", "300", "700"]


def test_gallery_readme_lists_exactly_the_committed_pngs():
    plots = pathlib.Path(__file__).resolve().parents[1] / "plots"
    readme = (plots / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\[`([\w.\-]+\.png)`\]", readme))
    on_disk = {p.name for p in plots.glob("*.png")}
    assert listed == on_disk
    assert 8 <= len(on_disk) <= 12
    assert sum((plots / name).stat().st_size for name in on_disk) < 1.5e6
    assert all((plots / name).read_bytes().startswith(PNG_SIGNATURE) for name in on_disk)


def _tables_before_and_after_an_early_stop():
    from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table

    before = build_cycle_table(ScheduleConfig(cycle_fractions=(0.5, 0.5)), 1000, 1e-3, 0.1,
                               capacity=4)
    after = build_cycle_table(ScheduleConfig(cycle_fractions=(0.3, 0.7)), 1000, 1e-3, 0.1,
                              capacity=4)
    return before, after


def test_history_draws_the_applied_rate_of_each_stretch():
    from algoperf_reinit.schedules import evaluate
    from algoperf_reinit.schedules._host import applied_values as _applied_values

    before, after = _tables_before_and_after_an_early_stop()
    times = np.arange(0, 1000, 7, dtype=np.float32)
    got = _applied_values([before, after], np.array([300.0], np.float32), times)
    want = np.where(times < 300, np.asarray(evaluate(before, times)),
                    np.asarray(evaluate(after, times)))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # The stretch before the cut really follows the old plan (it differs from the new one).
    assert not np.allclose(got[times < 300], np.asarray(evaluate(after, times[times < 300])))


def test_history_changes_the_figure_and_is_deterministic(tmp_path):
    before, after = _tables_before_and_after_an_early_stop()
    plain = plot_schedule(after, tmp_path / "plain.png").read_bytes()
    a = plot_schedule(after, tmp_path / "a.png", history=[(300, before)]).read_bytes()
    b = plot_schedule(after, tmp_path / "b.png", history=[(300, before)]).read_bytes()
    assert a == b and a != plain


@pytest.mark.parametrize(("history", "error", "message"), [
    ("x", TypeError, "history must be a sequence"),
    ([(1.0,)], TypeError, r"history\[0\] must be a \(t, CycleTable\) pair"),
    ([(float("nan"), None)], ValueError, r"history\[0\]\[0\] must be a number, not NaN"),
    ([(1.0, "table")], TypeError, "table must be a CycleTable"),
])
def test_bad_history_is_rejected(tmp_path, history, error, message):
    _, after = _tables_before_and_after_an_early_stop()
    with pytest.raises(error, match=message):
        plot_schedule(after, tmp_path / "x.png", history=history)


def test_history_times_must_increase(tmp_path):
    before, after = _tables_before_and_after_an_early_stop()
    with pytest.raises(ValueError, match="strictly increasing, got 300 then 200"):
        plot_schedule(after, tmp_path / "x.png", history=[(300, before), (200, before)])


def test_redraws_with_more_points_do_not_compile_again(tmp_path):
    from algoperf_reinit.runner import CompileCounter

    before, after = _tables_before_and_after_an_early_stop()
    plot_schedule(after, tmp_path / "a.png")
    with CompileCounter() as counter:
        plot_schedule(after, tmp_path / "b.png", history=[(300, before)])
        plot_schedule(before, tmp_path / "c.png", num_points=9000)
    assert [name for _, name, _ in counter.events if "evaluate" in name] == []


# ------------------------------------------------------------------- geometry (no drawing)


def _two_cycles():
    return table_from_cycles([CycleSpec(100, warmup=10, peak=1.0, init_value=0.1)] * 2,
                             capacity=4)


def test_geometry_marks_boundaries_warmup_ends_and_axes():
    from algoperf_reinit.plotting import schedule_geometry

    geometry = schedule_geometry(_two_cycles(), num_points=50)
    assert geometry.boundaries.tolist() == [100.0]
    assert geometry.warmup_ends.t.tolist() == [10.0, 110.0]
    np.testing.assert_allclose(geometry.warmup_ends.v, [1.0, 1.0])
    assert geometry.xlim == (0.0, 200.0) and geometry.ylim == pytest.approx((0.0, 1.08))
    assert (geometry.xlabel, geometry.title) == ("step", "2 cycles, budget 200 steps")
    t, v = geometry.curve
    assert t.dtype == np.float32 and v.dtype == np.float64 and np.all(np.diff(t) > 0)
    # The restart is drawn as a jump: the time just before the boundary and the boundary.
    at = int(np.searchsorted(t, np.float32(100.0)))
    assert t[at] == 100.0 and t[at - 1] == np.nextafter(np.float32(100.0), np.float32(0))
    assert v[at] == pytest.approx(0.1) and v[at - 1] < 1e-3
    assert geometry.planned == () and geometry.events == () and geometry.evals.t.size == 0


def test_geometry_groups_events_by_kind_and_keeps_marks_in_range():
    from algoperf_reinit.plotting import EventMarks, schedule_geometry

    events = [PlotEvent(50, "reinit"), PlotEvent(120, "early_stop", "plateau"),
              {"step": 150, "kind": "reinit", "label": "b"}, PlotEvent(500, "reinit")]
    geometry = schedule_geometry(_two_cycles(), events=events, eval_points=[0, 60, 300],
                                 budget=180.0, clock="seconds", title="mine")
    assert [m.kind for m in geometry.events] == ["reinit", "early_stop"]
    reinit = geometry.events[0]
    assert isinstance(reinit, EventMarks) and reinit.t.tolist() == [50.0, 150.0]
    assert reinit.labels == (None, "b") and geometry.events[1].labels == ("plateau",)
    np.testing.assert_allclose(reinit.v, [float(_two_cycles()(50)), float(_two_cycles()(150))])
    assert geometry.evals.t.tolist() == [0.0, 60.0]  # 300 is past the budget
    assert geometry.xlim == (0.0, 180.0) and geometry.xlabel == "seconds"
    assert geometry.title == "mine" and geometry.curve.t[-1] == 180.0


def test_geometry_of_a_history_applies_each_table_and_shows_the_old_plan():
    from algoperf_reinit.plotting import schedule_geometry
    from algoperf_reinit.schedules import evaluate

    before, after = _tables_before_and_after_an_early_stop()
    geometry = schedule_geometry(after, history=[(300, before)], num_points=100)
    (planned,) = geometry.planned
    # The old plan's first cycle ran to 500: drawn from the cut to just before its end.
    assert planned.t[0] == 300.0 and planned.t[-1] == np.nextafter(np.float32(500), np.float32(0))
    np.testing.assert_allclose(planned.v, np.asarray(evaluate(before, planned.t)), rtol=1e-6)
    t, v = geometry.curve
    np.testing.assert_allclose(v, np.where(t < 300, np.asarray(evaluate(before, t)),
                                           np.asarray(evaluate(after, t))), rtol=1e-6)
    # Warmup ends: the old table's before the cut, the new table's after it.
    assert geometry.warmup_ends.t.tolist() == [50.0, 370.0]


def test_plot_schedule_draws_the_geometry(tmp_path, monkeypatch):
    from algoperf_reinit import plotting

    drawn = []
    monkeypatch.setattr(plotting, "_draw", lambda g, out, dpi: drawn.append((g, out, dpi)))
    kwargs = dict(events=[PlotEvent(30, "reinit")], eval_points=[5, 40], num_points=64)
    out = plotting.plot_schedule(_two_cycles(), tmp_path / "g.png", dpi=20, **kwargs)
    ((geometry, path, dpi),) = drawn
    assert (path, dpi) == (out, 20)
    expected = plotting.schedule_geometry(_two_cycles(), **kwargs)
    for got, want in zip(jax.tree.leaves(geometry), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(got, want)
