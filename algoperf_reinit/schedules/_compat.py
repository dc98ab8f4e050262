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

from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.schedules._shapes import Decay
from algoperf_reinit.schedules._table import CycleSpec, CycleTable, table_from_cycles

__all__ = ["pytorch_cosine_warm_restarts", "timm_cosine"]


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

    Raises:
      TypeError: for ``T_0``/``T_mult`` that are not ints, or a non-number.
      ValueError: for a value out of range.
    """
    T_0 = _validation.integer("T_0", T_0, minimum=1)
    T_mult = _validation.integer("T_mult", T_mult, minimum=1)
    budget = _validation.positive("budget", budget)
    base_lr = _validation.positive("base_lr", base_lr)
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

    Raises:
      TypeError: for a ``cycle_limit`` that is not an int, or a non-number.
      ValueError: for a value out of range, or a warmup that does not end inside
        the first cycle without ``warmup_prefix``.
    """
    base_lr, t_initial, cycle_mul, cycle_decay, k_decay = (
        _validation.positive(name, value) for name, value in (
            ("base_lr", base_lr), ("t_initial", t_initial), ("cycle_mul", cycle_mul),
            ("cycle_decay", cycle_decay), ("k_decay", k_decay)))
    cycle_limit = _validation.integer("cycle_limit", cycle_limit, minimum=1)
    _validation.non_negative("warmup_t", warmup_t)
    if not warmup_prefix and warmup_t >= t_initial:
        raise ValueError(
            f"without warmup_prefix the warmup must end inside the first cycle: warmup_t "
            f"({warmup_t!r}) must be < t_initial ({t_initial!r})"
        )
    cycles = [_timm_cycle(i, base_lr, t_initial * cycle_mul**i, lr_min, cycle_decay, k_decay,
                          warmup_t, warmup_lr_init, warmup_prefix) for i in range(cycle_limit)]
    return table_from_cycles(
        cycles, capacity=capacity, clock=_clock([c.length for c in cycles], warmup_t)
    )


def _timm_cycle(i: int, base_lr: float, length: float, lr_min: float, cycle_decay: float,
                k_decay: float, warmup_t: Any, warmup_lr_init: float,
                warmup_prefix: bool) -> CycleSpec:
    """Cycle ``i`` of :func:`timm_cosine`; the first one carries the warmup."""
    spec: dict[str, Any] = dict(
        length=length, peak=base_lr * cycle_decay**i, end_value=lr_min,
        warmup_shape="none", decay_shape=Decay.cosine(k_decay=k_decay),
    )
    if i == 0 and warmup_t > 0:
        spec.update(
            warmup=float(warmup_t), init_value=warmup_lr_init, warmup_shape="linear",
            length=length + warmup_t if warmup_prefix else length,
            decay_begin=None if warmup_prefix else 0.0,
        )
    return CycleSpec(**spec)
