"""The seed design's builders, with clean semantics.

``warmup_fn`` and ``decay_fn`` build one piece each, ``combine_warmup_decay_fn``
joins them into one cycle, and ``jax_lr_schedule`` builds the whole multi-cycle
schedule for a run. All of them read ``learning_rate`` and ``warmup_factor`` from
the hyperparameters (AlgoPerf's namedtuple, a mapping, or any form
``algoperf_reinit._hyperparameters.as_mapping`` reads) and take the seed's
``alter_lr_by`` / ``alter_warmup_by`` adjustments.

Naming: this is the AlgoPerf-facing edge, so values and error messages use the
hyperparameter names (``learning_rate``, ``warmup_factor``). The table builders
underneath call the same values ``peak`` and ``warmup_fraction``
(``build_cycle_table``, ``plan_cycles``, ``CycleSpec``).

Step arithmetic is the seed's: a cycle of ``L`` steps warms up for
``int((warmup_factor + alter_warmup_by) * L)`` steps, and cycles split
``step_hint`` evenly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from algoperf_reinit import _validation
from algoperf_reinit._hyperparameters import hyperparameter
from algoperf_reinit.schedules import _decays, _shapes
from algoperf_reinit.schedules._config import ScheduleConfig
from algoperf_reinit.schedules._plan import HYPERPARAMETER_NAMES, plan
from algoperf_reinit.schedules._shapes import Decay, Warmup
from algoperf_reinit.schedules._table import CycleSpec, CycleTable, table_from_cycles

__all__ = [
    "DecayPiece",
    "LRSchedule",
    "WarmupPiece",
    "combine_warmup_decay_fn",
    "decay_fn",
    "hyperparameter",
    "jax_lr_schedule",
    "warmup_fn",
]


def _step_hint(step_hint: Any) -> int:
    return _validation.integer("step_hint", step_hint, minimum=1, whole_floats=True)


def _peak_and_warmup(step_hint, hyperparameters, alter_lr_by, alter_warmup_by):
    step_hint = _step_hint(step_hint)
    learning_rate = _validation.real("learning_rate", hyperparameter(hyperparameters,
                                                                     "learning_rate"))
    alter_lr_by = _validation.real("alter_lr_by", alter_lr_by)
    peak = _validation.positive("learning_rate + alter_lr_by", learning_rate + alter_lr_by,
                                fix=f"alter_lr_by={alter_lr_by!r}")
    warmup_factor = _validation.real("warmup_factor", hyperparameter(hyperparameters,
                                                                     "warmup_factor"))
    alter_warmup_by = _validation.real("alter_warmup_by", alter_warmup_by)
    fraction = _validation.in_range(
        "warmup_factor + alter_warmup_by", warmup_factor + alter_warmup_by, 0.0, 1.0,
        high_open=True, fix=f"alter_warmup_by={alter_warmup_by!r}")
    return step_hint, peak, int(fraction * step_hint)


@dataclasses.dataclass(frozen=True)
class WarmupPiece:
    """A warmup over ``steps`` steps from ``init_value`` to ``peak``.

    Calling it evaluates the warmup alone (``peak`` from ``steps`` on). Its ``shape``
    makes it usable wherever a warmup shape is expected.
    """

    shape: Warmup
    steps: int
    init_value: float
    peak: float

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        t = jnp.asarray(step, jnp.float32)
        value = _shapes.warmup_value(
            self.shape.shape_id, jnp.clip(t, 0.0, self.steps), jnp.float32(self.steps), jnp.float32(self.init_value),
            jnp.float32(self.peak), jnp.float32(self.shape.power),
        )
        return jnp.where(t < self.steps, value, jnp.float32(self.peak))


@dataclasses.dataclass(frozen=True)
class DecayPiece:
    """A decay over ``steps`` steps from ``peak`` to ``end_value``.

    Calling it evaluates the decay alone, counting steps from its own start (like
    ``optax.cosine_decay_schedule``). Its ``shape`` makes it usable wherever a decay
    shape is expected.
    """

    shape: Decay
    steps: int
    peak: float
    end_value: float

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        t = jnp.asarray(step, jnp.float32)
        params = jnp.asarray(self.shape.params(self.steps, 0.0), jnp.float32)
        return _decays.decay_value(
            self.shape.shape_id, jnp.clip(t, 0.0, self.steps), jnp.float32(self.steps), jnp.float32(0.0),
            jnp.float32(self.peak), jnp.float32(self.end_value), params,
        )


def warmup_fn(
    step_hint: int,
    hyperparameters: Any,
    alter_lr_by: float = 0.0,
    alter_warmup_by: float = 0.0,
    *,
    shape: Warmup | str = "linear",
    init_value: float = 0.0,
) -> WarmupPiece:
    """Builds the warmup piece of a cycle of ``step_hint`` steps.

    Args:
      step_hint: length of the cycle in steps.
      hyperparameters: provides ``learning_rate`` and ``warmup_factor``.
      alter_lr_by: added to ``learning_rate`` to give the peak.
      alter_warmup_by: added to ``warmup_factor``.
      shape: the warmup shape (name or :class:`Warmup`).
      init_value: value at step 0.

    Returns:
      A :class:`WarmupPiece` of ``int((warmup_factor + alter_warmup_by) * step_hint)``
      steps.

    Example:
      >>> piece = warmup_fn(1000, {"learning_rate": 1e-3, "warmup_factor": 0.05})
      >>> piece.steps, round(float(piece(25)), 9)
      (50, 0.0005)
    """
    step_hint, peak, steps = _peak_and_warmup(step_hint, hyperparameters, alter_lr_by,
                                              alter_warmup_by)
    warmup = _shapes.warmup_shape(shape, "shape")
    if warmup.kind == "none":
        steps = 0
    if not 0 <= _validation.real("init_value", init_value) <= peak:
        raise _validation.value_error("init_value", init_value, f"in [0, peak={peak:g}]")
    if warmup.kind == "exponential" and init_value <= 0:
        raise ValueError(f"an exponential warmup needs init_value > 0, got {init_value!r}")
    return WarmupPiece(shape=warmup, steps=steps, init_value=float(init_value), peak=peak)


def decay_fn(
    step_hint: int,
    hyperparameters: Any,
    alter_lr_by: float = 0.0,
    alter_warmup_by: float = 0.0,
    *,
    shape: Decay | str = "cosine",
    end_value: float = 0.0,
) -> DecayPiece:
    """Builds the decay piece of a cycle of ``step_hint`` steps.

    The decay covers the steps the warmup leaves: ``step_hint - warmup_steps``.

    Args:
      step_hint: length of the cycle in steps.
      hyperparameters: provides ``learning_rate`` and ``warmup_factor``.
      alter_lr_by: added to ``learning_rate`` to give the peak.
      alter_warmup_by: added to ``warmup_factor``.
      shape: the decay shape (name or :class:`Decay`).
      end_value: value at the end of the decay.

    Returns:
      A :class:`DecayPiece`.
    """
    step_hint, peak, warmup_steps = _peak_and_warmup(step_hint, hyperparameters, alter_lr_by,
                                                     alter_warmup_by)
    if not 0 <= _validation.real("end_value", end_value) <= peak:
        raise _validation.value_error("end_value", end_value, f"in [0, peak={peak:g}]")
    return DecayPiece(
        shape=_shapes.decay_shape(shape, "shape"),
        steps=step_hint - warmup_steps,
        peak=peak,
        end_value=float(end_value),
    )


def _piece(builder: Any, kind: str, step_hint, hyperparameters, alter_lr_by, alter_warmup_by):
    piece_type, default = (WarmupPiece, warmup_fn) if kind == "warmup" else (DecayPiece, decay_fn)
    if isinstance(builder, piece_type):
        return builder
    if isinstance(builder, str | Warmup | Decay):
        return default(step_hint, hyperparameters, alter_lr_by, alter_warmup_by, shape=builder)
    if callable(builder):
        piece = builder(step_hint, hyperparameters, alter_lr_by, alter_warmup_by)
        if not isinstance(piece, piece_type):
            raise TypeError(
                f"{kind}_fn must return a {piece_type.__name__}, got {type(piece).__name__}"
            )
        return piece
    raise TypeError(
        f"{kind}_fn must be a shape name, a shape, a {piece_type.__name__} or a builder like "
        f"{default.__name__}; got {builder!r}"
    )


def combine_warmup_decay_fn(
    step_hint: int,
    hyperparameters: Any,
    warmup_fn: Callable[..., WarmupPiece] | WarmupPiece | Warmup | str = warmup_fn,
    decay_fn: Callable[..., DecayPiece] | DecayPiece | Decay | str = decay_fn,
    alter_lr_by: float = 0.0,
    alter_warmup_by: float = 0.0,
) -> CycleTable:
    """Joins a warmup and a decay into one cycle of ``step_hint`` steps.

    Args:
      step_hint: length of the cycle in steps.
      hyperparameters: provides ``learning_rate`` and ``warmup_factor``.
      warmup_fn: a builder with :func:`warmup_fn`'s signature, a piece it returned,
        a :class:`Warmup` or a shape name.
      decay_fn: likewise for the decay.
      alter_lr_by: added to ``learning_rate``.
      alter_warmup_by: added to ``warmup_factor``.

    Returns:
      A one-cycle :class:`CycleTable` (callable as a schedule).

    Raises:
      ValueError: if the two pieces disagree on the peak or do not fill
        ``step_hint``.
    """
    args = (step_hint, hyperparameters, alter_lr_by, alter_warmup_by)
    warm = _piece(warmup_fn, "warmup", *args)
    decay = _piece(decay_fn, "decay", *args)
    if abs(warm.peak - decay.peak) > 1e-12 * max(abs(warm.peak), 1.0):
        raise ValueError(
            f"the warmup ends at {warm.peak!r} but the decay starts at {decay.peak!r}; build both "
            "with the same learning_rate and alter_lr_by"
        )
    if warm.steps + decay.steps != _step_hint(step_hint):
        raise ValueError(
            f"warmup ({warm.steps} steps) and decay ({decay.steps} steps) must add up to "
            f"step_hint={step_hint!r}; build both with the same warmup_factor and alter_warmup_by"
        )
    cycle = CycleSpec(
        length=warm.steps + decay.steps,
        warmup=warm.steps,
        peak=warm.peak,
        init_value=warm.init_value,
        end_value=decay.end_value,
        warmup_shape=warm.shape,
        decay_shape=decay.shape,
    )
    return table_from_cycles([cycle])


class LRSchedule(NamedTuple):
    """What :func:`jax_lr_schedule` returns; unpacks as the seed's 3-tuple."""

    schedule: CycleTable
    """The schedule: a cycle table, callable with a step."""
    has_multiple: bool
    """Whether there is more than one cycle."""
    reinit_steps: list[int]
    """Interior cycle boundaries (neither 0 nor the end), as ints."""


