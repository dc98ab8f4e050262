"""Rules that turn a budget, a peak and a warmup fraction into cycles.

:class:`ScheduleConfig` is the frozen, validated form of the seed design's
``schedule_params``: how the budget is split into cycles and how each cycle is
altered. :func:`plan_cycles` applies it on the host (float64) and
:func:`build_cycle_table` turns the plan into a :class:`CycleTable`.

How a budget ``B`` is split (first rule that applies):

1. ``cycle_lengths``: explicit lengths in clock units; they may sum to less than
   ``B`` (the value then stays at the last end value) but not to more.
2. ``cycle_fractions``: fractions of ``B`` that sum to 1 (an asymmetric short first
   cycle is ``(0.1, 0.45, 0.45)``).
3. ``num_cycles`` cycles whose lengths grow geometrically by ``cycle_mul`` (as in
   timm) and together fill ``B``; ``cycle_mul=1`` gives equal cycles.

On the ``steps`` clock the boundaries are whole steps: boundary ``k`` is
``floor(sum of the first k lengths)``, so equal cycles split ``B`` as evenly as
integers allow. ``cycle_limit`` then keeps only the first ``cycle_limit`` cycles.

Cycle ``i`` then gets (``lr`` and ``wf`` are the base peak and warmup fraction):

* ``peak_i = (lr + alter_lr[i]) * lr_scales[i] * cycle_decay ** i``
* warmup fraction ``f_i = (wf + alter_warmup[i]) * warmup_scales[i]`` in ``[0, 1)``
* warmup length ``int(f_i * length_i)`` on the steps clock (as in the seed),
  ``f_i * length_i`` on the seconds clock; 0 when its warmup shape is ``none``.
* ``init_value[i]`` (absolute) and ``end_value[i]`` (absolute) or, when
  ``end_factor`` is set, ``end_factor * peak_i`` (optax's ``alpha``).

Per-cycle fields take a scalar (same for every cycle) or a sequence with one entry
per cycle; all sequences must have the same length.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from algoperf_reinit.schedules import _shapes
from algoperf_reinit.schedules._table import CLOCKS, CycleSpec, CycleTable, table_from_cycles

_PER_CYCLE_FIELDS = (
    "warmup_shapes",
    "decay_shapes",
    "alter_lr",
    "alter_warmup",
    "lr_scales",
    "warmup_scales",
    "init_value",
    "end_value",
)

# Keys of the seed design's schedule_params dict: aliases of config fields, and the
# seed's own run-state keys, which this object does not hold (accepted, ignored).
_SEED_ALIASES = {
    "warmup_schedule_fns": "warmup_shapes",
    "decay_schedule_fns": "decay_shapes",
    "alter_lr": "alter_lr",
    "alter_decays": "alter_lr",
    "alter_warmupfactor": "alter_warmup",
    "alter_warmups": "alter_warmup",
}
_SEED_IGNORED = (
    "has_multiple",
    "reinit_steps",
    "reinit_times",
    "num_early_stops",
    "currently_stopping",
    "stop_metric",
    "reset_metric",
)


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{field} must be a number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{field} must not be NaN")
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value!r}")
    return value


def _as_tuple(field: str, value: Any) -> tuple | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        return None
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """How a budget is split into cycles and how each cycle is altered.

    See the module docstring for the exact rules. Every field is validated on
    construction; sequences are stored as tuples and shape names as
    :class:`Warmup`/:class:`Decay` objects.

    Attributes:
      num_cycles: number of cycles; ``None`` means the length of the per-cycle
        sequences given (or of ``cycle_lengths``/``cycle_fractions``), else 1.
      cycle_lengths: explicit cycle lengths in clock units.
      cycle_fractions: cycle lengths as fractions of the budget (sum to 1).
      cycle_mul: each cycle is ``cycle_mul`` times as long as the previous one.
      cycle_decay: the peak of cycle ``i`` is multiplied by ``cycle_decay ** i``.
      cycle_limit: keep at most this many cycles; the rest of the budget stays at
        the last end value.
      warmup_shapes: warmup shape(s): a name, a :class:`Warmup`, the object
        ``warmup_fn`` returns, or one per cycle.
      decay_shapes: decay shape(s), likewise.
      alter_lr: per-cycle additive change of the peak (the seed's ``alter_lr``).
      alter_warmup: per-cycle additive change of the warmup fraction (the seed's
        ``alter_warmupfactor``).
      lr_scales: per-cycle multiplicative scale of the peak.
      warmup_scales: per-cycle multiplicative scale of the warmup fraction.
      init_value: value at the start of each warmup (absolute; scalar or per cycle).
      end_value: value at the end of each decay (absolute; scalar or per cycle).
      end_factor: if set, each cycle ends at ``end_factor * peak_i`` instead.
      clock: ``"steps"`` or ``"seconds"`` (the budget is then seconds of time).

    Example:
      >>> cfg = ScheduleConfig(alter_lr=(0.0, 0.002, -0.001), decay_shapes="cosine")
      >>> cfg.num_cycles
      3
    """

    num_cycles: int | None = None
    cycle_lengths: tuple[float, ...] | None = None
    cycle_fractions: tuple[float, ...] | None = None
    cycle_mul: float = 1.0
    cycle_decay: float = 1.0
    cycle_limit: int | None = None
    warmup_shapes: Any = "linear"
    decay_shapes: Any = "cosine"
    alter_lr: Any = 0.0
    alter_warmup: Any = 0.0
    lr_scales: Any = 1.0
    warmup_scales: Any = 1.0
    init_value: Any = 0.0
    end_value: Any = 0.0
    end_factor: float | None = None
    clock: str = "steps"

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}, got {self.clock!r}")

        lengths: dict[str, int] = {}
        for name in _PER_CYCLE_FIELDS:
            value = getattr(self, name)
            seq = _as_tuple(name, value)
            if seq is not None:
                if not seq:
                    raise ValueError(f"{name} must not be an empty sequence")
                lengths[name] = len(seq)
                convert = self._converter(name)
                set_(name, tuple(convert(f"{name}[{i}]", v) for i, v in enumerate(seq)))
            else:
                set_(name, self._converter(name)(name, value))

        for name in ("cycle_lengths", "cycle_fractions"):
            value = getattr(self, name)
            if value is None:
                continue
            seq = _as_tuple(name, value)
            if not seq:
                raise ValueError(f"{name} must be a non-empty sequence of numbers, got {value!r}")
            seq = tuple(_number(f"{name}[{i}]", v) for i, v in enumerate(seq))
            for i, v in enumerate(seq):
                if v <= 0:
                    raise ValueError(f"{name}[{i}] must be > 0, got {v!r}")
            set_(name, seq)
            lengths[name] = len(seq)
        if self.cycle_lengths is not None and self.cycle_fractions is not None:
            raise ValueError("give cycle_lengths or cycle_fractions, not both")
        if self.cycle_fractions is not None and abs(sum(self.cycle_fractions) - 1.0) > 1e-6:
            raise ValueError(
                f"cycle_fractions must sum to 1, got {self.cycle_fractions!r} "
                f"(sum {sum(self.cycle_fractions)!r})"
            )

        if self.num_cycles is not None:
            n = self.num_cycles
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"num_cycles must be an int >= 1, got {n!r}")
            lengths["num_cycles"] = n
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k}={v}" for k, v in lengths.items())
            raise ValueError(
                f"per-cycle settings disagree on the number of cycles ({detail}); give every "
                "sequence one entry per cycle, or a scalar to use for all cycles"
            )
        set_("num_cycles", next(iter(lengths.values()), 1))

        for name in ("cycle_mul", "cycle_decay"):
            value = _number(name, getattr(self, name))
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
            set_(name, value)
        if self.cycle_limit is not None:
            limit = self.cycle_limit
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"cycle_limit must be an int >= 1 or None, got {limit!r}")
        if self.end_factor is not None:
            factor = _number("end_factor", self.end_factor)
            if not 0 <= factor <= 1:
                raise ValueError(f"end_factor must be in [0, 1], got {factor!r}")
            set_("end_factor", factor)

    @staticmethod
    def _converter(name: str):
        if name == "warmup_shapes":
            return lambda field, v: _shapes.warmup_shape(v, field)
        if name == "decay_shapes":
            return lambda field, v: _shapes.decay_shape(v, field)

        def number(field, v):
            value = _number(field, v)
            if name in ("lr_scales", "warmup_scales", "init_value", "end_value") and value < 0:
                raise ValueError(f"{field} must be >= 0, got {value!r}")
            return value

        return number

    def per_cycle(self, name: str, i: int) -> Any:
        """Value of per-cycle field ``name`` for cycle ``i``."""
        value = getattr(self, name)
        return value[i] if isinstance(value, tuple) else value

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> ScheduleConfig:
        """Converts the seed design's ``schedule_params`` dict (or any dict of fields).

        Accepted keys: every field of this class; the seed's names
        ``warmup_schedule_fns``, ``decay_schedule_fns``, ``alter_lr``/``alter_decays``
        and ``alter_warmupfactor``/``alter_warmups``; and the seed's run-state keys
        (``has_multiple``, ``reinit_steps``, ``reinit_times``, ``num_early_stops``,
        ``currently_stopping``, ``stop_metric``, ``reset_metric``), which are ignored
        here (that state lives in arrays elsewhere).

        Args:
          params: the dict.

        Returns:
          The validated config.

        Raises:
          ValueError: for an unknown key (named in the message), or two keys that mean
            the same field.
          TypeError: if ``params`` is not a mapping.
        """
        if not isinstance(params, Mapping):
            raise TypeError(f"schedule_params must be a mapping, got {type(params).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        source: dict[str, str] = {}
        for key, value in params.items():
            if key in _SEED_IGNORED:
                continue
            name = _SEED_ALIASES.get(key, key)
            if name not in fields:
                valid = sorted(fields | set(_SEED_ALIASES) | set(_SEED_IGNORED))
                raise ValueError(
                    f"schedule_params has an unknown key {key!r}; valid keys: {', '.join(valid)}"
                )
            if name in kwargs:
                raise ValueError(
                    f"schedule_params keys {source[name]!r} and {key!r} both set {name!r}; "
                    "give only one"
                )
            kwargs[name] = value
            source[name] = key
        return cls(**kwargs)


def _budget(budget: Any, clock: str) -> float:
    value = _number("budget", budget)
    if value <= 0:
        raise ValueError(f"budget must be > 0, got {value!r}")
    if clock == "steps" and value != int(value):
        raise ValueError(f"budget must be a whole number of steps on the 'steps' clock, got {value!r}")
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
      peak: base peak value (``learning_rate``).
      warmup_fraction: base warmup fraction of each cycle (``warmup_factor``).

    Returns:
      The cycles, in order, after ``cycle_limit``.

    Raises:
      ValueError: naming the cycle and field when a cycle breaks a rule.
    """
    peak = _number("learning_rate", peak)
    if peak <= 0:
        raise ValueError(f"learning_rate must be > 0, got {peak!r}")
    warmup_fraction = _number("warmup_factor", warmup_fraction)
    lengths = cycle_lengths(config, budget)
    if config.cycle_limit is not None:
        lengths = lengths[: config.cycle_limit]
    cycles = []
    for i, length in enumerate(lengths):
        cycle_peak = (
            (peak + config.per_cycle("alter_lr", i))
            * config.per_cycle("lr_scales", i)
            * config.cycle_decay**i
        )
        if cycle_peak <= 0:
            raise ValueError(
                f"cycle {i}: peak must be > 0, got {cycle_peak!r} (learning_rate={peak!r}, "
                f"alter_lr={config.per_cycle('alter_lr', i)!r}, "
                f"lr_scales={config.per_cycle('lr_scales', i)!r})"
            )
        fraction = (warmup_fraction + config.per_cycle("alter_warmup", i)) * config.per_cycle(
            "warmup_scales", i
        )
        if not 0 <= fraction < 1:
            raise ValueError(
                f"cycle {i}: warmup fraction must be in [0, 1), got {fraction!r} "
                f"(warmup_factor={warmup_fraction!r}, "
                f"alter_warmup={config.per_cycle('alter_warmup', i)!r})"
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
        cycles.append(
            CycleSpec(
                length=length,
                warmup=warmup,
                peak=cycle_peak,
                init_value=config.per_cycle("init_value", i),
                end_value=end,
                warmup_shape=warmup_shape,
                decay_shape=config.per_cycle("decay_shapes", i),
            )
        )
    return cycles


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
      peak: base peak value (``learning_rate``).
      warmup_fraction: base warmup fraction of each cycle.
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

