"""Run records on disk: values made JSON-safe, and CSV files read and truncated.

Used by the submissions' event log and by the runner, so that both write the same
JSON and read and repair CSV files the same way. NumPy only (no JAX import): a JAX
scalar is converted through its ``item()``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["dumps_strict", "jsonable", "read_csv", "truncate_csv"]


def jsonable(value: Any, *, nonfinite: str = "null") -> Any:
    """``value`` as plain Python data that ``json`` can write.

    Mappings become dicts with ``str`` keys, lists and tuples become lists, and
    NumPy/JAX scalars and size-1 arrays become Python numbers (``item()``).

    Args:
      value: the value.
      nonfinite: what NaN and infinities become: ``"null"`` (``None``: strict JSON)
        or ``"keep"`` (left as floats, e.g. eval results a submission reads back).

    Returns:
      The converted value (other leaves are returned unchanged).

    Raises:
      ValueError: for an unknown ``nonfinite`` mode.

    Example:
      >>> import numpy as np
      >>> jsonable({"loss": np.float32(0.5), "best": float("inf"), 1: (2, 3)})
      {'loss': 0.5, 'best': None, '1': [2, 3]}
    """
    if nonfinite not in ("null", "keep"):
        raise ValueError(f"nonfinite must be one of 'null', 'keep', got {nonfinite!r}")
    return _convert(value, nonfinite == "null")


def _convert(value: Any, null: bool) -> Any:
    if isinstance(value, float):  # also np.float64, a float subclass: made a plain float
        return None if null and not math.isfinite(value) else float(value)
    if isinstance(value, Mapping):
        return {str(k): _convert(v, null) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_convert(v, null) for v in value]
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        return _convert(value.item(), null)
    return value


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``jsonable(value)``: non-finite floats become ``null``.

    Args:
      value: the value.
      **kwargs: passed to ``json.dumps`` (``indent``, ``sort_keys``, ``default``).

    Returns:
      The JSON text.
    """
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings (``[]`` if the file does not exist)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def truncate_csv(path: str | os.PathLike[str], keep: Callable[[dict[str, str]], bool]) -> int:
    """Keeps only the rows for which ``keep(row)`` holds, atomically.

    Args:
      path: the CSV file (nothing happens if it does not exist).
      keep: called with each row as a dict of strings.

    Returns:
      How many rows were removed.
    """
    path = pathlib.Path(path)
    if not path.exists():
        return 0
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        rows = list(reader)
    if header is None:
        return 0
    kept = [r for r in rows if keep(dict(zip(header, r, strict=False)))]
    if len(kept) == len(rows):
        return 0
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(kept)
    os.replace(tmp, path)
    return len(rows) - len(kept)
