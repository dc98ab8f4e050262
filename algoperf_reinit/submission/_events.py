"""The run's event log: ``events.csv`` and ``lr_schedule.png`` in the run directory.

One CSV row per event (``global_step``, ``cycle``, ``kind``, ``reason``, the
metric values that decided it, old and new boundaries as JSON lists): early stops
(``early_stop``; ``early_stop_skipped`` when there was nothing left to end), resets,
the plateau metric chosen at the first evaluation (``plateau_metric``) and the first
non-finite training loss (``non_finite``). Only process 0 (``jax.process_index() ==
0``) writes any file; the other processes of a multi-host run write nothing. The PNG shows the learning rate the run applies: the current cycle table,
and before each early stop the table that was in effect then (its abandoned plan
dotted), with every event so far; it is drawn at ``init_optimizer_state`` and
redrawn after every event. The superseded tables are kept in
``schedule_history.json`` (strict JSON; a padding row's ``+inf`` start is
``null``). The files on disk are the record: a resumed run reads
them back (keeping only history entries whose early stop is still in
``events.csv``), so its plot keeps the earlier events.

The log holds no cycle table of its own: the run's table lives in its state
(``ReinitState.table``), and the caller hands the log the tables it needs (the
tables before and after the events, the table the run was built with).
"""

from __future__ import annotations

import csv
import json
import pathlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from algoperf_reinit._records import dumps_strict, read_csv
from algoperf_reinit.reinit import ReinitEvent
from algoperf_reinit.run_protocol import RunArtifact
from algoperf_reinit.schedules import CycleTable
from algoperf_reinit.submission._hparams import RESOLVED_FILE

__all__ = ["EVENTS_FILE", "EVENT_COLUMNS", "HISTORY_FILE", "PLOT_FILE", "EventLog",
           "event_message", "is_writer", "run_artifacts"]

EVENT_COLUMNS = (
    "global_step", "cycle", "kind", "reason", "metrics", "old_boundaries", "new_boundaries",
)
EVENTS_FILE = "events.csv"
PLOT_FILE = "lr_schedule.png"
HISTORY_FILE = "schedule_history.json"
_HISTORY_VERSION = 2  # 2: strict JSON (padding starts as null); 1 wrote Infinity
_READS = (1, 2)
# Events that are no point on the schedule: not marked on the plot (the CSV keeps them).
_NOT_MARKED = frozenset({"plateau_metric", "non_finite"})


def is_writer() -> bool:
    """Whether this process writes the run's files: process 0 only (``jax.process_index``)."""
    import jax

    return jax.process_index() == 0


def _json(value: object) -> str:
    return dumps_strict(value, sort_keys=True)


def _same(a: CycleTable, b: CycleTable) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


def event_message(row: Mapping[str, str], earlier: Sequence[Mapping[str, str]]) -> str | None:
    """The progress line for one ``events.csv`` row (our runner prints it).

    In its last cycle the plateau detector may fire again and again with nothing to
    end; ``early_stop_skipped`` is said once per cycle (the CSV keeps every row).

    Args:
      row: the new row.
      earlier: the rows before it.

    Returns:
      The line, or ``None`` for a repeated ``early_stop_skipped``.
    """
    kind, cycle = row.get("kind"), row.get("cycle")
    if kind == "early_stop_skipped" and any(
            r.get("kind") == kind and r.get("cycle") == cycle for r in earlier):
        return None
    return (f"event @ step {row.get('global_step')}: {kind} (cycle {cycle}, "
            f"{row.get('reason')})")


def run_artifacts() -> tuple[RunArtifact, ...]:
    """The files an :class:`EventLog` writes, for a runner (``run_protocol``'s hook)."""
    return (
        RunArtifact(EVENTS_FILE, step_column="global_step", message=event_message),
        RunArtifact(PLOT_FILE),
        RunArtifact(HISTORY_FILE),
        RunArtifact(f"{HISTORY_FILE}.tmp"),
        RunArtifact(RESOLVED_FILE),
    )


