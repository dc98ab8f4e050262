"""Headless plots and text summaries of cycle tables.

:func:`plot_schedule` draws a :class:`~algoperf_reinit.schedules.CycleTable` over a
whole budget to a PNG file, with its cycle boundaries, warmup ends and optional run
events (re-initialisations, early stops, evaluations). It uses a
:class:`matplotlib.figure.Figure` with the Agg canvas directly, never ``pyplot``,
so it is safe in scripts, tests and worker threads without a display, and the same
inputs always give byte-identical PNG files.

:func:`describe_table` renders the cycles of a table as a fixed-width text table.
"""

from __future__ import annotations

import math
import os
import pathlib
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from algoperf_reinit.schedules import CLOCKS, CycleTable, DecayId, WarmupId, evaluate

DEFAULT_DPI = 100
"""Resolution of :func:`plot_schedule` PNGs in dots per inch."""

_FIGSIZE = (8.0, 4.5)
# Times are evaluated in blocks of this many points (padding the last block), so
# plots of tables with the same capacity reuse one compiled evaluation.
_EVAL_BLOCK = 1024
_CURVE_COLOR = "tab:blue"
_BOUNDARY_COLOR = "0.45"
_WARMUP_COLOR = "tab:orange"
_EVAL_COLOR = "black"

# (marker, colour) per well-known event kind; other kinds take _EXTRA_STYLES in the
# order in which they first appear.
_EVENT_STYLES: Mapping[str, tuple[str, str]] = types.MappingProxyType(
    {
        "reinit": ("D", "tab:red"),
        "early_stop": ("X", "tab:purple"),
        "restart": ("^", "tab:green"),
        "checkpoint": ("s", "tab:brown"),
    }
)
_EXTRA_STYLES = (
    ("P", "tab:olive"),
    ("*", "tab:pink"),
    ("v", "tab:cyan"),
    ("p", "tab:gray"),
    ("h", "darkgoldenrod"),
    ("<", "teal"),
)


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


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{field} must be a number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value!r}")
    return value


def _positive_int(field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{field} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_table(table: Any) -> int:
    if not isinstance(table, CycleTable):
        raise TypeError(
            f"table must be a CycleTable (from table_from_cycles, build_cycle_table or "
            f"jax_lr_schedule(...).schedule), got {type(table).__name__}"
        )
    n = table.num_cycles
    if n < 1:
        raise ValueError("table must hold at least one real cycle, got only padding rows")
    return n


def _output_path(path: Any) -> pathlib.Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    out = pathlib.Path(path)
    if out.suffix.lower() != ".png":
        raise ValueError(f"path must end in '.png' (the plot is a PNG file), got {str(out)!r}")
    if out.is_dir():
        raise ValueError(f"path must name a file, but {str(out)!r} is a directory")
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
        raise TypeError(f"events must be a sequence of events, got {events!r}")
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
        step = _number(f"events[{i}].step", get("step"))
        kind, label = get("kind"), get("label", None)
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"events[{i}].kind must be a non-empty str, got {kind!r}")
        if label is not None and not isinstance(label, str):
            raise TypeError(f"events[{i}].label must be a str or None, got {label!r}")
        result.append(PlotEvent(step, kind, label))
    return result


def _eval_points(eval_points: Iterable[Any]) -> np.ndarray:
    if isinstance(eval_points, str | bytes | Mapping):
        raise TypeError(f"eval_points must be a sequence of steps, got {eval_points!r}")
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
        raise TypeError(f"history must be a sequence of (t, CycleTable) pairs, got {history!r}")
    out: list[tuple[float, CycleTable]] = []
    for i, entry in enumerate(history):
        if not (isinstance(entry, tuple | list) and len(entry) == 2):
            raise TypeError(f"history[{i}] must be a (t, CycleTable) pair, got {entry!r}")
        t = _number(f"history[{i}][0]", entry[0])
        _check_table(entry[1])
        if out and not t > out[-1][0]:
            raise ValueError(f"history times must be strictly increasing, got "
                             f"{out[-1][0]:g} then {t:g} at history[{i}]")
        out.append((t, entry[1]))
    return out


def _applied_values(tables: Sequence[CycleTable], cuts: np.ndarray, times: np.ndarray
                    ) -> np.ndarray:
    """Values at ``times`` of the table in effect: ``tables[k]`` on ``[cuts[k-1], cuts[k])``."""
    which = np.searchsorted(cuts, times, side="right")
    values = np.empty(times.shape, np.float64)
    for k, tb in enumerate(tables):
        if np.any(which == k):
            values[which == k] = _evaluate_host(tb, times[which == k])
    return values


