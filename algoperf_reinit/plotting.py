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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from algoperf_reinit import _validation
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

# (marker, colour) per well-known event kind; other kinds take _EXTRA_STYLES in the
# order in which they first appear.
_EVENT_STYLES: Mapping[str, tuple[str, str]] = types.MappingProxyType({
    "reinit": ("D", "tab:red"), "early_stop": ("X", "tab:purple"),
    "restart": ("^", "tab:green"), "checkpoint": ("s", "tab:brown"),
})
_EXTRA_STYLES = (("P", "tab:olive"), ("*", "tab:pink"), ("v", "tab:cyan"), ("p", "tab:gray"),
                 ("h", "darkgoldenrod"), ("<", "teal"))


class PlotEvent(NamedTuple):
    """An event to mark on a schedule plot.

    Any record with ``step`` and ``kind`` attributes (and optionally ``label``), or a
    mapping with those keys, works as well.

    Attributes:
      step: where the event happened, in the plot's clock units (step or seconds).
      kind: what happened, e.g. ``"reinit"`` or ``"early_stop"``; each kind gets its
        own marker and legend entry.
      label: optional text written next to the marker.
    """

    step: float
    kind: str
    label: str | None = None


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
      xlabel: ``"step"`` or ``"seconds"``.
      title: the title (given, or stating the cycles and the budget).
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


# ----------------------------------------------------------------------------- validation


def _output_path(path: Any) -> pathlib.Path:
    _validation.instance("path", path, (str, os.PathLike))
    out = pathlib.Path(path)
    if out.suffix.lower() != ".png":
        raise _validation.value_error("path", str(out), "a file name ending in '.png'",
                                      fix="the plot is a PNG file")
    if out.is_dir():
        raise _validation.value_error("path", str(out), "a file, not a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise ValueError(
            f"path {str(out)!r}: cannot create its directory {str(out.parent)!r} because a file "
            "is in the way"
        ) from err
    return out


def _events(events: Iterable[Any]) -> list[PlotEvent]:
    if isinstance(events, str | bytes | Mapping):
        raise _validation.type_error("events", events, "a sequence of events")
    result = []
    for i, event in enumerate(events):
        if isinstance(event, Mapping):
            missing = [key for key in ("step", "kind") if key not in event]
            get = event.get
        else:
            missing = [key for key in ("step", "kind") if not hasattr(event, key)]
            get = lambda key, default=None, e=event: getattr(e, key, default)  # noqa: E731
        if missing:
            raise TypeError(
                f"events[{i}] must have 'step' and 'kind' (a PlotEvent, a record with those "
                f"attributes or a mapping with those keys); missing {missing} in {event!r}"
            )
        step = _validation.real(f"events[{i}].step", get("step"))
        kind, label = get("kind"), get("label", None)
        if not isinstance(kind, str):
            raise _validation.type_error(f"events[{i}].kind", kind, "a non-empty str")
        if not kind:
            raise _validation.value_error(f"events[{i}].kind", kind, "a non-empty str")
        if label is not None and not isinstance(label, str):
            raise _validation.type_error(f"events[{i}].label", label, "a str or None")
        result.append(PlotEvent(step, kind, label))
    return result


def _eval_points(eval_points: Iterable[Any]) -> np.ndarray:
    if isinstance(eval_points, str | bytes | Mapping):
        raise _validation.type_error("eval_points", eval_points, "a sequence of steps")
    points = np.asarray(list(eval_points) if not isinstance(eval_points, np.ndarray)
                        else eval_points)
    if points.size == 0:
        return np.zeros((0,), np.float64)
    if points.ndim != 1 or not np.issubdtype(points.dtype, np.number) or points.dtype == bool:
        raise TypeError(
            f"eval_points must be a flat sequence of numbers, got an array of shape "
            f"{points.shape} and dtype {points.dtype}"
        )
    points = points.astype(np.float64)
    if not np.all(np.isfinite(points)):
        raise ValueError(f"eval_points must be finite, got {points.tolist()!r}")
    return points


def _history(history: Sequence[Any]) -> list[tuple[float, CycleTable]]:
    """Validates ``history``: ``(t, table)`` pairs with strictly increasing finite ``t``."""
    if isinstance(history, str | bytes) or not isinstance(history, Sequence):
        raise _validation.type_error("history", history, "a sequence of (t, CycleTable) pairs")
    out: list[tuple[float, CycleTable]] = []
    for i, entry in enumerate(history):
        if not (isinstance(entry, tuple | list) and len(entry) == 2):
            raise _validation.type_error(f"history[{i}]", entry, "a (t, CycleTable) pair")
        t = _validation.real(f"history[{i}][0]", entry[0])
        real_cycles(entry[1])
        if out and not t > out[-1][0]:
            raise ValueError(f"history times must be strictly increasing, got "
                             f"{out[-1][0]:g} then {t:g} at history[{i}]")
        out.append((t, entry[1]))
    return out


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


def _event_marks(events: Sequence[PlotEvent], t: np.ndarray,
                 v: np.ndarray) -> tuple[EventMarks, ...]:
    """The events grouped by kind, kinds in order of first appearance."""
    marks = []
    for kind in dict.fromkeys(e.kind for e in events):
        chosen = [j for j, e in enumerate(events) if e.kind == kind]
        marks.append(EventMarks(kind, t[chosen], v[chosen],
                                tuple(events[j].label for j in chosen)))
    return tuple(marks)


