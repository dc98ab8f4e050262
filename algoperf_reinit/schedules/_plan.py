"""Applying a :class:`ScheduleConfig` to a budget: cycle lengths, cycles and the table.

The rules are stated in ``_config``'s module docstring; this module applies them on
the host in float64. The base values are called ``peak`` and ``warmup_fraction``
here (what a cycle table is made of); the AlgoPerf-facing builders of ``_seed``
pass the ``learning_rate`` and ``warmup_factor`` hyperparameters as these, and
their error messages name the hyperparameters (:class:`BaseNames`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.schedules._config import ScheduleConfig
from algoperf_reinit.schedules._table import CycleSpec, CycleTable, table_from_cycles

__all__ = [
    "HYPERPARAMETER_NAMES",
    "TABLE_NAMES",
    "BaseNames",
    "build_cycle_table",
    "cycle_lengths",
    "plan",
    "plan_cycles",
]


class BaseNames(NamedTuple):
    """What the base peak and warmup fraction are called in error messages."""

    peak: str
    warmup_fraction: str


TABLE_NAMES = BaseNames("peak", "warmup_fraction")
"""The arguments of :func:`plan_cycles` and :func:`build_cycle_table`."""
HYPERPARAMETER_NAMES = BaseNames("learning_rate", "warmup_factor")
"""The AlgoPerf hyperparameters ``jax_lr_schedule`` reads them from."""


def _budget(budget: Any, clock: str) -> float:
    value = _validation.positive("budget", budget)
    if clock == "steps" and value != int(value):
        raise _validation.value_error("budget", budget,
                                      "a whole number of steps on the 'steps' clock")
    return value


def cycle_lengths(config: ScheduleConfig, budget: float) -> list[float]:
    """Cycle lengths for ``budget`` under ``config`` (before ``cycle_limit``).

    Args:
      config: the schedule configuration.
      budget: total budget in clock units (steps or seconds).

    Returns:
      One length per cycle; whole numbers on the steps clock.

    Raises:
      ValueError: for a non-positive budget, explicit lengths that exceed it, or more
        cycles than whole steps.
      TypeError: for a budget that is not a number.
    """
    budget = _budget(budget, config.clock)
    n = config.num_cycles
    if config.cycle_lengths is not None:
        lengths = np.array(config.cycle_lengths, np.float64)
        if lengths.sum() > budget * (1 + 1e-9):
            raise ValueError(
                f"cycle_lengths sum to {lengths.sum():g}, more than the budget {budget:g}"
            )
    elif config.cycle_fractions is not None:
        lengths = np.array(config.cycle_fractions, np.float64) * budget
    else:
        weights = config.cycle_mul ** np.arange(n, dtype=np.float64)
        lengths = budget * weights / weights.sum()
    if config.clock == "steps":
        ends = np.floor(np.cumsum(lengths) + 1e-9)
        lengths = np.diff(np.concatenate([[0.0], ends]))
        if np.any(lengths < 1):
            raise ValueError(
                f"{len(lengths)} cycles do not fit in a budget of {budget:g} steps: a cycle "
                f"would be shorter than one step (lengths {lengths.tolist()}); use fewer cycles"
            )
    return lengths.tolist()


def _cycle(config: ScheduleConfig, i: int, length: float, peak: float, warmup_fraction: float,
           names: BaseNames) -> CycleSpec:
    """Cycle ``i`` of the plan, of length ``length``."""
    alter_lr, lr_scale = config.per_cycle("alter_lr", i), config.per_cycle("lr_scales", i)
    cycle_peak = (peak + alter_lr) * lr_scale * config.cycle_decay**i
    if cycle_peak <= 0:
        raise _validation.value_error(
            f"cycle {i}: peak", cycle_peak, "> 0",
            fix=f"from {names.peak}={peak!r}, alter_lr={alter_lr!r}, lr_scales={lr_scale!r}",
        )
    alter_warmup = config.per_cycle("alter_warmup", i)
    warmup_scale = config.per_cycle("warmup_scales", i)
    fraction = (warmup_fraction + alter_warmup) * warmup_scale
    _validation.in_range(
        f"cycle {i}: warmup fraction", fraction, 0.0, 1.0, high_open=True,
        fix=f"from {names.warmup_fraction}={warmup_fraction!r}, alter_warmup={alter_warmup!r}, "
        f"warmup_scales={warmup_scale!r}",
    )
    warmup_shape = config.per_cycle("warmup_shapes", i)
    if warmup_shape.kind == "none":
        warmup = 0.0
    elif config.clock == "steps":
        warmup = float(int(fraction * length))
    else:
        warmup = fraction * length
    end = (
        config.end_factor * cycle_peak
        if config.end_factor is not None
        else config.per_cycle("end_value", i)
    )
    return CycleSpec(
        length=length,
        warmup=warmup,
        peak=cycle_peak,
        init_value=config.per_cycle("init_value", i),
        end_value=end,
        warmup_shape=warmup_shape,
        decay_shape=config.per_cycle("decay_shapes", i),
    )


def plan(config: ScheduleConfig, budget: Any, peak: Any, warmup_fraction: Any,
         names: BaseNames) -> list[CycleSpec]:
    """:func:`plan_cycles`, with ``names`` for the base values in error messages."""
    peak = _validation.positive(names.peak, peak)
    warmup_fraction = _validation.real(names.warmup_fraction, warmup_fraction)
    lengths = cycle_lengths(config, budget)
    if config.cycle_limit is not None:
        lengths = lengths[: config.cycle_limit]
    return [_cycle(config, i, length, peak, warmup_fraction, names)
            for i, length in enumerate(lengths)]


def plan_cycles(
    config: ScheduleConfig,
    budget: float,
    peak: float,
    warmup_fraction: float,
) -> list[CycleSpec]:
    """Applies ``config`` to a budget, base peak and base warmup fraction.

    Args:
      config: the schedule configuration.
      budget: total budget in clock units.
      peak: base peak value (``> 0``; a submission passes its ``learning_rate``).
      warmup_fraction: base warmup fraction of each cycle (a submission passes its
        ``warmup_factor``).

    Returns:
      The cycles, in order, after ``cycle_limit``.

    Raises:
      ValueError: naming the cycle and field when a cycle breaks a rule, or the
        argument (``peak``, ``budget``) that is out of range.
      TypeError: for an argument that is not a number.
    """
    return plan(config, budget, peak, warmup_fraction, TABLE_NAMES)


def build_cycle_table(
    config: ScheduleConfig,
    budget: float,
    peak: float,
    warmup_fraction: float,
    *,
    capacity: int | None = None,
) -> CycleTable:
    """Builds the cycle table for a budget, base peak and base warmup fraction.

    Args:
      config: the schedule configuration.
      budget: total budget in clock units (steps or seconds).
      peak: base peak value (a submission passes its ``learning_rate``).
      warmup_fraction: base warmup fraction of each cycle (its ``warmup_factor``).
      capacity: number of table rows (padding allows later tables with more cycles to
        reuse compiled code); ``None`` means the number of cycles.

    Returns:
      The table.

    Example:
      >>> table = build_cycle_table(ScheduleConfig(num_cycles=3), 300, 1e-3, 0.1)
      >>> table.boundaries()
      [0.0, 100.0, 200.0, 300.0]
    """
    cycles = plan_cycles(config, budget, peak, warmup_fraction)
    return table_from_cycles(cycles, capacity=capacity, clock=config.clock)
