"""Cycle tables that reproduce other libraries' warm-restart schedules.

Both builders restate the published formulas as cycle tables; tests compare them
with transcriptions of those formulas.

* PyTorch ``CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)`` (SGDR, Loshchilov &
  Hutter 2017): ``eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2``
  with ``T_i = T_0 * T_mult ** i``.
* timm ``CosineLRScheduler``: the same cosine with ``k_decay`` applied to the
  progress (``t_cur ** k / t_i ** k``), cycle ``i`` of length
  ``t_initial * cycle_mul ** i`` with peak ``base_lr * cycle_decay ** i``, a linear
  warmup from ``warmup_lr_init`` over ``warmup_t`` steps, and ``lr_min`` after
  ``cycle_limit`` cycles. With ``warmup_prefix=True`` the cycles start after the
  warmup; with ``False`` the warmup covers the first ``warmup_t`` steps of the first
  cycle, whose cosine still counts from step 0 (``decay_begin=0``).
"""

from __future__ import annotations

import math

from algoperf_reinit.schedules._shapes import Decay
from algoperf_reinit.schedules._table import CycleSpec, CycleTable, table_from_cycles


def _positive(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{field} must be a finite number > 0, got {value!r}")
    return float(value)


def _clock(lengths: list[float], warmup: float) -> str:
    whole = all(float(x).is_integer() for x in [*lengths, warmup])
    return "steps" if whole else "seconds"


def pytorch_cosine_warm_restarts(
    base_lr: float,
    T_0: int,
    budget: float,
    T_mult: int = 1,
    eta_min: float = 0.0,
    *,
    capacity: int | None = None,
) -> CycleTable:
    """The table equal to PyTorch's ``CosineAnnealingWarmRestarts`` over ``budget`` steps.

    Args:
      base_lr: the optimizer's learning rate (the peak of every cycle).
      T_0: length of the first cycle in steps (int >= 1).
      budget: steps to cover; cycles are added until their lengths reach it.
      T_mult: growth factor of the cycle length (int >= 1, as in PyTorch).
      eta_min: minimum value, reached at the end of each cycle.
      capacity: table rows; ``None`` means the number of cycles.

    Returns:
      The table; ``table(step)`` equals the scheduler's learning rate after ``step``
      calls of ``scheduler.step()``.
    """
    if isinstance(T_0, bool) or not isinstance(T_0, int) or T_0 < 1:
        raise ValueError(f"T_0 must be an int >= 1, got {T_0!r}")
    if isinstance(T_mult, bool) or not isinstance(T_mult, int) or T_mult < 1:
        raise ValueError(f"T_mult must be an int >= 1, got {T_mult!r}")
    budget = _positive("budget", budget)
    base_lr = _positive("base_lr", base_lr)
    lengths: list[float] = []
    while sum(lengths) < budget:
        lengths.append(float(T_0 * T_mult ** len(lengths)))
    cycles = [
        CycleSpec(length=n, peak=base_lr, end_value=eta_min, warmup_shape="none",
                  decay_shape=Decay.cosine())
        for n in lengths
    ]
    return table_from_cycles(cycles, capacity=capacity, clock="steps")


def timm_cosine(
    base_lr: float,
    t_initial: float,
    lr_min: float = 0.0,
    cycle_mul: float = 1.0,
    cycle_decay: float = 1.0,
    cycle_limit: int = 1,
    warmup_t: float = 0,
    warmup_lr_init: float = 0.0,
    warmup_prefix: bool = False,
    k_decay: float = 1.0,
    *,
    capacity: int | None = None,
) -> CycleTable:
    """The table equal to timm's ``CosineLRScheduler`` (step-based).

    Args:
      base_lr: the optimizer's learning rate.
      t_initial: length of the first cycle.
      lr_min: end value of every cycle, and the value after ``cycle_limit`` cycles.
      cycle_mul: growth factor of the cycle length.
      cycle_decay: the peak of cycle ``i`` is ``base_lr * cycle_decay ** i``.
      cycle_limit: number of cycles.
      warmup_t: warmup steps (only at the start of the run, as in timm).
      warmup_lr_init: value at step 0 of the warmup.
      warmup_prefix: whether the cycles start after the warmup.
      k_decay: exponent applied to the cosine's progress.
      capacity: table rows; ``None`` means ``cycle_limit``.

    Returns:
      The table; ``table(t)`` equals ``scheduler._get_lr(t)`` for every step ``t``.
    """
    base_lr = _positive("base_lr", base_lr)
    t_initial = _positive("t_initial", t_initial)
    cycle_mul = _positive("cycle_mul", cycle_mul)
    cycle_decay = _positive("cycle_decay", cycle_decay)
    k_decay = _positive("k_decay", k_decay)
    if isinstance(cycle_limit, bool) or not isinstance(cycle_limit, int) or cycle_limit < 1:
        raise ValueError(f"cycle_limit must be an int >= 1, got {cycle_limit!r}")
    if not math.isfinite(warmup_t) or warmup_t < 0:
        raise ValueError(f"warmup_t must be a finite number >= 0, got {warmup_t!r}")
    if not warmup_prefix and warmup_t >= t_initial:
        raise ValueError(
            f"without warmup_prefix the warmup must end inside the first cycle: warmup_t "
            f"({warmup_t!r}) must be < t_initial ({t_initial!r})"
        )
    lengths = [t_initial * cycle_mul**i for i in range(cycle_limit)]
    cycles = []
    for i, length in enumerate(lengths):
        spec = dict(
            length=length, peak=base_lr * cycle_decay**i, end_value=lr_min,
            warmup_shape="none", decay_shape=Decay.cosine(k_decay=k_decay),
        )
        if i == 0 and warmup_t > 0:
            spec.update(
                warmup=float(warmup_t), init_value=warmup_lr_init, warmup_shape="linear",
                length=length + warmup_t if warmup_prefix else length,
                decay_begin=None if warmup_prefix else 0.0,
            )
        cycles.append(CycleSpec(**spec))
    return table_from_cycles(
        cycles, capacity=capacity, clock=_clock([c.length for c in cycles], warmup_t)
    )
