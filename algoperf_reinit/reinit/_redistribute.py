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
* Decay parameters that carry a length are rescaled with the cycle, as each decay
  kind declares (``schedules._decays``; the table stores only numbers, not whether
  they were defaults): the exponential decay's transition length scales with the
  decay phase (``length - decay_begin``), so the default (one transition over the
  decay phase) stays the default; the inverse square root's timescale scales with
  ``max(warmup, 1)``, so its default (the warmup length) stays the default.
  Cosine, linear, polynomial, constant and warmup-stable-decay parameters are
  scale-free and kept.
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
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.schedules._decays import rescale
from algoperf_reinit.schedules._table import CycleTable, check_clock

__all__ = ["RULES", "EarlyStopResult", "Redistribution", "end_cycle_early"]

RULES = ("equal", "proportional", "geometric")
"""How the budget left is split over the remaining cycles (see :class:`Redistribution`)."""

# Values of a padding row (as written by ``table_from_cycles``).
_PAD = {"start": np.inf, "length": 1.0, "warmup_param": 1.0}


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
        _validation.choice("Redistribution.rule", self.rule, RULES)
        for name in ("ratio", "min_cycle_length"):
            value = _validation.positive(f"Redistribution.{name}", getattr(self, name))
            object.__setattr__(self, name, value)
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
    rule = "a number (a step or a time)"
    if isinstance(t, bool | np.bool_):
        raise _validation.type_error("t", t, rule)
    try:
        value = np.asarray(t)
    except jax.errors.TracerArrayConversionError:
        raise TypeError("t must be a concrete number, got a traced value; call "
                        "end_cycle_early on the host, outside jit") from None
    if value.ndim != 0 or not (np.issubdtype(value.dtype, np.integer)
                               or np.issubdtype(value.dtype, np.floating)):
        raise _validation.type_error("t", t, rule)
    value = _validation.real("t", float(value))
    if clock == "steps" and value != math.floor(value):
        raise _validation.value_error("t", t, "a whole number of steps on the 'steps' clock")
    return value


def _host_columns(table: Any, clock: str) -> dict[str, np.ndarray]:
    if not isinstance(table, CycleTable):
        raise _validation.type_error("table", table, "a CycleTable")
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
    cols["decay_params"][i] = rescale(cols["decay_shape"][i], cols["decay_params"][i],
                                      (length - begin, warmup), (new_length - new_begin, new_warmup))
    cols["length"][i] = new_length
    cols["warmup"][i] = new_warmup
    cols["decay_begin"][i] = new_begin


def _pad_row(cols: dict[str, np.ndarray], i: int) -> None:
    for name, col in cols.items():
        col[i] = _PAD.get(name, 0)


class _Units(NamedTuple):
    """How times are rounded and written on a clock."""

    grid: float  # the spacing new boundaries lie on
    unit: str  # after a length: " steps", " s" or " layer tokens"
    at: str  # before a time: "step " or ""
    fmt: Callable[[float], str]
    min_length: float  # the shortest cycle the split may produce


def _units(clock: str, end: float, redistribution: Redistribution) -> _Units:
    if clock == "steps":
        return _Units(1.0, " steps", "step ", lambda x: str(int(x)),
                      float(max(math.ceil(redistribution.min_cycle_length), 1)))
    unit = " s" if clock == "seconds" else " " + clock.replace("_", " ")
    return _Units(float(np.spacing(np.float32(end))), unit, "", "{:.10g}".format,
                  redistribution.min_cycle_length)


def _refusal(starts: np.ndarray, warmups: np.ndarray, t: float, u: _Units) -> tuple[int, str]:
    """The cycle that owns ``t`` (-1 for none) and why it cannot end there ("" if it can)."""
    n, end = len(starts) - 1, float(starts[-1])
    if t < starts[0] or t >= end:
        return -1, (f"not applied: {u.at}{u.fmt(t)} lies outside the schedule "
                    f"[{u.fmt(starts[0])}, {u.fmt(end)}); no cycle owns it")
    c = int(np.searchsorted(starts[:n], t, side="right")) - 1
    if c == n - 1:
        return c, (f"not applied: {u.at}{u.fmt(t)} is in the last cycle ({c}); no cycle is "
                   "left to take the remaining budget, so the cycle continues")
    elapsed, warmup = t - float(starts[c]), float(warmups[c])
    if elapsed == 0:
        return c, f"not applied: {u.at}{u.fmt(t)} is the start of cycle {c}; there is nothing to end"
    if elapsed <= warmup:
        return c, (f"not applied: cycle {c} is still in its warmup at {u.at}{u.fmt(t)} "
                   f"({u.fmt(elapsed)} of {u.fmt(warmup)}{u.unit}); it must outlast its warmup")
    return c, ""


