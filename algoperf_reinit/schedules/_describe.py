"""Cycle tables as text: one fixed-width line per real cycle.

:func:`describe_table` is what ``python -m algoperf_reinit`` prints and what a run
can log; ``algoperf_reinit.plotting`` exports it beside the PNG plots.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.schedules._decays import DecayId
from algoperf_reinit.schedules._shapes import WarmupId
from algoperf_reinit.schedules._table import CycleTable

__all__ = ["describe_table", "real_cycles"]


def real_cycles(table: object) -> int:
    """The number of real cycles of ``table``, which must be a table holding one or more.

    Raises:
      TypeError: if ``table`` is not a :class:`CycleTable`.
      ValueError: if it holds only padding rows.
    """
    if not isinstance(table, CycleTable):
        raise _validation.type_error(
            "table", table, "a CycleTable (from table_from_cycles, build_cycle_table or "
            "jax_lr_schedule(...).schedule)")
    n = table.num_cycles
    if n < 1:
        raise ValueError("table must hold at least one real cycle, got only padding rows")
    return n


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
    n = real_cycles(table)
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
