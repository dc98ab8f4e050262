"""The inputs of the schedule plot, validated: output path, events, eval points, history.

Private to :mod:`algoperf_reinit.plotting` (which re-exports :class:`PlotEvent`).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.schedules import CycleTable
from algoperf_reinit.schedules._describe import real_cycles

__all__ = ["PlotEvent", "eval_points", "events", "history", "output_path"]


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



def output_path(path: Any) -> pathlib.Path:
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


def events(events: Iterable[Any]) -> list[PlotEvent]:
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


def eval_points(eval_points: Iterable[Any]) -> np.ndarray:
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


def history(history: Sequence[Any]) -> list[tuple[float, CycleTable]]:
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
