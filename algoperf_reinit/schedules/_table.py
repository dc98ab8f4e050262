"""The cycle table: a multi-cycle learning-rate schedule stored as arrays.

A :class:`CycleTable` holds one row per cycle (start, length, warmup, values,
shape ids, shape parameters). Evaluating it at time ``t`` finds the cycle with a
binary search (``jnp.searchsorted``) and applies one warmup or decay formula, so
the graph and its cost do not grow with the number of cycles. Because the table
is a pytree of arrays, one jitted function evaluates every table of the same
padded size: new boundaries or peaks never recompile.

Boundary convention: cycle ``i`` owns ``[start_i, start_i + length_i)``. The time
at a boundary belongs to the cycle that *begins* there, so ``table(start_i)`` is
cycle ``i``'s initial value (its warmup ``init_value``, or its peak when it has no
warmup). Inside a cycle, ``t = warmup`` belongs to the decay and equals the peak.
Before the first cycle the value is the first cycle's initial value; after the
last cycle it stays at the value the last cycle ends with (its end value).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.schedules import _decays, _shapes
from algoperf_reinit.schedules._shapes import Decay, Warmup

__all__ = [
    "CLOCKS",
    "CycleSpec",
    "CycleTable",
    "check_clock",
    "cycle_index",
    "evaluate",
    "table_from_cycles",
]

CLOCKS = ("steps", "seconds", "layer_tokens")
"""Clocks a schedule can run on: optimizer steps, seconds of submission time, or
random-LTD's consumed layer tokens (written by the host like seconds)."""


def check_clock(clock: Any, field: str = "clock") -> str:
    """``clock`` if it is one of :data:`CLOCKS` (``TypeError``/``ValueError`` otherwise)."""
    return _validation.choice(field, clock, CLOCKS)


class CycleTable(NamedTuple):
    """A multi-cycle schedule as a pytree of arrays; call it with a step or a time.

    Rows past the last real cycle are padding: their ``start`` is ``+inf`` so the
    binary search never selects them. Build tables with :func:`table_from_cycles`
    or the rules in this package rather than by hand.

    Example:
      >>> from algoperf_reinit.schedules import CycleSpec, table_from_cycles
      >>> table = table_from_cycles([CycleSpec(length=100, warmup=10, peak=1e-3)] * 2)
      >>> float(table(100))  # start of the second cycle: its warmup begins at 0
      0.0
    """

    start: jax.Array  # shape=(n,), dtype=float32; +inf for padding rows
    length: jax.Array  # shape=(n,), dtype=float32
    warmup: jax.Array  # shape=(n,), dtype=float32; warmup length
    decay_begin: jax.Array  # shape=(n,), dtype=float32; offset where decay progress is 0
    init_value: jax.Array  # shape=(n,), dtype=float32; value at the start of the warmup
    peak: jax.Array  # shape=(n,), dtype=float32
    end_value: jax.Array  # shape=(n,), dtype=float32
    warmup_shape: jax.Array  # shape=(n,), dtype=int32; a WarmupId
    decay_shape: jax.Array  # shape=(n,), dtype=int32; a DecayId
    warmup_param: jax.Array  # shape=(n,), dtype=float32; polynomial warmup power
    decay_params: jax.Array  # shape=(n, 3), dtype=float32; see Decay.params and _decays

    def __call__(self, t: jax.typing.ArrayLike) -> jax.Array:
        """Evaluates the schedule at a step or time ``t`` (scalar or array)."""
        return evaluate(self, t)

    @property
    def capacity(self) -> int:
        """Number of rows, real cycles and padding together (a static shape)."""
        return int(self.start.shape[0])

    @property
    def num_cycles(self) -> int:
        """Number of real cycles (host-side; needs a concrete table)."""
        return int(np.isfinite(np.asarray(self.start)).sum())

    def boundaries(self) -> list[float]:
        """Starts of all real cycles followed by the end of the last one (host-side)."""
        n = self.num_cycles
        start = np.asarray(self.start, np.float64)[:n]
        if n == 0:
            return []
        return [*start.tolist(), float(start[-1] + np.asarray(self.length, np.float64)[n - 1])]

    def warmup_ends(self) -> list[float]:
        """Where the warmups of the real cycles end, ``start + warmup`` (host-side).

        Only cycles with a warmup (``warmup > 0``) appear: a cycle without one
        starts at its peak, so its "warmup end" would be its start, which
        :meth:`boundaries` already lists. Computed in float64 like
        :meth:`boundaries`; each value is a sum of two float32 numbers, so
        converting it to float32 gives the float32 sum.
        """
        n = self.num_cycles
        start = np.asarray(self.start, np.float64)[:n]
        warmup = np.asarray(self.warmup, np.float64)[:n]
        return (start + warmup)[warmup > 0].tolist()


