"""The picture of a trial: ``run_metrics.png`` in the trial directory.

:func:`draw_run_plot` reads a trial directory and draws three panels over the
steps, one x axis:

1. the validation metric (the target metric of ``summary.json``, else
   ``validation/loss``, else the first ``validation/*`` column) from
   ``eval_measurements.csv``, with the target as a horizontal line;
2. the training loss: the logged batch loss of ``measurements.csv`` (a line) and
   ``train/loss`` of the evaluations (dots), on a log scale when positive;
3. the learning rate: the schedule the run applied when a file holds its cycle
   table (a checkpoint, or ``schedule_history.json``'s ``current`` entry; the tables
   superseded by early stops come from its entries), else the logged values.

Events of ``events.csv`` (resets, early stops, skipped early stops, a non-finite
loss; not the ``plateau_metric`` choice) are faint
vertical lines on every panel with their marker in a strip at the top, markers at
one step stacked; where training stopped (``summary.json``'s ``global_steps``) is a
solid line with the rest shaded. Every input file is optional: what is missing is
left out (a panel with no data says so). Same inputs, byte-identical PNG.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from algoperf_reinit import _plot_axes, _plot_inputs, _plot_run, _validation
from algoperf_reinit._records import read_csv
from algoperf_reinit.plotting import DEFAULT_DPI, PlotEvent, schedule_geometry
from algoperf_reinit.runner.metrics import EVAL_CSV, MEASUREMENTS_CSV

__all__ = ["RUN_PLOT_FILE", "RunMetrics", "draw_run_plot", "read_run_metrics"]

RUN_PLOT_FILE = "run_metrics.png"
# The plateau metric's choice is no point in time worth a mark; a non-finite loss is.
_NOT_MARKED = frozenset({"plateau_metric"})
_FIGSIZE = (8.0, 7.5)
_STRIP_TOP, _STRIP_STEP = 0.93, 0.085  # axes fractions of the event strip
_HEADROOM = 0.3  # the y axis grows by this fraction of its span: the data stay below the strip


class Series(NamedTuple):
    """Values over steps (NaN where a row has none)."""

    step: np.ndarray  # shape=(k,), dtype=float64
    value: np.ndarray  # shape=(k,), dtype=float64


class RunMetrics(NamedTuple):
    """What :func:`draw_run_plot` draws, read from a trial directory.

    Attributes:
      title: the figure title.
      metric: the validation metric drawn (``None`` when no evaluation has one).
      metric_values: that metric at each evaluation.
      target: the target value of ``metric``, or ``None``.
      lower_is_better: the target's direction, or ``None`` if unknown.
      batch_loss: the logged training batch loss.
      train_loss: ``train/loss`` at each evaluation.
      learning_rate: the learning rate: the schedule's dense curve, or logged values.
      lr_from_schedule: whether ``learning_rate`` is the schedule (not logged values).
      events: the events of ``events.csv``.
      stopped_at: the step at which training stopped, or ``None``.
    """

    title: str
    metric: str | None
    metric_values: Series
    target: float | None
    lower_is_better: bool | None
    batch_loss: Series
    train_loss: Series
    learning_rate: Series
    lr_from_schedule: bool
    events: tuple[PlotEvent, ...]
    stopped_at: float | None


def _series(rows: Sequence[Mapping[str, str]], column: str) -> Series:
    pairs = [(_plot_run.number(r.get("global_step")), _plot_run.number(r.get(column)))
             for r in rows if r.get(column) not in (None, "")]
    data = np.array(pairs, np.float64).reshape(-1, 2)
    return Series(data[:, 0], data[:, 1])


def _choose_metric(columns: Sequence[str], metric: str | None,
                   summary: Mapping[str, Any]) -> str | None:
    validation = [c for c in columns if c.startswith("validation/")
                  and not c.endswith("num_examples")]
    if metric is not None:
        if metric not in validation:
            raise ValueError(f"metric must be a validation metric of {EVAL_CSV}, got "
                             f"{metric!r}; available: {validation}")
        return metric
    for candidate in (summary.get("target_metric"), "validation/loss"):
        if candidate in validation:
            return candidate
    return validation[0] if validation else None


def _learning_rate(record: _plot_run.RunRecord, rows: Sequence[Mapping[str, str]]
                   ) -> tuple[Series, bool]:
    if record.table is None:
        return _series(rows, "learning_rate"), False
    geometry = schedule_geometry(record.table, history=record.history, num_points=2000,
                                 stopped_at=record.stopped_at)
    return Series(geometry.curve.t.astype(np.float64), geometry.curve.v), True


def read_run_metrics(trial_dir: str | os.PathLike[str], *, metric: str | None = None,
                     target: float | None = None) -> RunMetrics:
    """Reads what :func:`draw_run_plot` draws (the arguments are its own)."""
    trial_dir = _trial_dir(trial_dir)
    evals, logged = read_csv(trial_dir / EVAL_CSV), read_csv(trial_dir / MEASUREMENTS_CSV)
    if not (trial_dir / EVAL_CSV).is_file() and not (trial_dir / MEASUREMENTS_CSV).is_file():
        raise ValueError(f"trial_dir {str(trial_dir)!r} must hold {EVAL_CSV} or "
                         f"{MEASUREMENTS_CSV}; it holds neither")
    record = _plot_run.read_run(trial_dir, skip=_NOT_MARKED)
    summary = record.summary
    metric = _choose_metric(list(evals[0]) if evals else [], metric, summary)
    if target is not None:
        target = _validation.real("target", target)
    elif metric is not None and summary.get("target_metric") == metric:
        value = summary.get("target_value")
        target = float(value) if isinstance(value, int | float) else None
    lower = summary.get("target_lower_is_better") if metric == summary.get(
        "target_metric") else None
    lr, from_schedule = _learning_rate(record, logged)
    return RunMetrics(
        title="/".join(trial_dir.resolve().parts[-3:]),
        metric=metric,
        metric_values=_series(evals, metric) if metric else Series(np.zeros(0), np.zeros(0)),
        target=target,
        lower_is_better=lower if isinstance(lower, bool) else None,
        batch_loss=_series(logged, "loss"),
        train_loss=_series(evals, "train/loss"),
        learning_rate=lr,
        lr_from_schedule=from_schedule,
        events=record.events,
        stopped_at=record.stopped_at,
    )


def _trial_dir(trial_dir: Any) -> pathlib.Path:
    _validation.instance("trial_dir", trial_dir, (str, os.PathLike))
    path = pathlib.Path(trial_dir)
    if not path.is_dir():
        raise _validation.value_error("trial_dir", str(path), "an existing directory")
    return path


# ----------------------------------------------------------------------------- drawing


def _draw_events(ax: Any, events: Sequence[PlotEvent], order: Sequence[str]) -> None:
    """Faint vertical lines and, in a strip at the top, stacked markers."""
    if not events:
        return
    t = np.array([e.step for e in events], np.float64)
    y = _STRIP_TOP - _STRIP_STEP * _plot_axes.stack_levels(t)
    across = ax.get_xaxis_transform()  # x in data, y in axes fractions
    for kind in dict.fromkeys(e.kind for e in events):
        chosen = [i for i, e in enumerate(events) if e.kind == kind]
        style = _plot_axes.event_style(kind, order)
        ax.vlines(t[chosen], 0, 1, transform=across, colors=style.color, linewidth=0.7,
                  alpha=0.35, linestyles="solid" if style.filled else "dotted", zorder=1)
        ax.plot(t[chosen], y[chosen], transform=across, linestyle="none", marker=style.marker,
                markersize=7, color=style.color,
                markerfacecolor=style.color if style.filled else "white",
                markeredgecolor="white" if style.filled else style.color,
                markeredgewidth=0.6 if style.filled else 1.2,
                label=_plot_axes.event_label(kind), zorder=6, clip_on=False)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _metric_panel(ax: Any, m: RunMetrics) -> None:
    if m.metric is None or not m.metric_values.step.size:
        _empty(ax, "no evaluations recorded")
    else:
        ax.plot(*m.metric_values, color="tab:blue", marker="o", markersize=2.5, linewidth=1.2,
                label=m.metric, zorder=3)
    if m.target is not None:
        direction = {True: ", lower is better", False: ", higher is better"}.get(
            m.lower_is_better, "")
        ax.axhline(m.target, color="tab:green", linestyle="dashed", linewidth=1.0,
                   label=f"target {_plot_axes.number_label(m.target)}{direction}", zorder=2)
    ax.set_ylabel(m.metric or "validation metric")


def _loss_panel(ax: Any, m: RunMetrics) -> None:
    if not (m.batch_loss.step.size or m.train_loss.step.size):
        _empty(ax, "no training loss recorded")
    if m.batch_loss.step.size:
        ax.plot(*m.batch_loss, color="tab:orange", linewidth=1.0, label="training batch loss",
                zorder=3)
    if m.train_loss.step.size:
        ax.plot(*m.train_loss, color="tab:brown", linestyle="none", marker=".", markersize=4,
                label="train/loss (eval)", zorder=4)
    values = np.concatenate([m.batch_loss.value, m.train_loss.value])
    values = values[np.isfinite(values)]
    if values.size and np.all(values > 0):
        ax.set_yscale("log")
    ax.set_ylabel("training loss")


def _lr_panel(ax: Any, m: RunMetrics) -> None:
    if not m.learning_rate.step.size:
        _empty(ax, "no learning rate recorded")
    else:
        ax.plot(*m.learning_rate, color="tab:blue", linewidth=1.4,
                marker=None if m.lr_from_schedule else ".",
                label="learning rate" if m.lr_from_schedule else "learning rate (logged)",
                zorder=3)
    ax.set_ylabel("learning rate")
    ax.set_xlabel("step")


def _make_headroom(ax: Any) -> None:
    """Raises the top of the y axis so that the event strip sits above the data."""
    bottom, top = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if bottom <= t <= top]  # no tick labels in the strip
    if ax.get_yscale() == "log":
        ax.set_ylim(bottom, top * (top / bottom) ** _HEADROOM)
    else:
        ax.set_ylim(bottom, top + _HEADROOM * (top - bottom))
    ax.set_yticks(ticks)


def _legend_rank(label: str, kinds: Sequence[str]) -> int:
    if label.startswith("training stopped"):
        return 2
    return 1 if label in {_plot_axes.event_label(k) for k in kinds} else 0


def _x_end(m: RunMetrics) -> float:
    ends = [s.step.max() for s in (m.metric_values, m.batch_loss, m.train_loss,
                                   m.learning_rate) if s.step.size]
    ends += [e.step for e in m.events] + ([m.stopped_at] if m.stopped_at is not None else [])
    return max([float(e) for e in ends if math.isfinite(e)], default=1.0) or 1.0


def _figure(m: RunMetrics, dpi: int = DEFAULT_DPI) -> Figure:
    """The figure of :class:`RunMetrics` (matplotlib calls only; Agg canvas)."""
    fig = Figure(figsize=_FIGSIZE, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True, height_ratios=(3, 2, 2))
    order = [e.kind for e in m.events]
    x_end = _x_end(m)
    for ax, panel in zip(axes, (_metric_panel, _loss_panel, _lr_panel), strict=True):
        panel(ax, m)
        if m.events:
            _make_headroom(ax)
        _draw_events(ax, m.events, order)
        _plot_axes.draw_stop(ax, m.stopped_at, x_end)
        _plot_axes.set_formatters(ax, y=ax.get_yscale() == "linear")
        ax.grid(True, linewidth=0.4, alpha=0.4)
    axes[0].set_xlim(0.0, x_end)
    fig.suptitle(m.title, fontsize=11)
    legend: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    labels = sorted(legend, key=lambda label: _legend_rank(label, order))
    fig.legend([legend[label] for label in labels], labels, loc="outside lower center",
               ncols=min(len(legend), 4) or 1, fontsize=8, frameon=False)
    return fig


def draw_run_plot(
    trial_dir: str | os.PathLike[str],
    *,
    path: str | os.PathLike[str] | None = None,
    metric: str | None = None,
    target: float | None = None,
    dpi: int = DEFAULT_DPI,
) -> pathlib.Path:
    """Draws the trial's validation metric, training loss and learning rate to a PNG.

    Args:
      trial_dir: the trial directory (see the module docstring for the files read;
        each is optional, but it must hold ``eval_measurements.csv`` or
        ``measurements.csv``).
      path: output file (``.png``); ``None`` means ``<trial_dir>/run_metrics.png``.
      metric: the validation metric to draw; ``None`` chooses as the module
        docstring says.
      target: the target line; ``None`` takes ``summary.json``'s target of
        ``metric`` (if any).
      dpi: resolution of the PNG.

    Returns:
      The path of the written file.

    Raises:
      TypeError: for a ``trial_dir``/``path`` that is not a path, or a ``target``
        that is not a number.
      ValueError: for a ``trial_dir`` that is not a directory or holds neither CSV
        file, a ``metric`` that is not a validation column, a malformed
        ``events.csv``/``schedule_history.json``, or a bad ``path``/``dpi``.

    Example:
      >>> draw_run_plot("runs/20261128T120000Z/digits_jax/trial_1")  # doctest: +SKIP
      PosixPath('runs/20261128T120000Z/digits_jax/trial_1/run_metrics.png')
    """
    dpi = _validation.integer("dpi", dpi, minimum=1)
    metrics = read_run_metrics(trial_dir, metric=metric, target=target)
    out = _plot_inputs.output_path(pathlib.Path(trial_dir) / RUN_PLOT_FILE if path is None
                                   else path)
    _figure(metrics, dpi).savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out