class EventLog:
    """Appends events to ``events.csv`` and redraws ``lr_schedule.png``.

    Args:
      run_dir: the trial directory (created if missing).
      title: plot title.
      plot: draw the PNG (it costs ~0.2 s, on the clock under the harness).
    """

    def __init__(self, run_dir: pathlib.Path, *, title: str, plot: bool = True):
        self.writer = is_writer()  # on other processes every method writes nothing
        self.run_dir = pathlib.Path(run_dir)
        self.title = title
        self.plot = plot
        self.csv_path = self.run_dir / EVENTS_FILE
        self.png_path = self.run_dir / PLOT_FILE
        self.history_path = self.run_dir / HISTORY_FILE
        self.history: list[tuple[int, CycleTable]] = []  # (early-stop step, table before it)
        self.checked = False  # whether the run's table was compared with the built one

    def _read(self) -> list[dict[str, str]]:
        return read_csv(self.csv_path)

    def start(self, table: CycleTable) -> None:
        """Creates the CSV (keeps an existing one: a resumed run) and draws the PNG.

        Args:
          table: the table the run was built with.
        """
        if not self.writer:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.csv_path.exists():
            with self.csv_path.open("w", newline="") as f:
                csv.writer(f).writerow(EVENT_COLUMNS)
        self.history = self._read_history()
        self._draw(table)

    def _read_history(self) -> list[tuple[int, CycleTable]]:
        if not self.history_path.exists():
            return []
        data = json.loads(self.history_path.read_text())
        if data.get("version") not in _READS:
            return []
        stops = {int(float(r["global_step"])) for r in self._read() if r["kind"] == "early_stop"}

        def column(values: list, dtype: str) -> np.ndarray:  # null: +inf (padding starts)
            return np.asarray([np.inf if v is None else v for v in values], dtype=dtype)

        return [(int(e["step"]), CycleTable(*(column(e["table"][f], e["dtypes"][f])
                                              for f in CycleTable._fields)))
                for e in data["entries"] if int(e["step"]) in stops]

    def _write_history(self) -> None:
        entries = [{"step": step,
                    "table": {f: np.asarray(v).tolist() for f, v in zip(
                        CycleTable._fields, table, strict=True)},
                    "dtypes": {f: str(np.asarray(v).dtype) for f, v in zip(
                        CycleTable._fields, table, strict=True)}}
                   for step, table in self.history]
        tmp = self.history_path.with_name(self.history_path.name + ".tmp")
        # Strict JSON: the +inf start of a padding row is written as null.
        tmp.write_text(dumps_strict({"version": _HISTORY_VERSION, "entries": entries}))
        tmp.replace(self.history_path)

    def record(self, events: Iterable[ReinitEvent], *, before: CycleTable,
               after: CycleTable) -> None:
        """Appends ``events`` and redraws the PNG with every event so far.

        Args:
          events: the events of one step.
          before: the run's cycle table before them.
          after: the table after them (drawn); when an early stop changed the table,
            ``before`` joins the history.
        """
        events = list(events)
        if not self.writer:
            return
        with self.csv_path.open("a", newline="") as f:
            writer = csv.writer(f)
            for e in events:
                writer.writerow([e.step, e.cycle, e.kind, e.reason, _json(e.metrics),
                                 _json(e.old_boundaries), _json(e.new_boundaries)])
        stops = [int(e.step) for e in events if e.kind == "early_stop"]
        if stops and not _same(before, after):
            self.history.append((stops[0], before))
            self._write_history()
        self._draw(after)

    def check_current(self, table: CycleTable, *, built: CycleTable) -> None:
        """Redraws once if the run's ``table`` is not the one it was ``built`` with.

        A run resumed from a checkpoint restores a table that the PNG drawn by
        :meth:`start` (with the built table) lacks.

        Args:
          table: the run's current table (``ReinitState.table``).
          built: the table the run was built with (the one :meth:`start` drew).
        """
        self.checked = True
        if self.writer and not _same(built, table):
            self._draw(table)

    def _draw(self, table: CycleTable) -> None:
        if not (self.plot and self.writer):
            return
        from algoperf_reinit.plotting import PlotEvent, plot_schedule

        # Skipped early stops are marked too; only non-schedule events are left out.
        marks = [PlotEvent(step=float(row["global_step"]), kind=row["kind"])
                 for row in self._read() if row["kind"] not in _NOT_MARKED]
        plot_schedule(table, self.png_path, title=self.title, events=marks,
                      history=self.history)
