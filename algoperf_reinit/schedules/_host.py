"""Cycle tables on the host, for plots and logs: values without a compile per call.

A jitted function compiles once per input shape. Evaluating a table at an array of
``k`` times therefore compiles again for every new ``k``; a redraw during training
(at an event, or on the clock under the harness) would then compile in the middle
of a run. :func:`evaluate_host` evaluates in blocks of one fixed size instead, so
every call for a table of a given capacity reuses one compiled evaluation.

:func:`applied_values`, :func:`applied_warmup_ends` and :func:`planned_times` describe
a run whose table changed while it trained (an early stop redistributes the budget):
``tables[k]`` applied on ``[cuts[k-1], cuts[k])``, and what it had planned past
``cuts[k]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from algoperf_reinit.schedules._table import CycleTable, evaluate

__all__ = [
    "EVAL_BLOCK",
    "applied_values",
    "applied_warmup_ends",
    "evaluate_host",
    "planned_times",
]

EVAL_BLOCK = 1024
"""Times are evaluated in blocks of this many points (the last block is padded)."""


def evaluate_host(table: CycleTable, times: np.ndarray) -> np.ndarray:
    """Evaluates ``table`` at float32 ``times`` in blocks of :data:`EVAL_BLOCK`.

    Args:
      table: a concrete cycle table.
      times: a 1-d array of times (float32).

    Returns:
      float64 values, one per time.
    """
    out = np.empty(times.shape, np.float64)
    for lo in range(0, times.size, EVAL_BLOCK):
        chunk = times[lo : lo + EVAL_BLOCK]
        padded = np.full((EVAL_BLOCK,), chunk[-1], np.float32)
        padded[: chunk.size] = chunk
        out[lo : lo + chunk.size] = np.asarray(evaluate(table, padded), np.float64)[: chunk.size]
    return out


def applied_values(tables: Sequence[CycleTable], cuts: np.ndarray, times: np.ndarray
                   ) -> np.ndarray:
    """Values at ``times`` of the table in effect: ``tables[k]`` on ``[cuts[k-1], cuts[k])``.

    Args:
      tables: the tables a run used, in order (``len(cuts) + 1`` of them).
      cuts: float32 times at which each table was replaced by the next, increasing.
      times: a 1-d float32 array of times.

    Returns:
      float64 values, one per time.
    """
    which = np.searchsorted(cuts, times, side="right")
    values = np.empty(times.shape, np.float64)
    for k, tb in enumerate(tables):
        if np.any(which == k):
            values[which == k] = evaluate_host(tb, times[which == k])
    return values


def applied_warmup_ends(tables: Sequence[CycleTable], cuts: np.ndarray) -> np.ndarray:
    """The warmup ends (float32) of each table on the stretch it applied to, in order."""
    parts = []
    for k, tb in enumerate(tables):
        ends = np.asarray(tb.warmup_ends(), np.float32)
        seg_lo = cuts[k - 1] if k > 0 else -np.inf
        seg_hi = cuts[k] if k < len(cuts) else np.inf
        parts.append(ends[(ends >= seg_lo) & (ends < seg_hi)])
    return np.concatenate(parts).astype(np.float32)


def planned_times(old: CycleTable, cut: float, times: np.ndarray, hi: float) -> np.ndarray:
    """The ``times`` at which ``old``, replaced at ``cut``, had still planned to run.

    That is from ``cut`` to the end of the cycle it was in (at most ``hi``), plus the
    float32 time just before that end; empty when nothing is left before ``hi``.
    """
    old_bounds = old.boundaries()
    stop = min(min([b for b in old_bounds if b > cut] or [old_bounds[-1]]), hi)
    if not stop > cut:
        return np.zeros((0,), np.float32)
    kept = times[(times >= cut) & (times < stop)]
    return np.concatenate([kept, np.nextafter(np.float32([stop]), np.float32(-np.inf))])
