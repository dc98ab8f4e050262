"""What a trial directory records about its schedule, read back for pictures.

A trial directory of our runner holds (each file optional here):

* ``events.csv`` and ``schedule_history.json``, written by our submissions' event
  log: one row per reset or early stop, and the cycle tables superseded by early
  stops (``{"version": 1, "entries": [{"step", "table", "dtypes"}, ...]}``, padding
  rows' infinite starts written as ``Infinity`` or, in strict JSON, ``null``; an
  optional ``"current"`` entry holds the run's table now);
* ``checkpoint_<step>.msgpack``, the runner's checkpoints: the newest one holds the
  run's current cycle table inside the optimizer state (found by its field names);
* ``summary.json``: the step at which training stopped (``global_steps``), the
  target metric and value.

:func:`read_run` gathers them; the schedule CLI (``python -m algoperf_reinit
--run_dir``) and the runner's metrics picture (``algoperf_reinit/run_plot.py``) draw them.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit._plot_inputs import PlotEvent
from algoperf_reinit._records import read_csv
from algoperf_reinit.schedules import CycleTable

__all__ = [
    "EVENTS_FILE",
    "HISTORY_FILE",
    "NOT_MARKED",
    "SUMMARY_FILE",
    "RunRecord",
    "checkpoint_table",
    "number",
    "read_events",
    "read_history",
    "read_run",
    "read_summary",
]

EVENTS_FILE = "events.csv"
HISTORY_FILE = "schedule_history.json"
SUMMARY_FILE = "summary.json"
_CHECKPOINT = re.compile(r"^checkpoint_(\d+)\.msgpack$")
NOT_MARKED = frozenset({"plateau_metric", "non_finite"})
"""Event kinds of ``events.csv`` that are no point on the schedule (not marked on it)."""


class RunRecord(NamedTuple):
    """What a trial directory says about its schedule.

    Attributes:
      table: the run's current cycle table, or ``None`` if no file holds it.
      history: ``(step, table before the early stop at step)`` pairs, oldest first.
      events: the rows of ``events.csv`` as plot events.
      stopped_at: the step at which training stopped (``summary.json``), or ``None``.
      summary: ``summary.json`` (``{}`` if absent).
    """

    table: CycleTable | None
    history: tuple[tuple[float, CycleTable], ...]
    events: tuple[PlotEvent, ...]
    stopped_at: float | None
    summary: Mapping[str, Any]


def number(text: Any) -> float:
    """A CSV cell as a float: ``nan`` for an empty or unreadable cell."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _table(where: str, entry: Any) -> CycleTable:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("table"), Mapping):
        raise ValueError(f"{where} must be an object with a 'table' object, got {entry!r:.80}")
    columns, dtypes = entry["table"], entry.get("dtypes", {})
    missing = [f for f in CycleTable._fields if f not in columns]
    if missing:
        raise ValueError(f"{where}.table must have the fields {list(CycleTable._fields)}; "
                         f"missing {missing}")
    arrays = []
    for field in CycleTable._fields:
        # Strict JSON writes the padding rows' infinite starts as null.
        value = np.asarray(columns[field], dtype=object)
        value = np.where(np.equal(value, None), np.inf, value)
        arrays.append(np.asarray(value.tolist(), dtype=dtypes.get(field, "float32")))
    return CycleTable(*arrays)


def read_history(path: pathlib.Path) -> tuple[list[tuple[float, CycleTable]], CycleTable | None]:
    """The superseded tables of ``schedule_history.json`` and its ``current`` entry.

    Args:
      path: the file; a missing file has no history.

    Returns:
      ``(history, current)``: ``(step, table)`` pairs sorted by step, and the
      ``current`` table or ``None``.

    Raises:
      ValueError: for a file that is not JSON of the documented layout.
    """
    if not path.is_file():
        return [], None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} must be JSON, got a file that is not ({err})") from err
    if not isinstance(data, Mapping) or not isinstance(data.get("entries", []), list):
        raise ValueError(f"{path} must hold an object with an 'entries' list")
    history = []
    for i, entry in enumerate(data.get("entries", [])):
        step = entry.get("step") if isinstance(entry, Mapping) else None
        step = _validation.real(f"{path.name} entries[{i}].step", step)
        history.append((step, _table(f"{path.name} entries[{i}]", entry)))
    current = data.get("current")
    return (sorted(history, key=lambda pair: pair[0]),
            None if current is None else _table(f"{path.name} current", current))