def _evaluate_host(table: CycleTable, times: np.ndarray) -> np.ndarray:
    """Evaluates ``table`` at float32 ``times`` in blocks of one fixed size.

    One block shape means one compilation per table shape for every plot of a run:
    a redraw during training (an event, on the clock under the harness) never
    compiles again, however many points its curve has.
    """
    out = np.empty(times.shape, np.float64)
    for lo in range(0, times.size, _EVAL_BLOCK):
        chunk = times[lo : lo + _EVAL_BLOCK]
        padded = np.full((_EVAL_BLOCK,), chunk[-1], np.float32)
        padded[: chunk.size] = chunk
        out[lo : lo + chunk.size] = np.asarray(evaluate(table, padded), np.float64)[: chunk.size]
    return out


def _sample_times(table: CycleTable, n: int, lo: float, hi: float, num_points: int) -> np.ndarray:
    """A dense grid plus the float32 times just before and at every boundary and warmup end."""
    start = np.asarray(table.start, np.float32)[:n]
    length = np.asarray(table.length, np.float32)[:n]
    warmup = np.asarray(table.warmup, np.float32)[:n]
    end = np.float32(start[-1] + length[-1])
    corners = np.concatenate([start, [end], (start + warmup)[warmup > 0]]).astype(np.float32)
    before = np.nextafter(corners, np.float32(-np.inf))
    grid = np.linspace(lo, hi, num_points).astype(np.float32)
    times = np.unique(np.concatenate([grid, corners, before]))
    return times[(times >= np.float32(lo)) & (times <= np.float32(hi))]


def _event_style(kind: str, order: list[str]) -> tuple[str, str]:
    if kind in _EVENT_STYLES:
        return _EVENT_STYLES[kind]
    extra = [k for k in order if k not in _EVENT_STYLES]
    return _EXTRA_STYLES[extra.index(kind) % len(_EXTRA_STYLES)]


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
    n = _check_table(table)
    out = _output_path(path)
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {title!r}")
    num_points = _positive_int("num_points", num_points, 2)
    dpi = _positive_int("dpi", dpi, 1)
    event_list = _events(events)
    points = _eval_points(eval_points)
    past = _history(history)

    bounds = table.boundaries()
    lo = min(0.0, bounds[0])
    hi = bounds[-1] if budget is None else _number("budget", budget)
    if not hi > lo:
        raise ValueError(f"budget must be > the start of the x axis ({lo:g}), got {hi!r}")

    tables = [old for _, old in past] + [table]
    cuts = np.array([t for t, _ in past], np.float32)  # table k applies on [cuts[k-1], cuts[k])
    curve_t = np.unique(np.concatenate(
        [_sample_times(tb, _check_table(tb), lo, hi, num_points) for tb in tables]
        + [cuts, np.nextafter(cuts, np.float32(-np.inf))]))
    curve_t = curve_t[(curve_t >= np.float32(lo)) & (curve_t <= np.float32(hi))]
    warm_parts = []
    for k, tb in enumerate(tables):
        m = _check_table(tb)
        ends = (np.asarray(tb.start, np.float32)[:m] + np.asarray(tb.warmup, np.float32)[:m])[
            np.asarray(tb.warmup, np.float32)[:m] > 0]
        seg_lo = cuts[k - 1] if k > 0 else -np.inf
        seg_hi = cuts[k] if k < len(cuts) else np.inf
        warm_parts.append(ends[(ends >= seg_lo) & (ends < seg_hi)])
    warm_t = np.concatenate(warm_parts).astype(np.float32)
    warm_t = warm_t[(warm_t >= lo) & (warm_t <= hi)]
    event_list = [e for e in event_list if lo <= e.step <= hi]
    event_t = np.array([e.step for e in event_list], np.float32)
    points = points[(points >= lo) & (points <= hi)].astype(np.float32)
    all_t = np.concatenate([curve_t, warm_t, event_t, points]).astype(np.float32)
    values = _applied_values(tables, cuts, all_t)
    pieces = np.cumsum([curve_t.size, warm_t.size, event_t.size])
    curve_v, warm_v, event_v, point_v = np.split(values, pieces)
    planned = []  # (times, values) of what each old table planned past its cut
    for (cut, old) in past:
        old_bounds = old.boundaries()
        stop = min([b for b in old_bounds if b > cut] or [old_bounds[-1]])
        stop = min(stop, hi)
        if stop > cut:
            ts = curve_t[(curve_t >= cut) & (curve_t < stop)]
            ts = np.concatenate([ts, np.nextafter(np.float32([stop]), np.float32(-np.inf))])
            planned.append((ts, _evaluate_host(old, ts)))

    unit = "step" if clock == "steps" else "seconds"
    if title is None:
        budget_text = f"{hi:,.0f} steps" if clock == "steps" else f"{hi:,.6g} s"
        title = f"{n} cycle{'s' if n != 1 else ''}, budget {budget_text}"

    fig = Figure(figsize=_FIGSIZE, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(curve_t, curve_v, color=_CURVE_COLOR, linewidth=1.6, label="learning rate", zorder=3)
    for j, (ts, vs) in enumerate(planned):
        ax.plot(ts, vs, color=_CURVE_COLOR, linewidth=1.0, linestyle="dotted", alpha=0.6,
                label="plan before early stop" if j == 0 else None, zorder=2)
    inner = [b for b in bounds if lo < b < hi]
    if inner:
        ax.vlines(inner, 0, 1, transform=ax.get_xaxis_transform(), colors=_BOUNDARY_COLOR,
                  linestyles="dashed", linewidth=0.8, label="cycle boundary", zorder=1)
    if warm_t.size:
        ax.plot(warm_t, warm_v, linestyle="none", marker="o", markersize=4,
                markerfacecolor="none", markeredgecolor=_WARMUP_COLOR, alpha=0.8,
                label="warmup end", zorder=4, clip_on=False)
    if point_v.size:
        ax.plot(points, point_v, linestyle="none", marker=".", markersize=5, color=_EVAL_COLOR,
                label="eval", zorder=5, clip_on=False)
    order = list(dict.fromkeys(e.kind for e in event_list))
    for kind in order:
        marker, color = _event_style(kind, order)
        chosen = [j for j, e in enumerate(event_list) if e.kind == kind]
        ax.plot(event_t[chosen], event_v[chosen], linestyle="none", marker=marker,
                markersize=8, color=color, markeredgecolor="white", markeredgewidth=0.6,
                label=kind.replace("_", " "), zorder=6, clip_on=False)
        for j in chosen:
            if event_list[j].label:
                ax.annotate(event_list[j].label, (event_t[j], event_v[j]),
                            xytext=(4, 6), textcoords="offset points", fontsize=7, color=color)

    ax.set_xlim(lo, hi)
    shown = np.concatenate([values, *[vs for _, vs in planned]])
    top = float(np.max(shown)) if shown.size else 1.0
    ax.set_ylim(min(0.0, float(np.min(shown))), top * 1.08 if top > 0 else 1.0)
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_xlabel(unit)
    ax.set_ylabel("learning rate")
    ax.set_title(title, fontsize=11)
    ax.grid(True, linewidth=0.4, alpha=0.4)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
               fontsize=8, frameon=False)
    fig.savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out


