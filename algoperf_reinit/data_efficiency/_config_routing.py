"""The ``data_routing`` block and its ``random_ltd`` switch (random layerwise token dropping).

* :class:`RandomLTDConfig`: ``data_efficiency.data_routing.random_ltd``, THE switch of
  random-LTD, with its schedules (``_config_ltd``) and the keys DeepSpeed's engine
  injects (``global_batch_size`` = ``train_batch_size``, ``micro_batch_size`` =
  ``train_micro_batch_size_per_gpu``); given a whole DeepSpeed config,
  :func:`parse_data_efficiency_config` injects them the same way.
* :class:`DataRoutingConfig`: ``data_routing`` (its own ``enabled`` is never consulted;
  unknown keys are ignored, as DeepSpeed ignores them, with a warning).

Checked when the configuration is built, where DeepSpeed checks later or not at all:
``random_ltd_layer_num`` against ``len(random_ltd_layer_id)`` (DeepSpeed: ``ValueError``
when the model is converted), ``model_type`` and ``hidden_state_order`` (DeepSpeed:
``NotImplementedError`` at conversion), layer ids unique and in ``[0,
total_layer_num)`` (DeepSpeed matches them as substrings of module names, so it accepts
anything). ``random_ltd_layer_id``, ``model_mask_name``, ``model_type`` and
``hidden_state_order`` are optional here: the kept-length schedule does not need them
(the layer wrapper does, and says so).
"""

from __future__ import annotations

import dataclasses
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
    optional_int,
    set_field,
    sub_config,
)
from algoperf_reinit.data_efficiency._config_ltd import (
    LayerTokenLRScheduleConfig,
    RandomLTDSchedule,
)

__all__ = [
    "RANDOM_LTD_HIDDEN_STATE_ORDERS",
    "RANDOM_LTD_MODEL_TYPES",
    "DataRoutingConfig",
    "RandomLTDConfig",
]

RANDOM_LTD_MODEL_TYPES = ("decoder", "encoder")
RANDOM_LTD_HIDDEN_STATE_ORDERS = ("batch_seq_dim", "seq_batch_dim")

_LTD_KEYS = ("enabled", "total_layer_num", "random_ltd_layer_num", "random_ltd_layer_id",
             "model_mask_name", "model_type", "hidden_state_order", "random_ltd_schedule",
             "layer_token_lr_schedule", "global_batch_size", "micro_batch_size")


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
    layer_token_lr_schedule: LayerTokenLRScheduleConfig = dataclasses.field(
        default_factory=LayerTokenLRScheduleConfig)
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
        total = optional_int(f"{p}.total_layer_num", self.total_layer_num)
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
        set_field(self, "random_ltd_schedule", sub_config(
            f"{p}.random_ltd_schedule", self.random_ltd_schedule, RandomLTDSchedule))
        set_field(self, "layer_token_lr_schedule", sub_config(
            f"{p}.layer_token_lr_schedule", self.layer_token_lr_schedule,
            LayerTokenLRScheduleConfig))
        for name in ("global_batch_size", "micro_batch_size"):
            set_field(self, name, optional_int(f"{p}.{name}", getattr(self, name)))
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
        set_field(self, "random_ltd", sub_config(f"{p}.random_ltd", self.random_ltd,
                                                 RandomLTDConfig))

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
