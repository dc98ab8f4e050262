"""random-LTD's schedules: the kept length (``random_ltd_schedule``) and the layer-token LR.

Frozen dataclasses with DeepSpeed's key names under ``data_efficiency.data_routing.
random_ltd``:

* :class:`RandomLTDScheduleConfig`: ``random_ltd_schedule.schedule_config``
  (``require_steps``, ``seq_per_step``).
* :class:`RandomLTDSchedule`: ``random_ltd_schedule`` (``min_value``, ``max_value``,
  ``schedule_type``, ``schedule_config``). An unsupported ``schedule_type`` is an
  error here (DeepSpeed: ``RuntimeError`` at the first ``update_seq``).
* :class:`LayerTokenLRScheduleConfig`: ``layer_token_lr_schedule``.
  ``enabled: true`` is accepted and validated (``total_layer_tokens`` required;
  ``warmup_type`` ``linear``; ``warmup_layer_tokens`` default 0): DeepSpeed raises
  ``NotImplementedError``; we implement the schedule on a ``layer_tokens`` clock of
  the cycle tables (``layer_token_lr_table``, ``_layer_tokens``), outside the
  kept-length scheduler, which only counts the tokens. A block without ``enabled`` is an error (DeepSpeed fails with
  ``KeyError('enabled')``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_common import (
    MISSING,
    RANDOM_LTD_PATH,
    Block,
    FrozenMapping,
    frozen_extra,
    optional_int,
    set_field,
    sub_config,
)

__all__ = [
    "LAYER_TOKEN_WARMUP_TYPES",
    "RANDOM_LTD_SCHEDULE_TYPES",
    "LayerTokenLRScheduleConfig",
    "RandomLTDSchedule",
    "RandomLTDScheduleConfig",
]

RANDOM_LTD_SCHEDULE_TYPES = ("fixed_linear",)
LAYER_TOKEN_WARMUP_TYPES = ("linear",)

_SCHEDULE_PATH = f"{RANDOM_LTD_PATH}.random_ltd_schedule"
_LR_PATH = f"{RANDOM_LTD_PATH}.layer_token_lr_schedule"
_LR_KEYS = ("enabled", "total_layer_tokens", "warmup_type", "warmup_layer_tokens")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomLTDScheduleConfig:
    """``random_ltd_schedule.schedule_config`` of the ``fixed_linear`` schedule.

    Attributes:
      require_steps: steps from ``min_value`` to ``max_value``, int ``>= 1``.
      seq_per_step: kept lengths are multiples of it, int ``>= 1``.
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this block sits in the configuration (for messages).
    """

    require_steps: int
    seq_per_step: int
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=f"{_SCHEDULE_PATH}.schedule_config",
                                      compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        for name in ("require_steps", "seq_per_step"):
            set_field(self, name, optional_int(f"{p}.{name}", getattr(self, name)))
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))

    @classmethod
    def from_dict(cls, block: Block) -> RandomLTDScheduleConfig:
        """Parse the dict (unknown keys kept, with a warning)."""
        extra = block.extras(("require_steps", "seq_per_step"), kept=True)
        when = "for random-LTD's fixed_linear schedule"
        return cls(require_steps=block.require("require_steps", when),
                   seq_per_step=block.require("seq_per_step", when),
                   extra=extra, key_path=block.path)

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict."""
        return {"require_steps": self.require_steps, "seq_per_step": self.seq_per_step,
                **dict(self.extra)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomLTDSchedule:
    """``random_ltd.random_ltd_schedule``: the kept (reserved) length over the steps.

    Attributes:
      min_value: kept length at step 0, int ``>= 0``.
      max_value: full length (no dropping), int ``>= max(1, min_value)``.
      schedule_type: ``fixed_linear`` (the only one; checked here, not at the first
        update as DeepSpeed does).
      schedule_config: its :class:`RandomLTDScheduleConfig` (a dict is parsed).
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this block sits in the configuration (for messages).
    """

    min_value: int
    max_value: int
    schedule_config: RandomLTDScheduleConfig
    schedule_type: str = "fixed_linear"
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=_SCHEDULE_PATH, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        low = _validation.integer(f"{p}.min_value", self.min_value, minimum=0)
        high = _validation.integer(f"{p}.max_value", self.max_value, minimum=max(1, low),
                                   fix="max_value is the full length, >= min_value")
        set_field(self, "min_value", low)
        set_field(self, "max_value", high)
        _validation.choice(f"{p}.schedule_type", self.schedule_type,
                           RANDOM_LTD_SCHEDULE_TYPES)
        set_field(self, "schedule_config", sub_config(
            f"{p}.schedule_config", self.schedule_config, RandomLTDScheduleConfig))
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))

    @classmethod
    def from_dict(cls, block: Block) -> RandomLTDSchedule:
        """Parse the dict (unknown keys kept, with a warning)."""
        extra = block.extras(("min_value", "max_value", "schedule_type", "schedule_config"),
                             kept=True)
        when = "for random_ltd_schedule"
        return cls(**{k: block.require(k, when) for k in
                      ("min_value", "max_value", "schedule_type", "schedule_config")},
                   extra=extra, key_path=block.path)

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict."""
        return {"min_value": self.min_value, "max_value": self.max_value,
                "schedule_type": self.schedule_type,
                "schedule_config": self.schedule_config.to_dict(), **dict(self.extra)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerTokenLRScheduleConfig:
    """``random_ltd.layer_token_lr_schedule``: the learning rate by consumed layer tokens.

    Disabled, its other keys are dropped. Enabled: ``total_layer_tokens`` (int
    ``>= 1``) is required; ``warmup_type`` is ``linear``; ``warmup_layer_tokens`` (int
    in ``[0, total_layer_tokens]``) defaults to 0. DeepSpeed names these keys but
    raises ``NotImplementedError``; ``layer_token_lr_table`` builds the schedule.

    Attributes:
      enabled: whether the layer-token LR schedule is used.
      total_layer_tokens: the layer-token budget of the schedule.
      warmup_type: ``linear``.
      warmup_layer_tokens: layer tokens of the warmup.
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this block sits in the configuration (for messages).
    """

    enabled: bool = False
    total_layer_tokens: int | None = None
    warmup_type: str = "linear"
    warmup_layer_tokens: int = 0
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=_LR_PATH, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        set_field(self, "enabled", _validation.boolean(f"{p}.enabled", self.enabled))
        if not self.enabled:
            for name, default in (("total_layer_tokens", None), ("warmup_type", "linear"),
                                  ("warmup_layer_tokens", 0), ("extra", FrozenMapping())):
                set_field(self, name, default)
            return
        if self.total_layer_tokens is None:
            raise _validation.value_error(f"{p}.total_layer_tokens", MISSING,
                                          "given when layer_token_lr_schedule is enabled")
        total = optional_int(f"{p}.total_layer_tokens", self.total_layer_tokens)
        set_field(self, "total_layer_tokens", total)
        _validation.choice(f"{p}.warmup_type", self.warmup_type, LAYER_TOKEN_WARMUP_TYPES)
        set_field(self, "warmup_layer_tokens", _validation.integer(
            f"{p}.warmup_layer_tokens", self.warmup_layer_tokens, minimum=0, maximum=total))
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))

    @classmethod
    def from_dict(cls, block: Block | None) -> LayerTokenLRScheduleConfig:
        """Parse the block (``None``: absent, disabled); it must say ``enabled``."""
        if block is None:
            return cls()
        enabled = block.require("enabled", "when a layer_token_lr_schedule block is given")
        if enabled is not True:
            return cls(enabled=enabled, key_path=block.path)
        extra = block.extras(_LR_KEYS, kept=True)
        given = {k: block.data[k] for k in _LR_KEYS[1:] if k in block}
        return cls(enabled=True, **given, extra=extra, key_path=block.path)

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict: ``{"enabled": False}`` when disabled."""
        if not self.enabled:
            return {"enabled": False}
        return {"enabled": True, "total_layer_tokens": self.total_layer_tokens,
                "warmup_type": self.warmup_type,
                "warmup_layer_tokens": self.warmup_layer_tokens, **dict(self.extra)}
