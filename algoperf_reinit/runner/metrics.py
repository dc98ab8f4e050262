"""The run's CSV files and the metrics logger a submission reaches as ``workload.metrics_logger``.

AlgoPerf's ``MetricLogger.append_scalar_metrics(metrics, global_step,
preemption_count=None, is_eval=False)`` adds ``global_step`` and
``preemption_count`` to the row and appends it to ``measurements.csv`` (every
row) and ``eval_measurements.csv`` (eval rows). The columns of a file are the
sorted keys of its first row; a later row with new keys adds columns at the end
(the file is then rewritten atomically, as pandas' concat-and-rewrite does
upstream). Missing values are empty cells; floats are written with ``repr``
(shortest round-trip), so reading a cell back gives the exact value.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from algoperf_reinit._records import read_csv, truncate_csv

__all__ = [
    "EVAL_CSV",
    "MEASUREMENTS_CSV",
    "CsvTable",
    "MetricLogger",
    "read_csv",
    "repair_torn_tail",
    "row_step",
    "truncate_csv",
]

EVAL_CSV = "eval_measurements.csv"
MEASUREMENTS_CSV = "measurements.csv"


def _scalar(key: str, value: Any) -> Any:
    """A Python scalar for one metric value (numbers, bools, strings; arrays of size 1)."""
    if isinstance(value, np.generic):  # np.float64 is a float, but its repr is not a number
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    array = np.asarray(value)
    if array.size != 1:
        raise TypeError(f"metric {key!r} must be a scalar, got an array of shape {array.shape}")
    return array.reshape(()).item()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def row_step(row: Mapping[str, str], column: str = "global_step") -> int:
    """The step a CSV row was written at (0 if the cell is empty or not a number)."""
    try:
        return int(float(row.get(column) or 0))
    except ValueError:
        return 0


def repair_torn_tail(path: str | pathlib.Path) -> str | None:
    """Removes a last line cut off mid-write (no final newline) from a CSV file.

    A process killed while appending a row leaves a partial line; a later append
    would glue the next row to it. Every complete row ends with a newline, so a
    file that does not end with one has a torn last line.

    Returns:
      The removed text, or ``None`` if the file is absent or intact.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    cut = data.rfind(b"\n") + 1
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data[:cut])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return data[cut:].decode(errors="replace")


class CsvTable:
    """An append-only CSV file whose set of columns can grow.

    Args:
      path: the file; an existing file is continued (its header is kept).
    """

    def __init__(self, path: str | pathlib.Path):
        self.path = pathlib.Path(path)
        self.columns: list[str] = []
        if self.path.exists():
            with self.path.open(newline="") as f:
                self.columns = next(csv.reader(f), [])

    def _line(self, row: Mapping[str, Any]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(
            [_cell(row.get(c)) for c in self.columns])
        return buffer.getvalue()

    def append(self, row: Mapping[str, Any]) -> None:
        """Appends one row (adding columns for new keys)."""
        new = sorted(k for k in row if k not in self.columns)
        if new or not self.path.exists():
            self._rewrite(new, row)
            return
        with self.path.open("a", newline="") as f:
            f.write(self._line(row))
            f.flush()

    def _rewrite(self, new_columns: list[str], row: Mapping[str, Any]) -> None:
        old_rows = read_csv(self.path)
        self.columns = self.columns + new_columns
        text = self._line(dict(zip(self.columns, self.columns, strict=True)))
        text += "".join(self._line(r) for r in old_rows) + self._line(row)
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        try:
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except BaseException:  # a full or read-only disk: leave no stray temporary file
            tmp.unlink(missing_ok=True)
            raise


class MetricLogger:
    """Writes ``measurements.csv`` and ``eval_measurements.csv`` of one trial.

    Submissions call :meth:`append_scalar_metrics` through
    ``workload.metrics_logger`` (AlgoPerf's signature); the runner uses it for eval
    rows (``is_eval=True``) and the final ``{'score': ...}`` row. The latest value
    of every key a submission logs is kept in :attr:`latest` for the progress bar.

    Args:
      trial_dir: the trial directory.
      preemption_count: default ``preemption_count`` of the rows.
      write: write the files (``False`` on the processes of a multi-process run
        other than process 0: the rows are then only kept in :attr:`latest`).
    """

    def __init__(self, trial_dir: str | pathlib.Path, preemption_count: int = 0, *,
                 write: bool = True):
        trial_dir = pathlib.Path(trial_dir)
        self.write = write
        self.preemption_count = preemption_count
        self.measurements = CsvTable(trial_dir / MEASUREMENTS_CSV)
        self.eval_measurements = CsvTable(trial_dir / EVAL_CSV)
        self.latest: dict[str, Any] = {}
        self.latest_step: int | None = None

    def append_scalar_metrics(
        self,
        metrics: Mapping[str, Any],
        global_step: int,
        preemption_count: int | None = None,
        is_eval: bool = False,
    ) -> None:
        """Appends a row of scalar metrics at ``global_step``.

        Args:
          metrics: name → scalar (Python number, NumPy/JAX scalar or size-1 array).
          global_step: the step the metrics belong to.
          preemption_count: defaults to the logger's.
          is_eval: also append the row to ``eval_measurements.csv``.

        Raises:
          TypeError: for a non-scalar value.
        """
        row = {str(k): _scalar(str(k), v) for k, v in metrics.items()}
        row["global_step"] = int(global_step)
        row["preemption_count"] = (self.preemption_count if preemption_count is None
                                   else int(preemption_count))
        if self.write:
            self.measurements.append(row)
            if is_eval:
                self.eval_measurements.append(row)
        if not is_eval:
            self.latest.update({k: v for k, v in row.items()
                                if k not in ("global_step", "preemption_count")})
            self.latest_step = int(global_step)

    def finish(self) -> None:
        """Nothing to flush (every row is written when appended); kept for AlgoPerf parity."""
