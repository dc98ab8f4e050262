"""The ``data_routing`` block: random layerwise token dropping (random-LTD).

Frozen dataclasses with DeepSpeed's key names under ``data_efficiency.data_routing``:

* :class:`RandomLTDScheduleConfig`: ``random_ltd_schedule.schedule_config``
  (``require_steps``, ``seq_per_step``).
* :class:`RandomLTDSchedule`: ``random_ltd_schedule`` (``min_value``, ``max_value``,
  ``schedule_type``, ``schedule_config``).
* :class:`LayerTokenLRScheduleConfig`: ``layer_token_lr_schedule``.
* :class:`RandomLTDConfig`: ``random_ltd``, THE switch of random-LTD, with the keys
  DeepSpeed's engine injects (``global_batch_size`` = ``train_batch_size``,
  ``micro_batch_size`` = ``train_micro_batch_size_per_gpu``); given a whole DeepSpeed
  config, :func:`parse_data_efficiency_config` injects them the same way.
* :class:`DataRoutingConfig`: ``data_routing`` (its own ``enabled`` is never consulted).

Checked when the configuration is built, where DeepSpeed checks later or not at all:
an unsupported ``schedule_type`` (DeepSpeed: ``RuntimeError`` at the first
``update_seq``), ``random_ltd_layer_num`` against ``len(random_ltd_layer_id)``
(DeepSpeed: ``ValueError`` when the model is converted), ``model_type`` and
``hidden_state_order`` (DeepSpeed: ``NotImplementedError`` at conversion), layer ids
unique and in ``[0, total_layer_num)`` (DeepSpeed matches them as substrings of module
names, so it accepts anything). ``random_ltd_layer_id``, ``model_mask_name``,
``model_type`` and ``hidden_state_order`` are optional here: the schedule does not need
them (the layer wrapper does, and says so).

``layer_token_lr_schedule.enabled: true`` is accepted and validated
(``total_layer_tokens`` required; ``warmup_type`` ``linear``; ``warmup_layer_tokens``
default 0): DeepSpeed raises ``NotImplementedError``; we implement the schedule as a
learning-rate clock of consumed layer tokens (issue 10), outside the kept-length
scheduler, which only counts the tokens. A ``layer_token_lr_schedule`` block without
``enabled`` is an error (DeepSpeed fails with ``KeyError('enabled')``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_common import (
    DATA_ROUTING_PATH,
    MISSING,
    RANDOM_LTD_PATH,
    Block,
    FrozenMapping,
    frozen_extra,
    int_tuple,
    set_field,
)

__all__ = [
    "LAYER_TOKEN_WARMUP_TYPES",
    "RANDOM_LTD_HIDDEN_STATE_ORDERS",
    "RANDOM_LTD_MODEL_TYPES",
    "RANDOM_LTD_SCHEDULE_TYPES",
    "DataRoutingConfig",
    "LayerTokenLRScheduleConfig",
    "RandomLTDConfig",
    "RandomLTDSchedule",
    "RandomLTDScheduleConfig",
]

RANDOM_LTD_SCHEDULE_TYPES = ("fixed_linear",)
RANDOM_LTD_MODEL_TYPES = ("decoder", "encoder")
RANDOM_LTD_HIDDEN_STATE_ORDERS = ("batch_seq_dim", "seq_batch_dim")
LAYER_TOKEN_WARMUP_TYPES = ("linear",)

_SCHEDULE_PATH = f"{RANDOM_LTD_PATH}.random_ltd_schedule"
_LR_PATH = f"{RANDOM_LTD_PATH}.layer_token_lr_schedule"
_LTD_KEYS = ("enabled", "total_layer_num", "random_ltd_layer_num", "random_ltd_layer_id",
             "model_mask_name", "model_type", "hidden_state_order", "random_ltd_schedule",
             "layer_token_lr_schedule", "global_batch_size", "micro_batch_size")
_LR_KEYS = ("enabled", "total_layer_tokens", "warmup_type", "warmup_layer_tokens")


def _parse(value: Any, cls: type, path: str) -> Any:
    """A sub-block given as a dict (parsed) or as its config object (kept)."""
    if isinstance(value, Mapping):
        return cls.from_dict(Block(path, value))
    return _validation.instance(path, value, cls)


def _count(field: str, value: Any, minimum: int = 1) -> int | None:
    return _validation.optional(_validation.integer, field, value, minimum=minimum)


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
            set_field(self, name, _count(f"{p}.{name}", getattr(self, name)))
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
        set_field(self, "schedule_config", _parse(
            self.schedule_config, RandomLTDScheduleConfig, f"{p}.schedule_config"))
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
    raises ``NotImplementedError``; the schedule itself is built elsewhere (issue 10).

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
        total = _count(f"{p}.total_layer_tokens", self.total_layer_tokens)
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


def _layer_ids(field: str, value: Any, total: int) -> tuple[int, ...]:
    """``random_ltd_layer_id`` sorted (as DeepSpeed sorts it), unique, in range."""
    ids = int_tuple(field, value, minimum=0)
    if len(set(ids)) != len(ids):
        raise _validation.value_error(field, list(value), "a list of distinct layer ids")
    for i, layer in enumerate(ids):
        _validation.integer(f"{field}[{i}]", layer, maximum=total - 1,
                            fix=f"layer ids count from 0 to total_layer_num - 1 = {total - 1}")
    return tuple(sorted(ids))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomLTDConfig:
    """``data_routing.random_ltd``: THE switch of random layerwise token dropping.

    Disabled (the default), its other keys are dropped, as DeepSpeed drops them.
    Enabled, ``total_layer_num``, ``random_ltd_layer_num`` and ``random_ltd_schedule``
    are required.

    Attributes:
      enabled: whether random-LTD is used.
      total_layer_num: layers of the model, int ``>= 1``.
      random_ltd_layer_num: layers that drop tokens, int in ``[0, total_layer_num]``;
        equals ``len(random_ltd_layer_id)`` when the ids are given.
      random_ltd_layer_id: the ids of those layers (0-based), sorted.
      model_mask_name: keyword of the attention mask in the layer call, or ``None``.
      model_type: ``decoder`` or ``encoder``.
      hidden_state_order: ``batch_seq_dim`` or ``seq_batch_dim``.
      random_ltd_schedule: the kept-length :class:`RandomLTDSchedule` (a dict is parsed).
      layer_token_lr_schedule: :class:`LayerTokenLRScheduleConfig` (a dict is parsed).
      global_batch_size: samples per optimizer step (engine-injected from
        ``train_batch_size``); layer tokens are counted with it.
      micro_batch_size: engine-injected from ``train_micro_batch_size_per_gpu``; unused.
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this block sits in the configuration (for messages).
    """

    enabled: bool = False
    total_layer_num: int | None = None
    random_ltd_layer_num: int | None = None
    random_ltd_layer_id: tuple[int, ...] | None = None
    model_mask_name: str | None = None
    model_type: str | None = None
    hidden_state_order: str | None = None
    random_ltd_schedule: RandomLTDSchedule | None = None
    layer_token_lr_schedule: LayerTokenLRScheduleConfig = dataclasses.field(default_factory=LayerTokenLRScheduleConfig)
    global_batch_size: int | None = None
    micro_batch_size: int | None = None
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=RANDOM_LTD_PATH, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        set_field(self, "enabled", _validation.boolean(f"{p}.enabled", self.enabled))
        if not self.enabled:
            for field in dataclasses.fields(self):
                if field.name not in ("enabled", "key_path"):
                    empty = (field.default if field.default_factory is dataclasses.MISSING
                             else field.default_factory())
                    set_field(self, field.name, empty)
            return
        when = "when random_ltd is enabled"
        for name in ("total_layer_num", "random_ltd_layer_num", "random_ltd_schedule"):
            if getattr(self, name) is None:
                raise _validation.value_error(f"{p}.{name}", MISSING, f"given {when}")
        total = _count(f"{p}.total_layer_num", self.total_layer_num)
        set_field(self, "total_layer_num", total)
        set_field(self, "random_ltd_layer_num", _validation.integer(
            f"{p}.random_ltd_layer_num", self.random_ltd_layer_num, minimum=0, maximum=total))
        if self.random_ltd_layer_id is not None:
            ids = _layer_ids(f"{p}.random_ltd_layer_id", self.random_ltd_layer_id, total)
            set_field(self, "random_ltd_layer_id", ids)
            if len(ids) != self.random_ltd_layer_num:
                raise _validation.value_error(
                    f"{p}.random_ltd_layer_num", self.random_ltd_layer_num,
                    f"len(random_ltd_layer_id) = {len(ids)}",
                    fix="list one layer id per random-LTD layer")
        self._check_names()
        set_field(self, "random_ltd_schedule", _parse(
            self.random_ltd_schedule, RandomLTDSchedule, f"{p}.random_ltd_schedule"))
        set_field(self, "layer_token_lr_schedule", _parse(
            self.layer_token_lr_schedule, LayerTokenLRScheduleConfig,
            f"{p}.layer_token_lr_schedule"))
        for name in ("global_batch_size", "micro_batch_size"):
            set_field(self, name, _count(f"{p}.{name}", getattr(self, name)))
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))

    def _check_names(self) -> None:
        p = self.key_path
        if self.model_mask_name is not None and not isinstance(self.model_mask_name, str):
            raise _validation.type_error(f"{p}.model_mask_name", self.model_mask_name,
                                         "a keyword name (a string) or null")
        _validation.optional(_validation.choice, f"{p}.model_type", self.model_type,
                             choices=RANDOM_LTD_MODEL_TYPES)
        _validation.optional(_validation.choice, f"{p}.hidden_state_order",
                             self.hidden_state_order, choices=RANDOM_LTD_HIDDEN_STATE_ORDERS)

    @classmethod
    def from_dict(cls, block: Block | None) -> RandomLTDConfig:
        """Parse the block (``None``: absent); only its own ``enabled`` switch acts."""
        if block is None:
            return cls()
        enabled = _validation.boolean(block.key("enabled"), block.get("enabled", False))
        if not enabled:
            return cls(key_path=block.path)
        extra = block.extras(_LTD_KEYS, kept=True)
        plain = ("total_layer_num", "random_ltd_layer_num", "random_ltd_layer_id",
                 "model_mask_name", "model_type", "hidden_state_order", "global_batch_size",
                 "micro_batch_size")
        given = {k: block.data[k] for k in plain if k in block}
        schedule = block.sub("random_ltd_schedule")
        return cls(enabled=True, **given, extra=extra, key_path=block.path,
                   random_ltd_schedule=None if schedule is None
                   else RandomLTDSchedule.from_dict(schedule),
                   layer_token_lr_schedule=LayerTokenLRScheduleConfig.from_dict(
                       block.sub("layer_token_lr_schedule")))

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict (disabled: DeepSpeed's normalised two-key form)."""
        out: dict[str, Any] = {"enabled": self.enabled}
        if self.enabled:
            for name in _LTD_KEYS[1:]:
                value = getattr(self, name)
                if value is None:
                    continue
                if name == "random_ltd_layer_id":
                    value = list(value)
                elif hasattr(value, "to_dict"):
                    value = value.to_dict()
                out[name] = value
        out["layer_token_lr_schedule"] = self.layer_token_lr_schedule.to_dict()
        return {**out, **dict(self.extra)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataRoutingConfig:
    """``data_efficiency.data_routing``; its ``enabled`` is parsed, never consulted.

    Attributes:
      enabled: parsed only (``random_ltd.enabled`` is the switch, as in DeepSpeed).
      random_ltd: :class:`RandomLTDConfig` (a dict is parsed).
      key_path: where this block sits in the configuration (for messages).
    """

    enabled: bool = False
    random_ltd: RandomLTDConfig = dataclasses.field(default_factory=RandomLTDConfig)
    key_path: str = dataclasses.field(default=DATA_ROUTING_PATH, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        set_field(self, "enabled", _validation.boolean(f"{p}.enabled", self.enabled))
        set_field(self, "random_ltd", _parse(self.random_ltd, RandomLTDConfig,
                                             f"{p}.random_ltd"))

    @classmethod
    def from_dict(cls, block: Block | None) -> DataRoutingConfig:
        """Parse the block; unknown keys are ignored (as DeepSpeed does), with a warning."""
        if block is None:
            return cls()
        block.extras(("enabled", "random_ltd"), kept=False)
        return cls(enabled=block.get("enabled", False), key_path=block.path,
                   random_ltd=RandomLTDConfig.from_dict(block.sub("random_ltd")))

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict."""
        return {"enabled": self.enabled, "random_ltd": self.random_ltd.to_dict()}
