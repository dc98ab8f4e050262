"""What every picture of a run shares: tick labels, event markers, the stop mark.

Used by :mod:`algoperf_reinit.plotting` (the schedule PNG) and by the runner's
metrics picture (``runner/run_plot.py``), so the two show events alike:

* **Tick labels** are plain numbers between 0.01 and 9999 and scientific
  (``1e-3``, ``2.5e-4``) outside, never SI prefixes (``1 m``). Step axes get
  thousands separators (``10,000``).
* **Event styles**: one marker and colour per well-known kind (``reset`` and
  ``reinit`` alike, ``early_stop``, ``early_stop_skipped`` hollow), others in order
  of first appearance.
* **Stacking**: events at the same step are drawn one above the other
  (:func:`stack_levels`), so a reset and an early stop at one step are both seen.
* **The stop mark**: a solid vertical line where training actually stopped, the
  rest of the axis shaded.

Matplotlib only (no pyplot), numpy only: nothing here evaluates a schedule.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib.ticker import FuncFormatter

__all__ = [
    "STOP_COLOR",
    "EventStyle",
    "draw_stop",
    "event_label",
    "event_style",
    "number_label",
    "set_formatters",
    "stack_levels",
    "step_label",
]

STOP_COLOR = "black"


class EventStyle(NamedTuple):
    """How one event kind is drawn."""

    marker: str
    color: str
    filled: bool = True


_STYLES: Mapping[str, EventStyle] = types.MappingProxyType({
    "reset": EventStyle("D", "tab:red"),
    "reinit": EventStyle("D", "tab:red"),
    "early_stop": EventStyle("X", "tab:purple"),
    "early_stop_skipped": EventStyle("X", "tab:purple", filled=False),
    "restart": EventStyle("^", "tab:green"),
    "checkpoint": EventStyle("s", "tab:brown"),
})
_EXTRA = (EventStyle("P", "tab:olive"), EventStyle("*", "tab:pink"), EventStyle("v", "tab:cyan"),
          EventStyle("p", "tab:gray"), EventStyle("h", "darkgoldenrod"), EventStyle("<", "teal"))


def event_style(kind: str, order: Sequence[str]) -> EventStyle:
    """The style of ``kind``; unknown kinds cycle through extra styles in ``order``."""
    if kind in _STYLES:
        return _STYLES[kind]
    extra = [k for k in dict.fromkeys(order) if k not in _STYLES]
    return _EXTRA[extra.index(kind) % len(_EXTRA)]


def event_label(kind: str) -> str:
    """The legend entry of an event kind (``early_stop_skipped`` -> ``early stop skipped``)."""
    return kind.replace("_", " ")


def stack_levels(t: np.ndarray) -> np.ndarray:
    """For each time, how many earlier entries have the same time (0, 1, ...).

    Args:
      t: event times in drawing order.

    Returns:
      int array of ``t``'s shape: the level at which each marker is stacked.

    Example:
      >>> stack_levels(np.array([5.0, 9.0, 5.0, 5.0])).tolist()
      [0, 0, 1, 2]
    """
    seen: dict[float, int] = {}
    levels = np.zeros(np.shape(t), np.int64)
    for i, value in enumerate(np.asarray(t).tolist()):
        levels[i] = seen.get(value, 0)
        seen[value] = levels[i] + 1
    return levels


def number_label(value: float, _pos: Any = None) -> str:
    """A tick label: plain between 0.01 and 9999, else ``<mantissa>e<exponent>``.

    Example:
      >>> [number_label(v) for v in (0, 0.001, 2.5e-4, 0.05, 1500, 2e5, -3e-3)]
      ['0', '1e-3', '2.5e-4', '0.05', '1500', '2e5', '-3e-3']
    """
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    exponent = math.floor(math.log10(abs(value)))
    if -2 <= exponent <= 3:
        return f"{value:.4g}"
    mantissa = float(f"{value / 10.0 ** exponent:.3g}")
    if abs(mantissa) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:g}e{exponent}"


def step_label(value: float, _pos: Any = None) -> str:
    """A step-axis tick label: whole numbers with thousands separators, else plain.

    Example:
      >>> [step_label(v) for v in (0, 2500, 10_000, 12.5)]
      ['0', '2,500', '10,000', '12.5']
    """
    if float(value).is_integer():
        return f"{value:,.0f}"
    return number_label(value)


def set_formatters(ax: Any, *, y: bool = True) -> None:
    """Gives ``ax`` step labels on x and (if ``y``) :func:`number_label` on y."""
    ax.xaxis.set_major_formatter(FuncFormatter(step_label))
    if y:
        ax.yaxis.set_major_formatter(FuncFormatter(number_label))


def draw_stop(ax: Any, stopped_at: float | None, xmax: float, *, label: bool = True) -> None:
    """Marks where training stopped: a solid line, the axis after it shaded.

    Args:
      ax: the axes.
      stopped_at: the step (or time); ``None`` draws nothing.
      xmax: the end of the x axis.
      label: give the line a legend entry (``training stopped at <step>``).
    """
    if stopped_at is None:
        return
    if stopped_at < xmax:
        ax.axvspan(stopped_at, xmax, color="0.92", zorder=0, linewidth=0)
    ax.axvline(stopped_at, color=STOP_COLOR, linewidth=1.3, zorder=7,
               label=f"training stopped at {step_label(stopped_at)}" if label else None)
