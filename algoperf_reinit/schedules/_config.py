"""The rules that turn a budget, a peak and a warmup fraction into cycles.

:class:`ScheduleConfig` is the frozen, validated form of the seed design's
``schedule_params``: how the budget is split into cycles and how each cycle is
altered. ``_plan`` applies it on the host (float64): :func:`plan_cycles` gives the
cycles and :func:`build_cycle_table` the :class:`CycleTable`.

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

Cycle ``i`` then gets (``peak`` and ``warmup_fraction`` are the base values: the
``learning_rate`` and ``warmup_factor`` hyperparameters when the table is built by
``jax_lr_schedule``):

* ``peak_i = (peak + alter_lr[i]) * lr_scales[i] * cycle_decay ** i``
* warmup fraction ``f_i = (warmup_fraction + alter_warmup[i]) * warmup_scales[i]``,
  in ``[0, 1)``
* warmup length ``int(f_i * length_i)`` on the steps clock (as in the seed),
  ``f_i * length_i`` on the seconds clock; 0 when its warmup shape is ``none``.
* ``init_value[i]`` (absolute) and ``end_value[i]`` (absolute) or, when
  ``end_factor`` is set, ``end_factor * peak_i`` (optax's ``alpha``).

Per-cycle fields take a scalar (same for every cycle) or a sequence with one entry
per cycle; all sequences must have the same length.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.schedules import _shapes
from algoperf_reinit.schedules._table import check_clock

__all__ = ["ScheduleConfig"]

# How each per-cycle field checks one value (a scalar, or one entry of a sequence).
_PER_CYCLE: Mapping[str, Callable[[str, Any], Any]] = types.MappingProxyType({
    "warmup_shapes": lambda field, value: _shapes.warmup_shape(value, field),
    "decay_shapes": lambda field, value: _shapes.decay_shape(value, field),
    "alter_lr": _validation.real,
    "alter_warmup": _validation.real,
    "lr_scales": _validation.non_negative,
    "warmup_scales": _validation.non_negative,
    "init_value": _validation.non_negative,
    "end_value": _validation.non_negative,
})

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



def _as_tuple(value: Any) -> tuple | None:
    """``value`` as a tuple if it is a sequence (not a string), else ``None``."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        return None
    return tuple(value)


def _per_cycle(name: str, value: Any, counts: dict[str, int]) -> Any:
    """A per-cycle field checked: a scalar, or a tuple (its length noted in ``counts``)."""
    check = _PER_CYCLE[name]
    seq = _as_tuple(value)
    if seq is None:
        return check(name, value)
    if not seq:
        raise _validation.value_error(name, value, "a scalar or a non-empty sequence")
    counts[name] = len(seq)
    return tuple(check(f"{name}[{i}]", v) for i, v in enumerate(seq))


def _lengths(name: str, value: Any, counts: dict[str, int]) -> tuple[float, ...]:
    """``cycle_lengths`` or ``cycle_fractions``: a non-empty tuple of numbers > 0."""
    seq = _as_tuple(value)
    if seq is None:
        raise _validation.type_error(name, value, "a non-empty sequence of numbers or None")
    if not seq:
        raise _validation.value_error(name, value, "a non-empty sequence of numbers or None")
    counts[name] = len(seq)
    return tuple(_validation.positive(f"{name}[{i}]", v) for i, v in enumerate(seq))


def _agreed_count(counts: dict[str, int]) -> int:
    """The number of cycles all per-cycle settings agree on (1 when none says)."""
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise ValueError(
            f"per-cycle settings disagree on the number of cycles ({detail}); give every "
            "sequence one entry per cycle, or a scalar to use for all cycles"
        )
    return next(iter(counts.values()), 1)


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
      end_factor: if set, each cycle ends at ``end_factor * peak_i`` instead
        (mutually exclusive with a non-zero ``end_value``).
      clock: ``"steps"``, ``"seconds"`` (the budget is then seconds of time) or
        ``"layer_tokens"`` (layer tokens, random-LTD's clock).

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
        check_clock(self.clock)
        counts: dict[str, int] = {}
        for name in _PER_CYCLE:
            set_(name, _per_cycle(name, getattr(self, name), counts))
        for name in ("cycle_lengths", "cycle_fractions"):
            if getattr(self, name) is not None:
                set_(name, _lengths(name, getattr(self, name), counts))
        if self.cycle_lengths is not None and self.cycle_fractions is not None:
            raise ValueError("give cycle_lengths or cycle_fractions, not both")
        if self.cycle_fractions is not None and abs(sum(self.cycle_fractions) - 1.0) > 1e-6:
            raise ValueError(
                f"cycle_fractions must sum to 1, got {self.cycle_fractions!r} "
                f"(sum {sum(self.cycle_fractions)!r})"
            )
        if self.num_cycles is not None:
            counts["num_cycles"] = _validation.integer("num_cycles", self.num_cycles, minimum=1)
        set_("num_cycles", _agreed_count(counts))
        for name in ("cycle_mul", "cycle_decay"):
            set_(name, _validation.positive(name, getattr(self, name)))
        set_("cycle_limit", _validation.optional(
            _validation.integer, "cycle_limit", self.cycle_limit, minimum=1,
            fix="or None for no limit"))
        set_("end_factor",
             _validation.optional(_validation.unit_interval, "end_factor", self.end_factor))
        ends = self.end_value if isinstance(self.end_value, tuple) else (self.end_value,)
        if self.end_factor is not None and any(v != 0.0 for v in ends):
            raise _validation.value_error(
                "end_value", self.end_value, "0 (the default) when end_factor is set",
                fix=f"end_factor={self.end_factor!r} and end_value are mutually exclusive: "
                    "give one of them")

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
          ValueError: for an unknown key (named in the message, with the valid keys
            and the closest one), or two keys that mean the same field.
          TypeError: if ``params`` is not a mapping, or a key is not a string.
        """
        if not isinstance(params, Mapping):
            raise _validation.type_error("schedule_params", params, "a mapping")
        fields = {f.name for f in dataclasses.fields(cls)}
        valid = sorted(fields | set(_SEED_ALIASES) | set(_SEED_IGNORED))
        kwargs: dict[str, Any] = {}
        source: dict[str, str] = {}
        for key, value in params.items():
            if _validation.choice("schedule_params key", key, valid) in _SEED_IGNORED:
                continue
            name = _SEED_ALIASES.get(key, key)
            if name in kwargs:
                raise ValueError(
                    f"schedule_params keys {source[name]!r} and {key!r} both set {name!r}; "
                    "give only one"
                )
            kwargs[name] = value
            source[name] = key
            if name in _PER_CYCLE and _as_tuple(value) == ():
                # Named as the user gave it (the seed's key), not as our field.
                fix = None if key == name else f"{key} sets ScheduleConfig.{name}"
                raise _validation.value_error(key, value, "a scalar or a non-empty sequence",
                                              fix=fix)
        return cls(**kwargs)