def _cycle_row(table: CycleTable, t: jax.Array) -> jax.Array:
    index = jnp.searchsorted(table.start, t, side="right").astype(jnp.int32) - 1
    return jnp.clip(index, 0, table.start.shape[0] - 1)


def cycle_index(table: CycleTable, t: jax.typing.ArrayLike) -> jax.Array:
    """Index of the cycle that owns time ``t`` (0 before the first cycle).

    Args:
      table: the cycle table.
      t: step or time (scalar or array).

    Returns:
      int32 array of the shape of ``t``.
    """
    return _cycle_row(table, jnp.asarray(t, jnp.float32))


@jax.jit
def evaluate(table: CycleTable, t: jax.typing.ArrayLike) -> jax.Array:
    """Evaluates a cycle table at step or time ``t``.

    Cost: one binary search over the cycle starts and one formula, whatever the
    number of cycles.

    Args:
      table: the cycle table.
      t: step (int) or time (float), a scalar or an array of any shape.

    Returns:
      float32 values of the shape of ``t``.
    """
    t = jnp.asarray(t, jnp.float32)
    i = _cycle_row(table, t)
    row = jax.tree.map(lambda field: field[i], table)
    tc = jnp.clip(t - row.start, 0.0, row.length)
    warm = _shapes.warmup_value(row.warmup_shape, tc, row.warmup, row.init_value, row.peak,
                                row.warmup_param)
    decay = _decays.decay_value(row.decay_shape, tc, row.length, row.decay_begin, row.peak,
                                row.end_value, row.decay_params)
    return jnp.where(tc < row.warmup, warm, decay)


@dataclasses.dataclass(frozen=True)
class CycleSpec:
    """One cycle in host-side numbers, before it becomes a table row.

    Attributes:
      length: cycle length in clock units (> 0).
      warmup: warmup length, in ``[0, length)``.
      peak: value at the end of the warmup (>= 0).
      init_value: value at the start of the warmup, in ``[0, peak]``.
      end_value: value at the end of the decay, in ``[0, peak]``.
      warmup_shape: a :class:`Warmup` (or its name).
      decay_shape: a :class:`Decay` (or its name).
      decay_begin: where decay progress starts, in ``[0, warmup]``; ``None`` means
        at the end of the warmup. ``0`` lets the warmup overlap the decay's start
        (timm's ``warmup_prefix=False``).
    """

    length: float
    warmup: float = 0.0
    peak: float = 1.0
    init_value: float = 0.0
    end_value: float = 0.0
    warmup_shape: Warmup | str = "linear"
    decay_shape: Decay | str = "cosine"
    decay_begin: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "warmup_shape", _shapes.warmup_shape(self.warmup_shape))
        object.__setattr__(self, "decay_shape", _shapes.decay_shape(self.decay_shape))



def _validate_cycle(i: int, c: CycleSpec, clock: str) -> None:
    def field(name: str) -> str:
        return f"cycle {i}: {name}"

    length, warmup, peak, init, end = (
        _validation.real(field(name), getattr(c, name))
        for name in ("length", "warmup", "peak", "init_value", "end_value")
    )
    _validation.positive(field("length"), c.length)
    _validation.non_negative(field("warmup"), c.warmup)
    if clock == "steps":
        for name, value in (("length", length), ("warmup", warmup)):
            if value != int(value):
                raise _validation.value_error(field(name), getattr(c, name),
                                              "a whole number of steps on the 'steps' clock")
    if warmup >= length:
        raise ValueError(
            f"cycle {i}: the cycle (length {length:g}) must be longer than its warmup "
            f"({warmup:g}); lower the warmup fraction or lengthen the cycle"
        )
    _validation.non_negative(field("peak"), c.peak)
    for name, value in (("init_value", init), ("end_value", end)):
        if not 0 <= value <= peak:
            raise _validation.value_error(field(name), getattr(c, name), f"in [0, peak={peak:g}]")
    if c.warmup_shape.kind == "exponential" and warmup > 0 and init <= 0:
        raise ValueError(
            f"cycle {i}: an exponential warmup is geometric and needs init_value > 0, got "
            f"{c.init_value!r}"
        )
    if c.decay_begin is not None:
        begin = _validation.real(field("decay_begin"), c.decay_begin)
        if not 0 <= begin <= warmup:
            raise _validation.value_error(field("decay_begin"), c.decay_begin,
                                          f"in [0, warmup={warmup:g}]")


