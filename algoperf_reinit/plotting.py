"""Headless plots and text summaries of cycle tables.

:func:`plot_schedule` draws a :class:`~algoperf_reinit.schedules.CycleTable` over a
whole budget to a PNG file, with its cycle boundaries, warmup ends and optional run
events (re-initialisations, early stops, evaluations). It works in three steps:
the arguments are validated, :func:`schedule_geometry` computes what is drawn (a
:class:`ScheduleGeometry` of numpy arrays, which tests and other plotting tools can
use without drawing), and one function of matplotlib calls draws it. It uses a
:class:`matplotlib.figure.Figure` with the Agg canvas directly, never ``pyplot``,
so it is safe in scripts, tests and worker threads without a display, and the same
inputs always give byte-identical PNG files.

:func:`describe_table` renders the cycles of a table as a fixed-width text table.
"""

from __future__ import annotations

import os
import pathlib
import types
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from algoperf_reinit import _plot_axes, _plot_inputs, _validation
from algoperf_reinit._plot_inputs import PlotEvent
from algoperf_reinit.schedules import CycleTable
from algoperf_reinit.schedules._describe import describe_table, real_cycles
from algoperf_reinit.schedules._host import (
    applied_values,
    applied_warmup_ends,
    evaluate_host,
    planned_times,
)
from algoperf_reinit.schedules._table import check_clock

__all__ = [
    "DEFAULT_DPI",
    "EventMarks",
    "Marks",
    "PlotEvent",
    "ScheduleGeometry",
    "describe_table",
    "plot_schedule",
    "schedule_geometry",
]

DEFAULT_DPI = 100
"""Resolution of :func:`plot_schedule` PNGs in dots per inch."""

_FIGSIZE = (8.0, 4.5)
_CURVE_COLOR = "tab:blue"
_BOUNDARY_COLOR = "0.45"
_WARMUP_COLOR = "tab:orange"
_EVAL_COLOR = "black"
_XLABELS = types.MappingProxyType({"steps": "step", "seconds": "seconds",
                                   "layer_tokens": "layer tokens"})

class Marks(NamedTuple):
    """Points of a plot: times and the learning rate there."""

    t: np.ndarray  # shape=(k,), dtype=float32; times in clock units
    v: np.ndarray  # shape=(k,), dtype=float64; learning rates


class EventMarks(NamedTuple):
    """The events of one kind, as drawn (one marker style and legend entry per kind)."""

    kind: str
    t: np.ndarray  # shape=(k,), dtype=float32
    v: np.ndarray  # shape=(k,), dtype=float64; the curve's value at each event
    labels: tuple[str | None, ...]  # text next to each marker, or None
    y: np.ndarray  # shape=(k,), dtype=float64; where the marker is drawn: ``v``, raised
    # by one stacking step per earlier event (of any kind) at the same time


class ScheduleGeometry(NamedTuple):
    """Everything :func:`plot_schedule` draws, in data coordinates.

    Attributes:
      curve: the learning rate the run applied (each table of a history on its
        own stretch), sampled densely and at every jump.
      planned: for each table of a history, what it had planned past its cut up
        to the end of the cycle it was in (drawn dotted), in history order.
      boundaries: cycle boundaries strictly inside the x axis (float64).
      warmup_ends: the warmup ends of the tables on their stretches.
      events: the events inside the x axis, one entry per kind in order of first
        appearance.
      evals: the eval points inside the x axis.
      xlim: the x axis.
      ylim: the y axis.
      xlabel: ``"step"``, ``"seconds"`` or ``"layer tokens"`` (the clock's unit).
      title: the title (given, or stating the cycles and the budget).
      stopped_at: where training stopped (marked), or ``None``.
    """

    curve: Marks
    planned: tuple[Marks, ...]
    boundaries: np.ndarray
    warmup_ends: Marks
    events: tuple[EventMarks, ...]
    evals: Marks
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    xlabel: str
    title: str
    stopped_at: float | None = None


def _sample_times(table: CycleTable, lo: float, hi: float, num_points: int) -> np.ndarray:
    """A dense grid plus the float32 times just before and at every boundary and warmup end."""
    # Each boundary and warmup end is a float64 sum of two float32 numbers; rounded to
    # float32 it equals the float32 sum (53 >= 2 * 24 + 2 bits: double rounding of a
    # sum is innocuous), so these are the times at which the float32 table jumps.
    corners = np.asarray(table.boundaries() + table.warmup_ends(), np.float32)
    before = np.nextafter(corners, np.float32(-np.inf))
    grid = np.linspace(lo, hi, num_points).astype(np.float32)
    times = np.unique(np.concatenate([grid, corners, before]))
    return times[(times >= np.float32(lo)) & (times <= np.float32(hi))]