def jax_lr_schedule(
    step_hint: int,
    hyperparameters: Any,
    schedule_params: ScheduleConfig | Mapping[str, Any] | None = None,
    *,
    capacity: int | None = None,
) -> LRSchedule:
    """Builds the learning-rate schedule of a whole run.

    Args:
      step_hint: the run's budget in steps (AlgoPerf's ``workload.step_hint``), or
        in seconds when ``schedule_params.clock == "seconds"``.
      hyperparameters: provides ``learning_rate`` (base peak) and ``warmup_factor``
        (base warmup fraction of each cycle).
      schedule_params: a :class:`ScheduleConfig`, the seed's dict form (converted
        with :meth:`ScheduleConfig.from_dict`), or ``None`` for one cycle of linear
        warmup and cosine decay.
      capacity: table rows (padding for later changes); ``None``: the cycle count.

    Returns:
      ``LRSchedule(schedule, has_multiple, reinit_steps)``.

    Raises:
      ValueError: for a missing hyperparameter or a value out of range; messages
        name the hyperparameter (``learning_rate``, ``warmup_factor``) or the cycle.
      TypeError: for a value of the wrong type.

    Example:
      >>> hp = {"learning_rate": 1e-3, "warmup_factor": 0.1}
      >>> schedule, has_multiple, reinit_steps = jax_lr_schedule(
      ...     900, hp, {"alter_lr": [0.0, 0.0005, -0.0005]})
      >>> has_multiple, reinit_steps
      (True, [300, 600])
    """
    if schedule_params is None:
        config = ScheduleConfig()
    elif isinstance(schedule_params, ScheduleConfig):
        config = schedule_params
    else:
        config = ScheduleConfig.from_dict(schedule_params)
    budget = _step_hint(step_hint) if config.clock == "steps" else step_hint
    cycles = plan(config, budget, hyperparameter(hyperparameters, "learning_rate"),
                  hyperparameter(hyperparameters, "warmup_factor"), HYPERPARAMETER_NAMES)
    table = table_from_cycles(cycles, capacity=capacity, clock=config.clock)
    boundaries = table.boundaries()
    interior = boundaries[1:-1]
    reinit_steps = [round(b) for b in interior] if config.clock == "steps" else interior
    return LRSchedule(
        schedule=table, has_multiple=table.num_cycles > 1, reinit_steps=reinit_steps
    )