def _fit(t: float, end: float, planned: np.ndarray, redistribution: Redistribution, clock: str,
         u: _Units) -> np.ndarray | None:
    """New lengths of the first cycles after ``t`` that reach ``min_length``, or ``None``."""
    for kept in range(planned.shape[0], 0, -1):
        lengths = _split(end - t, t, end, redistribution.weights(planned[:kept]), clock, u.grid)
        if lengths.min() >= u.min_length:
            return lengths
    return None


def _reason(c: int, t: float, kept: int, dropped: int, budget: float, u: _Units) -> str:
    share = (f"{kept} cycles share" if kept > 1 else "1 cycle gets")
    reason = f"ended cycle {c} at {u.at}{u.fmt(t)}; {share} the remaining {u.fmt(budget)}{u.unit}"
    if dropped:
        reason += (f"; dropped {dropped} trailing cycle{'s' if dropped > 1 else ''}, which "
                   f"did not fit (each cycle needs at least {u.fmt(u.min_length)}{u.unit})")
    return reason


def _stopped_table(table: CycleTable, cols: dict[str, np.ndarray], c: int, t: float,
                   lengths: np.ndarray, n: int, clock: str) -> CycleTable:
    """``table`` with cycle ``c`` ended at ``t`` and the next cycles given ``lengths``."""
    cols["length"][c] = t - float(cols["start"][c])
    for k, new_length in enumerate(lengths):
        row = c + 1 + k
        _rescale_row(cols, row, float(new_length), clock)
        cols["start"][row] = t + float(np.sum(lengths[:k]))
    for row in range(c + 1 + len(lengths), n):
        _pad_row(cols, row)
    return CycleTable(*(jnp.asarray(cols[name], np.asarray(getattr(table, name)).dtype)
                        for name in CycleTable._fields))


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
      t: the step (``steps`` clock; a whole number), time (``seconds``) or layer-token
        count (``layer_tokens``) at which the cycle ends; the next cycle starts there.
      redistribution: how the budget left is split; ``None`` means
        ``Redistribution()`` (proportional).
      clock: ``"steps"``, ``"seconds"`` or ``"layer_tokens"``, the clock of the table.

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
    check_clock(clock)
    redistribution = Redistribution() if redistribution is None else redistribution
    if not isinstance(redistribution, Redistribution):
        raise _validation.type_error("redistribution", redistribution, "a Redistribution")
    cols, t = _host_columns(table, clock), _time(t, clock)
    old = table.boundaries()
    if not old:
        return EarlyStopResult(table, False, "not applied: the table has no cycles", -1, [], [],
                               0)
    n, starts, end = len(old) - 1, np.asarray(old, np.float64), float(old[-1])
    u = _units(clock, end, redistribution)
    if clock != "steps":  # a float32 table: t on its grid
        t = math.floor(t / u.grid + 0.5) * u.grid

    def refuse(cycle: int, why: str) -> EarlyStopResult:
        return EarlyStopResult(table, False, why, cycle, old, list(old), 0)

    c, why = _refusal(starts, cols["warmup"], t, u)
    if why:
        return refuse(c, why)
    budget = end - t
    lengths = _fit(t, end, cols["length"][c + 1:n].astype(np.float64), redistribution, clock, u)
    if lengths is None:
        return refuse(c, f"not applied: the remaining {u.fmt(budget)}{u.unit} after "
                         f"{u.at}{u.fmt(t)} cannot hold one cycle of at least "
                         f"{u.fmt(u.min_length)}{u.unit}")
    new_table = _stopped_table(table, cols, c, t, lengths, n, clock)
    new = new_table.boundaries()
    if np.any(np.diff(np.asarray(new_table.start)[: c + 1 + len(lengths)]) <= 0):
        return refuse(c, f"not applied: the new boundaries {new} are not strictly increasing "
                         "in float32")
    dropped = n - c - 1 - len(lengths)
    return EarlyStopResult(new_table, True, _reason(c, t, len(lengths), dropped, budget, u), c,
                           old, new, dropped)
