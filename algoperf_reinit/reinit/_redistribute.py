"""Ending a cycle early and redistributing the budget left over the cycles to come.

The seed design's ``early_stopping`` "stops the current cycle and divides the
runtime left equally under the cycles that are still to do". :func:`end_cycle_early`
does that on the host (numpy, float64 arithmetic) and returns a new
:class:`CycleTable` of the *same capacity*, so a jitted train step that holds the
table as data (``scale_by_cycle_table``) keeps running without a recompile.

Semantics, for a stop at time ``t``:

* The cycle that owns ``t`` (the time at a boundary belongs to the cycle that
  begins there) ends at ``t``: its length becomes ``t - start``; its warmup, peak,
  values, shapes and decay parameters are kept. The stop is refused (the table is
  returned unchanged with ``applied=False`` and a reason) when ``t`` lies outside
  the table, when the cycle would not outlast its warmup (``t`` at its start or in
  its warmup), when the cycle is the last one (no cycle is left to take the
  budget: it simply continues), or when the budget left cannot hold one cycle.
* The budget end (the end of the last real cycle) is kept. The budget left,
  ``end - t``, is split over the remaining cycles by a :class:`Redistribution`
  rule. A cycle keeps its warmup *fraction*: new warmup ``int(f * length)`` on the
  steps clock (the seed's rounding), ``f * length`` on the seconds clock. Its
  ``decay_begin`` keeps its relation to the warmup (equal to it, 0, or the same
  fraction of it). Peaks, init and end values and shapes are unchanged.
* Decay parameters that carry a length are rescaled with the cycle (the table
  stores only numbers, not whether they were defaults): the exponential decay's
  transition length scales with the decay phase (``length - decay_begin``), so the
  default (one transition over the decay phase) stays the default; the inverse
  square root's timescale scales with ``max(warmup, 1)``, so its default (the
  warmup length) stays the default. Cosine, linear, polynomial, constant and
  warmup-stable-decay parameters are scale-free and kept.
* No remaining cycle may be shorter than ``Redistribution.min_cycle_length`` (on the
  steps clock at least 1 step; the kept warmup fraction then always leaves at least
  one decay step). When the budget left cannot hold every remaining cycle, trailing
  cycles are dropped (their rows become padding) until the rest fit.

Rounding: on the steps clock every boundary is a whole step, boundary ``k`` of the
split is ``t + floor(budget * W_k / W)`` (``W_k`` the sum of the first ``k`` weights)
and the last is the budget end, so the end is conserved exactly. On the seconds
clock the new boundaries lie on the float32 grid of the budget end (spacing
``q = ulp32(end)``; ``t`` is rounded to it), so the stored starts and lengths are
exact; the end is then conserved exactly when it is itself a float32 number, and
otherwise to the float32 rounding of the last length.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from algoperf_reinit.schedules._shapes import DecayId
from algoperf_reinit.schedules._table import CLOCKS, CycleTable

RULES = ("equal", "proportional", "geometric")
"""How the budget left is split over the remaining cycles (see :class:`Redistribution`)."""

# Values of a padding row (as written by ``table_from_cycles``).
_PAD = {"start": np.inf, "length": 1.0, "warmup_param": 1.0}


def _positive(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(
            f"Redistribution.{field} must be a number, got {value!r} of type "
            f"{type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Redistribution.{field} must be finite and > 0, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Redistribution:
    """How the budget left after an early stop is split over the remaining cycles.

    The default rule is ``"proportional"``: every remaining cycle is scaled by the
    same factor, so the plan's design survives the stop (``cycle_mul`` growth, an
    asymmetric ``cycle_fractions`` split, a long final cycle), and for the seed's
    plans of equal cycles it gives exactly the seed's equal split.

    Attributes:
      rule: ``"equal"`` (the seed's rule: equal lengths), ``"proportional"`` (to
        the cycles' current planned lengths) or ``"geometric"`` (the ``k``-th
        remaining cycle gets a share proportional to ``ratio ** k``).
      ratio: growth factor of the ``"geometric"`` rule, > 0 (``2.0`` doubles each
        cycle, ``1.0`` is the equal split). Must stay ``1.0`` for the other rules.
      min_cycle_length: the shortest cycle the split may produce, in clock units,
        > 0 (rounded up to whole steps on the steps clock). Trailing cycles are
        dropped until the others reach it.

    Raises:
      ValueError: for an unknown rule, a ratio or minimum length that is not
        finite and > 0, or a ratio other than 1 with a rule that ignores it.
      TypeError: for a non-string rule or a non-number ratio or minimum.

    Example:
      >>> Redistribution("geometric", ratio=2.0).rule
      'geometric'
    """

    rule: str = "proportional"
    ratio: float = 1.0
    min_cycle_length: float = 1.0

    def __post_init__(self):
        if not isinstance(self.rule, str):
            raise TypeError(f"Redistribution.rule must be a string, got {self.rule!r}")
        if self.rule not in RULES:
            raise ValueError(
                f"Redistribution.rule must be one of {RULES}, got {self.rule!r}"
            )
        object.__setattr__(self, "ratio", _positive("ratio", self.ratio))
        object.__setattr__(
            self, "min_cycle_length", _positive("min_cycle_length", self.min_cycle_length)
        )
        if self.rule != "geometric" and self.ratio != 1.0:
            raise ValueError(
                f"Redistribution.ratio is used by rule 'geometric' only and must be 1.0 with "
                f"rule {self.rule!r}, got {self.ratio!r}"
            )

    def weights(self, planned: np.ndarray) -> np.ndarray:
        """Relative shares of the remaining cycles.

        Args:
          planned: the remaining cycles' planned lengths (float64, shape ``(m,)``).

        Returns:
          Positive float64 weights of shape ``(m,)``, largest 1 (``"geometric"``).
        """
        if self.rule == "equal":
            return np.ones_like(planned)
        if self.rule == "proportional":
            return np.asarray(planned, np.float64)
        k = np.arange(planned.shape[0], dtype=np.float64)
        # ratio ** k divided by the largest weight, without overflow for large ratios.
        return self.ratio ** (k - k[-1]) if self.ratio > 1 else self.ratio ** k


class EarlyStopResult(NamedTuple):
    """What :func:`end_cycle_early` returns.

    Attributes:
      table: the new table (same capacity and dtypes); the input table itself when
        the stop was not applied.
      applied: whether the cycle was ended.
      reason: what happened, or why nothing did, in words.
      cycle: index of the cycle that owns ``t`` (the one ended, when applied); -1
        when no cycle owns ``t``.
      old_boundaries: starts of the real cycles and the end of the last, before.
      new_boundaries: the same after the stop (equal to ``old_boundaries`` when not
        applied).
      dropped: number of trailing cycles dropped because the budget left could not
        hold them.
    """

    table: CycleTable
    applied: bool
    reason: str
    cycle: int
    old_boundaries: list[float]
    new_boundaries: list[float]
    dropped: int


def _time(t: Any, clock: str) -> float:
    if isinstance(t, bool | np.bool_):
        raise TypeError(f"t must be a number (a step or a time), got {t!r}")
    try:
        value = np.asarray(t)
    except jax.errors.TracerArrayConversionError:
        raise TypeError("t must be a concrete number, got a traced value; call "
                        "end_cycle_early on the host, outside jit") from None
    if value.ndim != 0 or not (np.issubdtype(value.dtype, np.integer)
                               or np.issubdtype(value.dtype, np.floating)):
        raise TypeError(
            f"t must be a number (a step or a time), got {t!r} of type {type(t).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"t must be a finite number, got {t!r}")
    if clock == "steps" and value != math.floor(value):
        raise ValueError(f"t must be a whole number of steps on the 'steps' clock, got {t!r}")
    return value


def _host_columns(table: Any, clock: str) -> dict[str, np.ndarray]:
    if not isinstance(table, CycleTable):
        raise TypeError(f"table must be a CycleTable, got {type(table).__name__}")
    try:
        cols = {name: np.array(getattr(table, name)) for name in CycleTable._fields}
    except jax.errors.TracerArrayConversionError:
        raise TypeError("table must be a concrete CycleTable, got traced arrays; call "
                        "end_cycle_early on the host, outside jit") from None
    start, length = cols["start"], cols["length"]
    if start.ndim != 1 or start.shape[0] == 0:
        raise ValueError(f"table.start must be a non-empty 1-d array, got shape {start.shape}")
    n = int(np.isfinite(start).sum())
    real = start[:n].astype(np.float64)
    if not (np.all(np.isposinf(start[n:])) and np.all(np.diff(real) > 0)):
        raise ValueError(
            "table.start must hold strictly increasing finite starts followed by +inf padding, "
            f"got {start.tolist()}"
        )
    if not np.all(np.isfinite(length[:n]) & (length[:n] > 0)):
        raise ValueError(f"table.length of real cycles must be finite and > 0, got "
                         f"{length[:n].tolist()}")
    if clock == "steps":
        for name in ("start", "length", "warmup"):
            values = cols[name][:n].astype(np.float64)
            if np.any(values != np.floor(values)):
                raise ValueError(
                    f"table.{name} must hold whole numbers of steps on the 'steps' clock, got "
                    f"{values.tolist()}; was the table built with clock='seconds'?"
                )
    return cols


def _split(budget: float, first: float, end: float, weights: np.ndarray, clock: str,
           grid: float) -> np.ndarray:
    """Cycle lengths (float64) after ``first`` that fill ``[first, end)`` by ``weights``."""
    if clock == "steps" and np.all(weights == np.round(weights)):
        # Whole-number weights ("equal", "proportional" on steps): exact integer floors.
        cum = np.cumsum(weights.astype(np.int64))
        offsets = np.array([int(budget) * int(c) // int(cum[-1]) for c in cum], np.float64)
    else:
        offsets = np.floor(budget * np.cumsum(weights) / weights.sum() / grid) * grid
    bounds = first + offsets
    bounds[-1] = end
    return np.diff(np.concatenate([[first], bounds]))


def _rescale_row(cols: dict[str, np.ndarray], i: int, new_length: float, clock: str) -> None:
    """Gives row ``i`` the length ``new_length``, keeping its warmup fraction."""
    length = float(cols["length"][i])
    warmup = float(cols["warmup"][i])
    begin = float(cols["decay_begin"][i])
    if clock == "steps":
        new_warmup = float(int(warmup) * int(new_length) // int(length))
    else:
        new_warmup = warmup * new_length / length
        if np.float32(new_warmup) >= np.float32(new_length):
            new_warmup = float(np.nextafter(np.float32(new_length), np.float32(0)))
    if begin == warmup:
        new_begin = new_warmup
    elif begin == 0.0:
        new_begin = 0.0
    else:
        new_begin = begin * new_warmup / warmup
    shape = int(cols["decay_shape"][i])
    if shape == DecayId.EXPONENTIAL:
        factor = (new_length - new_begin) / (length - begin)
        cols["decay_params"][i, 0] = max(float(cols["decay_params"][i, 0]) * factor, 1e-30)
    elif shape == DecayId.RSQRT:
        factor = max(new_warmup, 1.0) / max(warmup, 1.0)
        cols["decay_params"][i, 0] = float(cols["decay_params"][i, 0]) * factor
    cols["length"][i] = new_length
    cols["warmup"][i] = new_warmup
    cols["decay_begin"][i] = new_begin


def _pad_row(cols: dict[str, np.ndarray], i: int) -> None:
    for name, col in cols.items():
        col[i] = _PAD.get(name, 0)


def end_cycle_early(
    table: CycleTable,
    t: float,
    redistribution: Redistribution | None = None,
    *,
    clock: str = "steps",
) -> EarlyStopResult:
    """Ends the cycle that owns ``t`` at ``t`` and splits the budget left.

    See the module docstring for the exact rules (ownership, refusals, warmup
    fractions, decay parameter rescaling, rounding, dropped cycles).

    Args:
      table: a concrete cycle table (host-side; not a traced value).
      t: the step (``steps`` clock; a whole number) or time (``seconds`` clock) at
        which the cycle ends; the next cycle starts there.
      redistribution: how the budget left is split; ``None`` means
        ``Redistribution()`` (proportional).
      clock: ``"steps"`` or ``"seconds"``, the clock of the table.

    Returns:
      An :class:`EarlyStopResult`. When the stop is not applied its ``table`` is the
      input table and its ``reason`` says why.

    Raises:
      TypeError: if ``table`` is not a concrete CycleTable, ``t`` is not a number or
        ``redistribution`` not a Redistribution.
      ValueError: for a non-finite ``t``, a fractional ``t`` or table on the steps
        clock, an unknown clock or a malformed table.

    Example:
      >>> from algoperf_reinit.schedules import CycleSpec, table_from_cycles
      >>> table = table_from_cycles([CycleSpec(300, warmup=30)] * 3, capacity=8)
      >>> result = end_cycle_early(table, 450, Redistribution("equal"))
      >>> result.new_boundaries
      [0.0, 300.0, 450.0, 900.0]
      >>> result.reason
      'ended cycle 1 at step 450; 1 cycle gets the remaining 450 steps'
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    redistribution = Redistribution() if redistribution is None else redistribution
    if not isinstance(redistribution, Redistribution):
        raise TypeError(
            f"redistribution must be a Redistribution, got {type(redistribution).__name__}"
        )
    cols = _host_columns(table, clock)
    t = _time(t, clock)
    old = table.boundaries()
    if not old:
        return EarlyStopResult(table, False, "not applied: the table has no cycles", -1, [], [],
                               0)
    n = len(old) - 1
    starts = np.asarray(old, np.float64)
    end = float(starts[-1])
    if clock == "steps":
        grid, unit, at, fmt = 1.0, " steps", "step ", lambda x: str(int(x))
        min_length = float(max(math.ceil(redistribution.min_cycle_length), 1))
    else:
        grid, unit, at, fmt = float(np.spacing(np.float32(end))), " s", "", "{:.10g}".format
        t = math.floor(t / grid + 0.5) * grid
        min_length = redistribution.min_cycle_length

    def refuse(cycle: int, why: str) -> EarlyStopResult:
        return EarlyStopResult(table, False, why, cycle, old, list(old), 0)

    if t < starts[0] or t >= end:
        return refuse(-1, f"not applied: {at}{fmt(t)} lies outside the schedule "
                          f"[{fmt(starts[0])}, {fmt(end)}); no cycle owns it")
    c = int(np.searchsorted(starts[:n], t, side="right")) - 1
    if c == n - 1:
        return refuse(c, f"not applied: {at}{fmt(t)} is in the last cycle ({c}); no cycle is "
                         "left to take the remaining budget, so the cycle continues")
    elapsed = t - float(starts[c])
    warmup = float(cols["warmup"][c])
    if elapsed == 0:
        return refuse(c, f"not applied: {at}{fmt(t)} is the start of cycle {c}; there is nothing "
                         "to end")
    if elapsed <= warmup:
        return refuse(c, f"not applied: cycle {c} is still in its warmup at {at}{fmt(t)} "
                         f"({fmt(elapsed)} of {fmt(warmup)}{unit}); it must outlast its warmup")

    budget = end - t
    planned = cols["length"][c + 1:n].astype(np.float64)
    m = planned.shape[0]
    for kept in range(m, 0, -1):
        lengths = _split(budget, t, end, redistribution.weights(planned[:kept]), clock, grid)
        if lengths.min() >= min_length:
            break
    else:
        return refuse(c, f"not applied: the remaining {fmt(budget)}{unit} after {at}{fmt(t)} "
                         f"cannot hold one cycle of at least {fmt(min_length)}{unit}")

    cols["length"][c] = elapsed
    for k, new_length in enumerate(lengths):
        row = c + 1 + k
        _rescale_row(cols, row, float(new_length), clock)
        cols["start"][row] = t + float(np.sum(lengths[:k]))
    for row in range(c + 1 + kept, n):
        _pad_row(cols, row)
    new_table = CycleTable(*(jnp.asarray(cols[name], np.asarray(getattr(table, name)).dtype)
                             for name in CycleTable._fields))
    new = new_table.boundaries()
    if np.any(np.diff(np.asarray(new_table.start)[: c + 1 + kept]) <= 0):
        return refuse(c, f"not applied: the new boundaries {new} are not strictly increasing "
                         "in float32")

    dropped = m - kept
    share = (f"{kept} cycles share" if kept > 1 else "1 cycle gets")
    reason = f"ended cycle {c} at {at}{fmt(t)}; {share} the remaining {fmt(budget)}{unit}"
    if dropped:
        reason += (f"; dropped {dropped} trailing cycle{'s' if dropped > 1 else ''}, which "
                   f"did not fit (each cycle needs at least {fmt(min_length)}{unit})")
    return EarlyStopResult(new_table, True, reason, c, old, new, dropped)