# ----------------------------------------------------------------------------- geometry


_STACK_STEP = 0.07  # fraction of the y range between markers stacked at one time


def _event_marks(events: Sequence[PlotEvent], t: np.ndarray, v: np.ndarray,
                 dy: float) -> tuple[EventMarks, ...]:
    """The events grouped by kind, kinds in order of first appearance, stacked by time."""
    y = v + _plot_axes.stack_levels(t) * dy
    marks = []
    for kind in dict.fromkeys(e.kind for e in events):
        chosen = [j for j, e in enumerate(events) if e.kind == kind]
        marks.append(EventMarks(kind, t[chosen], v[chosen],
                                tuple(events[j].label for j in chosen), y[chosen]))
    return tuple(marks)


def _default_title(table: CycleTable, hi: float, clock: str) -> str:
    n = table.num_cycles
    budget_text = (f"{hi:,.0f} steps" if clock == "steps" else f"{hi:,.6g} s"
                   if clock == "seconds" else f"{hi:,.6g} {_XLABELS.get(clock, clock)}")
    return f"{n} cycle{'s' if n != 1 else ''}, budget {budget_text}"


def _geometry(table: CycleTable, lo: float, hi: float, clock: str, title: str,
              events: list[PlotEvent], points: np.ndarray,
              past: list[tuple[float, CycleTable]], num_points: int,
              stopped_at: float | None) -> ScheduleGeometry:
    tables = [old for _, old in past] + [table]
    cuts = np.array([t for t, _ in past], np.float32)  # table k applies on [cuts[k-1], cuts[k])
    curve_t = np.unique(np.concatenate(
        [_sample_times(tb, lo, hi, num_points) for tb in tables]
        + [cuts, np.nextafter(cuts, np.float32(-np.inf))]))
    curve_t = curve_t[(curve_t >= np.float32(lo)) & (curve_t <= np.float32(hi))]
    warm_t = applied_warmup_ends(tables, cuts)
    warm_t = warm_t[(warm_t >= lo) & (warm_t <= hi)]
    events = [e for e in events if lo <= e.step <= hi]
    event_t = np.array([e.step for e in events], np.float32)
    points = points[(points >= lo) & (points <= hi)].astype(np.float32)
    values = applied_values(tables, cuts, np.concatenate([curve_t, warm_t, event_t, points]
                                                          ).astype(np.float32))
    curve_v, warm_v, event_v, point_v = np.split(
        values, np.cumsum([curve_t.size, warm_t.size, event_t.size]))
    planned = []  # what each old table planned past its cut, to the end of its cycle
    for cut, old in past:
        ts = planned_times(old, cut, curve_t, hi)
        if ts.size:
            planned.append(Marks(ts, evaluate_host(old, ts)))
    shown = np.concatenate([values, *[m.v for m in planned]])
    top = float(np.max(shown)) if shown.size else 1.0
    ylim = (min(0.0, float(np.min(shown)) if shown.size else 0.0), top * 1.08 if top > 0 else 1.0)
    dy = _STACK_STEP * (ylim[1] - ylim[0])
    marks = _event_marks(events, event_t, event_v, dy)
    highest = max((float(np.max(m.y)) for m in marks), default=ylim[0])
    return ScheduleGeometry(
        curve=Marks(curve_t, curve_v),
        planned=tuple(planned),
        boundaries=np.array([b for b in table.boundaries() if lo < b < hi], np.float64),
        warmup_ends=Marks(warm_t, warm_v),
        events=marks,
        evals=Marks(points, point_v),
        xlim=(lo, hi),
        ylim=(ylim[0], max(ylim[1], highest + dy / 2)),
        xlabel=_XLABELS.get(clock, clock),
        title=title,
        stopped_at=stopped_at,
    )


