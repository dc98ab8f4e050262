"""A schedule as runs of steps with one value: what the shape buckets are chosen from.

A :class:`Run` is the steps ``[start, stop)`` at which a schedule has one value (a
tuple of numbers; ``stop=None`` for the final run, which lasts forever). The runs
follow DeepSpeed's update rule, sticky at the maximum: the value is
``value_at(step)`` until it first reaches ``max_value``, then never changes; a
starting value already at the maximum is never updated.

* :func:`curriculum_runs`: a ``CurriculumScheduler``'s schedule, evaluated with its own
  float64 formulas (``get_difficulty``), so every value is DeepSpeed's exactly;
  ``fixed_linear``/``fixed_root`` by bisection, ``fixed_discrete`` at its boundaries,
  ``custom`` at every step of a given horizon.
* :func:`monotone_runs`: any non-decreasing ``step -> value`` (random-LTD's
  ``get_value``), by exponential and binary search: a few evaluations per distinct
  value, so a schedule over millions of steps costs milliseconds.
* :func:`stepwise_runs`: any schedule, evaluated at every step of a horizon.
* :func:`joint_runs`: several schedules over the same steps zipped into runs of tuples
  (the curriculum's length beside random-LTD's kept length: one joint bound).

Step offsets are the caller's: the curriculum's first update is at step
:data:`CURRICULUM_FIRST_STEP` = 1 (DeepSpeed's sampler counts global batches from 1;
its legacy engine path used ``global_steps + 1``, also 1 on the first step);
random-LTD's at step 0 (``global_steps``).

Example:
  >>> from algoperf_reinit.data_efficiency import CurriculumScheduler
  >>> s = CurriculumScheduler({"min_difficulty": 16, "max_difficulty": 64,
  ...     "schedule_type": "fixed_linear",
  ...     "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 8}})
  >>> [(r.start, r.stop, r.value) for r in curriculum_runs(s)][:3]
  [(1, 2, (16,)), (2, 4, (24,)), (4, 5, (32,))]
  >>> curriculum_runs(s)[-1]
  Run(start=10, stop=None, value=(64,))
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._curriculum_scheduler import CurriculumScheduler

__all__ = [
    "CURRICULUM_FIRST_STEP",
    "Run",
    "Shape",
    "as_shape",
    "curriculum_runs",
    "joint_runs",
    "monotone_runs",
    "stepwise_runs",
]

CURRICULUM_FIRST_STEP = 1
"""The curriculum step of the first batch (DeepSpeed's sampler; legacy: global_steps + 1)."""

Shape = tuple[numbers.Real, ...]
_SEARCH_LIMIT = 1 << 62  # no schedule of a real run changes beyond this step


class Run(NamedTuple):
    """Steps ``[start, stop)`` at which a schedule has one value (``stop`` None: forever)."""

    start: int
    stop: int | None
    value: Shape

    @property
    def steps(self) -> int:
        """Number of steps (0 for the final, unbounded run)."""
        return 0 if self.stop is None else self.stop - self.start


def as_shape(field: str, value: Any) -> Shape:
    """A shape as a tuple of real numbers (a single number becomes a 1-tuple)."""
    items = tuple(value) if isinstance(value, tuple | list) else (value,)
    if not items:
        raise _validation.value_error(field, value, "a non-empty tuple of numbers")
    for item in items:
        _validation.real(field, item)
    return tuple(int(v) if isinstance(v, numbers.Integral) else float(v) for v in items)


def _sticky(points: Iterable[int], value_at: Callable[[int], Any], *, initial: Any,
            max_value: Any, first_step: int, end: int | None) -> tuple[Run, ...]:
    """Runs under DeepSpeed's update rule, given the steps where the value may change."""
    if not initial < max_value:
        return (Run(first_step, None, as_shape("value", initial)),)
    runs: list[Run] = []
    current = initial
    for point in points:
        if not current < max_value:
            break
        current = value_at(point)
        value = as_shape(f"value at step {point}", current)
        if runs and runs[-1].value == value:
            continue
        if runs:
            runs[-1] = runs[-1]._replace(stop=point)
        runs.append(Run(point, None, value))
    if runs and current < max_value and end is not None:
        runs[-1] = runs[-1]._replace(stop=end)
    return tuple(runs)


def _change_points(value_at: Callable[[int], Any], first_step: int,
                   max_value: Any) -> Iterator[int]:
    """Steps where a non-decreasing ``value_at`` changes (exponential + binary search)."""
    step = first_step
    while True:
        yield step
        value = value_at(step)
        if not value < max_value:
            return
        width = 1
        while value_at(step + width) == value:
            width *= 2
            if step + width > _SEARCH_LIMIT:
                return
        low, high = step + width // 2, step + width  # value_at(low) == value != value_at(high)
        while high - low > 1:
            middle = (low + high) // 2
            if value_at(middle) == value:
                low = middle
            else:
                high = middle
        step = high


def monotone_runs(value_at: Callable[[int], Any], *, first_step: int, max_value: Any,
                  initial: Any) -> tuple[Run, ...]:
    """The runs of a non-decreasing schedule, sticky at ``max_value``.

    Args:
      value_at: the pure schedule, ``step -> value``, non-decreasing in the step (e.g.
        ``RandomLTDScheduler.get_value``).
      first_step: the step of the first update (curriculum: 1; random-LTD: 0).
      max_value: the value at which updates stop (``max_difficulty``/``max_value``).
      initial: the value before the first update (``min_difficulty``/``min_value``).

    Returns:
      The runs in step order; the last one has ``stop=None``.

    Example:
      >>> monotone_runs(lambda s: min(8 * (s // 3), 16), first_step=0, max_value=16,
      ...               initial=0)
      (Run(start=0, stop=3, value=(0,)), Run(start=3, stop=6, value=(8,)), \
Run(start=6, stop=None, value=(16,)))
    """
    first_step = _validation.integer("first_step", first_step, minimum=0)
    return _sticky(_change_points(value_at, first_step, max_value), value_at,
                   initial=initial, max_value=max_value, first_step=first_step, end=None)


def stepwise_runs(value_at: Callable[[int], Any], *, first_step: int, num_steps: int,
                  max_value: Any, initial: Any) -> tuple[Run, ...]:
    """The runs of any schedule, evaluated at each of ``num_steps`` steps (sticky at max).

    If the maximum is not reached within the steps, the last run stops at
    ``first_step + num_steps``.
    """
    first_step = _validation.integer("first_step", first_step, minimum=0)
    num_steps = _validation.integer("num_steps", num_steps, minimum=1)
    return _sticky(range(first_step, first_step + num_steps), value_at, initial=initial,
                   max_value=max_value, first_step=first_step, end=first_step + num_steps)


def curriculum_runs(scheduler: CurriculumScheduler, *,
                    first_step: int = CURRICULUM_FIRST_STEP,
                    num_steps: int | None = None) -> tuple[Run, ...]:
    """The runs of a curriculum schedule from its start (``min_difficulty``).

    Args:
      scheduler: the scheduler (its state is not read or changed: the runs are those
        of a fresh scheduler, so a resumed run gets the same buckets).
      first_step: the curriculum step of the first update.
      num_steps: the horizon, required for a ``custom`` schedule (its function is
        evaluated at every step); ignored otherwise.

    Returns:
      The runs; the last one has ``stop=None`` unless a custom schedule stays below
      ``max_difficulty`` within the horizon.

    Raises:
      ValueError: for a custom schedule without ``num_steps`` (or without a function).
    """
    _validation.instance("scheduler", scheduler, CurriculumScheduler)
    cfg = scheduler.config
    kind, value_at = cfg.schedule_type, scheduler.get_difficulty
    bounds = {"max_value": cfg.max_difficulty, "initial": cfg.min_difficulty}
    if kind in ("fixed_linear", "fixed_root"):
        return monotone_runs(value_at, first_step=first_step, **bounds)
    first_step = _validation.integer("first_step", first_step, minimum=0)
    if kind == "fixed_discrete":
        points = [first_step] + [m + 1 for m in cfg.schedule_config.max_step
                                 if m + 1 > first_step]
        return _sticky(points, value_at, first_step=first_step, end=None, **bounds)
    if num_steps is None:
        raise _validation.value_error(
            "num_steps", num_steps, "the number of steps to evaluate a custom schedule over",
            fix=f"{cfg.key_path} has schedule_type 'custom', unknown ahead")
    return stepwise_runs(value_at, first_step=first_step, num_steps=num_steps, **bounds)


def joint_runs(*runs: Sequence[Run]) -> tuple[Run, ...]:
    """Runs of several schedules over the same steps, zipped into runs of tuples.

    The joint runs end where the first bounded input ends.

    Example:
      >>> joint_runs([Run(0, 2, (64,)), Run(2, None, (128,))],
      ...            [Run(0, 1, (8,)), Run(1, None, (16,))])
      (Run(start=0, stop=1, value=(64, 8)), Run(start=1, stop=2, value=(64, 16)), \
Run(start=2, stop=None, value=(128, 16)))
    """
    if not runs or any(not seq for seq in runs):
        raise _validation.value_error("runs", runs, "one or more non-empty run sequences")
    starts = sorted({run.start for seq in runs for run in seq})
    stops = [seq[-1].stop for seq in runs if seq[-1].stop is not None]
    end = min(stops) if stops else None
    out: list[Run] = []
    for point in starts:
        if end is not None and point >= end:
            break
        value = tuple(v for seq in runs for v in _value_at(seq, point))
        if out and out[-1].value == value:
            continue
        if out:
            out[-1] = out[-1]._replace(stop=point)
        out.append(Run(point, None, value))
    out[-1] = out[-1]._replace(stop=end)
    return tuple(out)


def _value_at(runs: Sequence[Run], step: int) -> Shape:
    """The value of the run holding ``step`` (the first run's before its start)."""
    for run in reversed(runs):
        if run.start <= step:
            return run.value
    return runs[0].value