def _geometry(table: CycleTable, lo: float, hi: float, clock: str, title: str | None,
              events: list[PlotEvent], points: np.ndarray,
              past: list[tuple[float, CycleTable]], num_points: int) -> ScheduleGeometry:
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
    shown = np.concatenate([values, *[marks.v for marks in planned]])
    top = float(np.max(shown)) if shown.size else 1.0
    if title is None:
        n = table.num_cycles
        budget_text = f"{hi:,.0f} steps" if clock == "steps" else f"{hi:,.6g} s"
        title = f"{n} cycle{'s' if n != 1 else ''}, budget {budget_text}"
    return ScheduleGeometry(
        curve=Marks(curve_t, curve_v),
        planned=tuple(planned),
        boundaries=np.array([b for b in table.boundaries() if lo < b < hi], np.float64),
        warmup_ends=Marks(warm_t, warm_v),
        events=_event_marks(events, event_t, event_v),
        evals=Marks(points, point_v),
        xlim=(lo, hi),
        ylim=(min(0.0, float(np.min(shown))), top * 1.08 if top > 0 else 1.0),
        xlabel="step" if clock == "steps" else "seconds",
        title=title,
    )


def schedule_geometry(
    table: CycleTable, *, budget: float | None = None, clock: str = "steps",
    title: str | None = None, events: Sequence[Any] = (),
    eval_points: Sequence[float] | np.ndarray = (),
    history: Sequence[tuple[float, CycleTable]] = (), num_points: int = 4000,
) -> ScheduleGeometry:
    """What :func:`plot_schedule` draws, as numpy arrays (no drawing).

    The arguments are those of :func:`plot_schedule`, which see. Evaluating the
    tables compiles once per table capacity; later calls never compile again.

    Returns:
      The :class:`ScheduleGeometry`.

    Raises:
      TypeError: for a table that is not a :class:`CycleTable`, or malformed
        events, eval points, history, title or budget.
      ValueError: for an unknown clock, a budget that ends before the axis starts,
        or a bad ``num_points``.

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
    event_list, points, past = _events(events), _eval_points(eval_points), _history(history)
    bounds = table.boundaries()
    lo = min(0.0, bounds[0])
    hi = bounds[-1] if budget is None else _validation.real("budget", budget)
    if not hi > lo:
        raise _validation.value_error("budget", budget, f"> the start of the x axis ({lo:g})")
    return _geometry(table, lo, hi, clock, title, event_list, points, past, num_points)


# ----------------------------------------------------------------------------- drawing


def _event_style(kind: str, order: list[str]) -> tuple[str, str]:
    if kind in _EVENT_STYLES:
        return _EVENT_STYLES[kind]
    extra = [k for k in order if k not in _EVENT_STYLES]
    return _EXTRA_STYLES[extra.index(kind) % len(_EXTRA_STYLES)]


def _draw(g: ScheduleGeometry, out: pathlib.Path, dpi: int) -> None:
    """Draws a geometry to a PNG file: matplotlib calls only."""
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
    order = [marks.kind for marks in g.events]
    for marks in g.events:
        marker, color = _event_style(marks.kind, order)
        ax.plot(marks.t, marks.v, linestyle="none", marker=marker, markersize=8, color=color,
                markeredgecolor="white", markeredgewidth=0.6,
                label=marks.kind.replace("_", " "), zorder=6, clip_on=False)
        for t, v, label in zip(marks.t, marks.v, marks.labels, strict=True):
            if label:
                ax.annotate(label, (t, v), xytext=(4, 6), textcoords="offset points",
                            fontsize=7, color=color)
    ax.set_xlim(*g.xlim)
    ax.set_ylim(*g.ylim)
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_xlabel(g.xlabel)
    ax.set_ylabel("learning rate")
    ax.set_title(g.title, fontsize=11)
    ax.grid(True, linewidth=0.4, alpha=0.4)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
               fontsize=8, frameon=False)
    fig.savefig(out, format="png", dpi=dpi, metadata={"Software": None})


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
) -> pathlib.Path:
    """Draws a schedule over its whole budget to a PNG file.

    The curve is sampled on a dense grid plus the times just before and at every
    cycle boundary and warmup end, so restarts are drawn as sharp jumps. Cycle
    boundaries are dashed vertical lines, warmup ends are light markers on the
    curve, events are markers (one style and one legend entry per kind) and eval
    points are dots on the curve. The same inputs give byte-identical files.

    Args:
      table: the schedule.
      path: output file; must end in ``.png``. Missing parent directories are
        created.
      budget: end of the x axis in clock units; ``None`` means the end of the last
        cycle. The axis starts at ``min(0, first cycle start)``.
      clock: ``"steps"`` or ``"seconds"``; sets the x-axis label.
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

    Returns:
      The path of the written file.

    Raises:
      TypeError: for a table that is not a :class:`CycleTable`, or malformed events
        or eval points.
      ValueError: for a path that does not end in ``.png`` or cannot be created, an
        unknown clock, a budget that ends before the axis starts, or bad
        ``num_points``/``dpi``.

    Example:
      >>> from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table
      >>> table = build_cycle_table(ScheduleConfig(num_cycles=2), 1000, 1e-3, 0.1)
      >>> plot_schedule(table, tmp_path / "lr.png",
      ...               events=[PlotEvent(500, "reinit")])  # doctest: +SKIP
    """
    real_cycles(table)
    out = _output_path(path)
    dpi = _validation.integer("dpi", dpi, minimum=1)
    geometry = schedule_geometry(table, budget=budget, clock=clock, title=title, events=events,
                                 eval_points=eval_points, history=history,
                                 num_points=num_points)
    _draw(geometry, out, dpi)
    return out