def _checked_cycles(cycles: Sequence[CycleSpec], clock: str) -> list[CycleSpec]:
    cycles = list(cycles)
    if not cycles:
        raise ValueError("cycles must hold at least one cycle, got an empty sequence")
    for i, c in enumerate(cycles):
        if not isinstance(c, CycleSpec):
            raise _validation.type_error(f"cycles[{i}]", c, "a CycleSpec")
        _validate_cycle(i, c, clock)
    return cycles


def _columns(cycles: list[CycleSpec], starts: np.ndarray, capacity: int) -> CycleTable:
    """The table's arrays: one row per cycle, then padding rows up to ``capacity``."""
    pad = capacity - len(cycles)

    def column(values, fill, dtype=np.float32):
        return jnp.asarray(np.concatenate([np.asarray(values, np.float64), [fill] * pad]), dtype)

    warmups = [0.0 if c.warmup_shape.kind == "none" else float(c.warmup) for c in cycles]
    begins = [w if c.decay_begin is None else float(c.decay_begin)
              for c, w in zip(cycles, warmups, strict=True)]
    params = np.array(
        [c.decay_shape.params(c.length - b, w)
         for c, b, w in zip(cycles, begins, warmups, strict=True)]
        + [(0.0,) * _decays.NUM_DECAY_PARAMS] * pad,
        np.float32,
    ).reshape(capacity, _decays.NUM_DECAY_PARAMS)
    return CycleTable(
        start=column(starts, np.inf),
        length=column([c.length for c in cycles], 1.0),
        warmup=column(warmups, 0.0),
        decay_begin=column(begins, 0.0),
        init_value=column([c.init_value for c in cycles], 0.0),
        peak=column([c.peak for c in cycles], 0.0),
        end_value=column([c.end_value for c in cycles], 0.0),
        warmup_shape=column([c.warmup_shape.shape_id for c in cycles], 0, np.int32),
        decay_shape=column([c.decay_shape.shape_id for c in cycles], 0, np.int32),
        warmup_param=column([c.warmup_shape.power for c in cycles], 1.0),
        decay_params=jnp.asarray(params),
    )


def table_from_cycles(
    cycles: Sequence[CycleSpec],
    *,
    origin: float = 0.0,
    capacity: int | None = None,
    clock: str = "steps",
) -> CycleTable:
    """Builds a cycle table from consecutive cycles.

    Args:
      cycles: the cycles, in order; cycle ``i + 1`` starts where cycle ``i`` ends.
      origin: start of the first cycle.
      capacity: number of table rows; rows past ``len(cycles)`` are padding. A fixed
        capacity lets tables with different cycle counts share one compiled
        function. ``None`` means ``len(cycles)``.
      clock: ``"steps"`` (lengths are whole numbers), ``"seconds"`` or ``"layer_tokens"``.

    Returns:
      The table.

    Raises:
      ValueError: for an empty list, a capacity below the number of cycles, an
        unknown clock, or a cycle that breaks a rule (the message names the cycle,
        the field, the value and the rule).
      TypeError: for a cycle that is not a :class:`CycleSpec`, or a capacity,
        origin or clock of the wrong type.
    """
    clock = check_clock(clock)
    cycles = _checked_cycles(cycles, clock)
    n = len(cycles)
    if capacity is not None:
        _validation.integer("capacity", capacity)
        if capacity < n:
            raise _validation.value_error("capacity", capacity,
                                          f"an int >= the number of cycles ({n})")
    capacity = n if capacity is None else int(capacity)
    origin = _validation.real("origin", origin)
    lengths = np.array([c.length for c in cycles], np.float64)
    starts = origin + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    if np.any(np.diff(starts.astype(np.float32)) <= 0):
        raise ValueError(
            "cycle starts must be strictly increasing in float32; a cycle is too short for "
            f"its position (starts {starts.tolist()})"
        )
    return _columns(cycles, starts, capacity)