def schedule_geometry(
    table: CycleTable, *, budget: float | None = None, clock: str = "steps",
    title: str | None = None, events: Sequence[Any] = (),
    eval_points: Sequence[float] | np.ndarray = (),
    history: Sequence[tuple[float, CycleTable]] = (), num_points: int = 4000,
    stopped_at: float | None = None,
) -> ScheduleGeometry:
    """What :func:`plot_schedule` draws, as numpy arrays (no drawing).

    The arguments are those of :func:`plot_schedule`, which see. Evaluating the
    tables compiles once per table capacity; later calls never compile again.

    Returns:
      The :class:`ScheduleGeometry`.

    Raises:
      TypeError: for a table that is not a :class:`CycleTable`, or malformed
        events, eval points, history, title, budget or ``stopped_at``.
      ValueError: for an unknown clock, a budget that ends before the axis starts,
        a ``stopped_at`` before it starts, or a bad ``num_points``.

    Example:
      >>> from algoperf_reinit.schedules import CycleSpec, table_from_cycles
      >>> geometry = schedule_geometry(table_from_cycles([CycleSpec(100, 10)] * 2))
      >>> geometry.boundaries.tolist(), geometry.warmup_ends.t.tolist()
      ([100.0], [10.0, 110.0])
    """
    real_cycles(table)
    check_clock(clock)
    if title is not None and not isinstance(title, str):
        raise _validation.type_error("title", title, "a str or None")
    num_points = _validation.integer("num_points", num_points, minimum=2)
    event_list = _plot_inputs.events(events)
    points, past = _plot_inputs.eval_points(eval_points), _plot_inputs.history(history)
    bounds = table.boundaries()
    lo = min(0.0, bounds[0])
    hi = bounds[-1] if budget is None else _validation.real("budget", budget)
    if not hi > lo:
        raise _validation.value_error("budget", budget, f"> the start of the x axis ({lo:g})")
    if title is None:
        title = _default_title(table, hi, clock)
    if stopped_at is not None:
        stopped_at = _validation.real("stopped_at", stopped_at)
        if stopped_at < lo:
            raise _validation.value_error("stopped_at", stopped_at,
                                          f">= the start of the x axis ({lo:g})")
        hi = max(hi, stopped_at)  # a run past its budget: the axis goes on to the stop
    return _geometry(table, lo, hi, clock, title, event_list, points, past, num_points,
                     stopped_at)


# ----------------------------------------------------------------------------- drawing


def _draw_events(ax: Any, g: ScheduleGeometry) -> None:
    order = [marks.kind for marks in g.events]
    for marks in g.events:
        style = _plot_axes.event_style(marks.kind, order)
        ax.plot(marks.t, marks.y, linestyle="none", marker=style.marker, markersize=8,
                color=style.color, markerfacecolor=style.color if style.filled else "white",
                markeredgecolor="white" if style.filled else style.color,
                markeredgewidth=0.6 if style.filled else 1.2,
                label=_plot_axes.event_label(marks.kind), zorder=6, clip_on=False)
        raised = marks.y != marks.v
        if np.any(raised):  # a thin stem from the curve up to a stacked marker
            ax.vlines(marks.t[raised], marks.v[raised], marks.y[raised], colors=style.color,
                      linewidth=0.6, alpha=0.6, zorder=5)
        for t, y, label in zip(marks.t, marks.y, marks.labels, strict=True):
            if label:
                ax.annotate(label, (t, y), xytext=(4, 6), textcoords="offset points",
                            fontsize=7, color=style.color)


def _figure(g: ScheduleGeometry, dpi: int = DEFAULT_DPI) -> Figure:
    """The figure of a geometry (matplotlib calls only; Agg canvas, no pyplot)."""
    fig = Figure(figsize=_FIGSIZE, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(g.curve.t, g.curve.v, color=_CURVE_COLOR, linewidth=1.6, label="learning rate",
            zorder=3)
    for j, marks in enumerate(g.planned):
        ax.plot(marks.t, marks.v, color=_CURVE_COLOR, linewidth=1.0, linestyle="dotted",
                alpha=0.6, label="plan before early stop" if j == 0 else None, zorder=2)
    if g.boundaries.size:
        ax.vlines(g.boundaries, 0, 1, transform=ax.get_xaxis_transform(), colors=_BOUNDARY_COLOR,
                  linestyles="dashed", linewidth=0.8, label="cycle boundary", zorder=1)
    if g.warmup_ends.t.size:
        ax.plot(g.warmup_ends.t, g.warmup_ends.v, linestyle="none", marker="o", markersize=4,
                markerfacecolor="none", markeredgecolor=_WARMUP_COLOR, alpha=0.8,
                label="warmup end", zorder=4, clip_on=False)
    if g.evals.v.size:
        ax.plot(g.evals.t, g.evals.v, linestyle="none", marker=".", markersize=5,
                color=_EVAL_COLOR, label="eval", zorder=5, clip_on=False)
    _draw_events(ax, g)
    _plot_axes.draw_stop(ax, g.stopped_at, g.xlim[1])
    ax.set_xlim(*g.xlim)
    ax.set_ylim(*g.ylim)
    _plot_axes.set_formatters(ax)
    ax.set_xlabel(g.xlabel)
    ax.set_ylabel("learning rate")
    ax.set_title(g.title, fontsize=11)
    ax.grid(True, linewidth=0.4, alpha=0.4)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
               fontsize=8, frameon=False)
    return fig