def _fmt_time(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def describe_table(table: CycleTable) -> str:
    """The real cycles of a table as a fixed-width text table.

    Columns: cycle index, start, end, warmup length, init value, peak, end value,
    warmup shape and decay shape (the lower-case :class:`WarmupId` /
    :class:`DecayId` names).

    Args:
      table: the schedule (concrete, not traced).

    Returns:
      The table as text, one line per cycle after a header line (no trailing
      newline).

    Raises:
      TypeError: if ``table`` is not a :class:`CycleTable`.
      ValueError: if it holds no real cycle.

    Example:
      >>> from algoperf_reinit.schedules import CycleSpec, table_from_cycles
      >>> print(describe_table(table_from_cycles([CycleSpec(100, 10, peak=1e-3)])))
      cycle  start  end  warmup  init   peak  end value  warmup shape  decay shape
          0      0  100      10     0  0.001          0  linear        cosine
    """
    n = _check_table(table)
    columns = {name: np.asarray(getattr(table, name), np.float64)[:n]
               for name in ("start", "length", "warmup", "init_value", "peak", "end_value")}
    warm_ids = np.asarray(table.warmup_shape)[:n]
    decay_ids = np.asarray(table.decay_shape)[:n]
    header = ("cycle", "start", "end", "warmup", "init", "peak", "end value", "warmup shape",
              "decay shape")
    rows = []
    for i in range(n):
        start = columns["start"][i]
        rows.append((
            str(i),
            _fmt_time(start),
            _fmt_time(start + columns["length"][i]),
            _fmt_time(columns["warmup"][i]),
            f"{columns['init_value'][i]:.4g}",
            f"{columns['peak'][i]:.4g}",
            f"{columns['end_value'][i]:.4g}",
            WarmupId(int(warm_ids[i])).name.lower(),
            DecayId(int(decay_ids[i])).name.lower(),
        ))
    widths = [max(len(header[j]), *(len(r[j]) for r in rows)) for j in range(len(header))]
    numeric = 7  # the first seven columns are right-aligned numbers

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if j < numeric else c.ljust(w)
                 for j, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


__all__ = ["DEFAULT_DPI", "PlotEvent", "describe_table", "plot_schedule"]