def read_events(path: pathlib.Path, *, skip: frozenset[str] = NOT_MARKED) -> list[PlotEvent]:
    """The rows of an events CSV (``global_step``, ``kind``) as plot events.

    Args:
      path: the file; a missing file has no events.
      skip: kinds left out (by default those that are no point on the schedule).

    Raises:
      ValueError: for a row whose ``global_step`` is not a number or ``kind`` empty.
    """
    events = []
    for i, row in enumerate(read_csv(path)):
        step, kind = number(row.get("global_step")), row.get("kind") or ""
        if not math.isfinite(step) or not kind:
            raise ValueError(f"{path} row {i + 2} must have a numeric global_step and a kind, "
                             f"got global_step={row.get('global_step')!r}, kind={kind!r}")
        if kind not in skip:
            events.append(PlotEvent(step, kind))
    return events


def _find_table(tree: Any, path: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    if not isinstance(tree, Mapping):
        return []
    if set(tree) == set(CycleTable._fields):
        return [(path, tree)]
    return [found for key, value in tree.items() for found in _find_table(value, f"{path}/{key}")]


def _checkpoint_tree(path: pathlib.Path) -> Any:
    """A checkpoint's content: a plain state dict, or the ``body`` of a checksummed one."""
    import flax.serialization

    try:
        tree = flax.serialization.msgpack_restore(path.read_bytes())
        if isinstance(tree, Mapping) and isinstance(tree.get("body"), bytes):
            if tree.get("sha256") != hashlib.sha256(tree["body"]).hexdigest():
                return None  # corrupt: an older checkpoint may hold the table
            tree = flax.serialization.msgpack_restore(tree["body"])
    except Exception:  # an unreadable checkpoint just holds no table here
        return None
    return tree


def checkpoint_table(trial_dir: pathlib.Path) -> CycleTable | None:
    """The cycle table in the newest intact checkpoint (the reinit state's first), or None.

    Reads the runner's checkpoints, plain or with their SHA-256 (``{format, sha256,
    body}``); one whose checksum fails is passed over for the next older one.
    """
    found = sorted(((int(m.group(1)), p) for p in trial_dir.glob("checkpoint_*.msgpack")
                    if (m := _CHECKPOINT.match(p.name))), reverse=True)
    for _, path in found:
        tables = sorted(_find_table(_checkpoint_tree(path)),
                        key=lambda pair: "reinit" not in pair[0])
        if tables:
            return CycleTable(*(np.asarray(tables[0][1][f]) for f in CycleTable._fields))
    return None


def read_summary(trial_dir: pathlib.Path) -> dict[str, Any]:
    """``summary.json`` of a trial (``{}`` if absent or unreadable)."""
    try:
        data = json.loads((trial_dir / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_run(trial_dir: pathlib.Path, *, skip: frozenset[str] = NOT_MARKED) -> RunRecord:
    """Everything a trial directory records about its schedule (see the module doc).

    As the event log does on resume, only history entries whose early stop is still
    in ``events.csv`` are kept (when it exists).

    Args:
      trial_dir: the trial directory.
      skip: event kinds left out of ``events``.

    Returns:
      The :class:`RunRecord`; files that are absent leave their fields empty.

    Raises:
      ValueError: for a malformed ``schedule_history.json`` or ``events.csv``.
    """
    history, current = read_history(trial_dir / HISTORY_FILE)
    events = read_events(trial_dir / EVENTS_FILE, skip=frozenset())
    if (trial_dir / EVENTS_FILE).is_file():
        stops = {e.step for e in events if e.kind == "early_stop"}
        history = [(step, table) for step, table in history if step in stops]
    summary = read_summary(trial_dir)
    stopped = summary.get("global_steps")
    stopped_at = float(stopped) if isinstance(stopped, int | float) and stopped > 0 else None
    return RunRecord(
        table=current if current is not None else checkpoint_table(trial_dir),
        history=tuple(history),
        events=tuple(e for e in events if e.kind not in skip),
        stopped_at=stopped_at,
        summary=summary,
    )