def _draw(g: ScheduleGeometry, out: pathlib.Path, dpi: int) -> None:
    """Draws a geometry to a PNG file."""
    _figure(g, dpi).savefig(out, format="png", dpi=dpi, metadata={"Software": None})


def plot_schedule(
    table: CycleTable,
    path: str | os.PathLike[str],
    *,
    budget: float | None = None,
    clock: str = "steps",
    title: str | None = None,
    events: Sequence[Any] = (),
    eval_points: Sequence[float] | np.ndarray = (),
    history: Sequence[tuple[float, CycleTable]] = (),
    num_points: int = 4000,
    dpi: int = DEFAULT_DPI,
    stopped_at: float | None = None,
) -> pathlib.Path:
    """Draws a schedule over its whole budget to a PNG file.

    The curve is sampled on a dense grid plus the times just before and at every
    cycle boundary and warmup end, so restarts are drawn as sharp jumps. Cycle
    boundaries are dashed vertical lines, warmup ends are light markers on the
    curve, events are markers (one style and one legend entry per kind; events at
    the same time are stacked one above the other, joined to the curve by a thin
    stem; ``early_stop_skipped`` is hollow) and eval points are dots on the curve.
    Tick labels are plain or scientific (``1e-3``), never SI prefixes. The same
    inputs give byte-identical files.

    Args:
      table: the schedule.
      path: output file; must end in ``.png``. Missing parent directories are
        created.
      budget: end of the x axis in clock units; ``None`` means the end of the last
        cycle. The axis starts at ``min(0, first cycle start)``.
      clock: one of ``schedules.CLOCKS`` (``"steps"``, ``"seconds"``,
        ``"layer_tokens"``); sets the x-axis label.
      title: plot title; ``None`` gives one stating the number of cycles and the
        budget.
      events: records with ``step``, ``kind`` (e.g. ``"reinit"``, ``"early_stop"``)
        and optional ``label``: :class:`PlotEvent`, any object with those
        attributes, or mappings. Events outside the plotted range are not drawn.
      eval_points: steps (or times) of evaluations, drawn as dots on the curve.
        Points outside the plotted range are not drawn.
      history: the tables a run used before ``table``, for a schedule changed
        while training (an early stop redistributes the budget): ``(t, old)``
        pairs, ``t`` strictly increasing, where ``old`` applied up to ``t``
        (from the previous pair's ``t``). The curve is then the learning rate
        the run applied — each old table on its own stretch, ``table`` from the
        last ``t`` on — and what each old table had planned past its ``t``, up
        to the end of the cycle it was in, is drawn dotted.
      num_points: points of the dense grid (>= 2).
      dpi: resolution of the PNG.
      stopped_at: where training actually stopped (a step, or a time on the
        seconds clock): a solid vertical line, the axis after it shaded. A stop
        past the end of the axis extends it. ``None`` marks nothing.

    Returns:
      The path of the written file.

    Raises:
      TypeError: for a table that is not a :class:`CycleTable`, or malformed events
        or eval points.
      ValueError: for a path that does not end in ``.png`` or cannot be created, an
        unknown clock, a budget that ends before the axis starts, a ``stopped_at``
        before it starts, or bad ``num_points``/``dpi``.

    Example:
      >>> from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table
      >>> table = build_cycle_table(ScheduleConfig(num_cycles=2), 1000, 1e-3, 0.1)
      >>> plot_schedule(table, tmp_path / "lr.png",
      ...               events=[PlotEvent(500, "reinit")])  # doctest: +SKIP
    """
    real_cycles(table)
    out = _plot_inputs.output_path(path)
    dpi = _validation.integer("dpi", dpi, minimum=1)
    geometry = schedule_geometry(table, budget=budget, clock=clock, title=title, events=events,
                                 eval_points=eval_points, history=history,
                                 num_points=num_points, stopped_at=stopped_at)
    _draw(geometry, out, dpi)
    return out
