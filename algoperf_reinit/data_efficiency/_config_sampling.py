"""The ``data_sampling`` block and its ``dynamic_batching`` sub-block.

:class:`DataSamplingConfig` holds the sampler's loader settings with DeepSpeed's
defaults (the module constants below) and the ``curriculum_learning`` block
(:class:`CurriculumLearningConfig`). Its own ``enabled`` flag is parsed but, as in
DeepSpeed, never consulted: ``curriculum_learning.enabled`` is the switch. Unknown keys
of ``data_sampling`` are kept (DeepSpeed copies the block through), with a warning.

:class:`DynamicBatchingConfig` (DeepSpeed's newer variable batch size with LR scaling)
is parsed and validated with DeepSpeed's defaults, enabled or not (DeepSpeed parses it
either way); ``enabled: true`` is a ``ValueError``: it is not supported yet, and a
switch that silently did nothing would be worse.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_common import (
    DATA_SAMPLING_PATH,
    MISSING,
    Block,
    FrozenMapping,
    frozen_extra,
    set_field,
    sub_config,
)
from algoperf_reinit.data_efficiency._config_curriculum import CurriculumLearningConfig

__all__ = [
    "DATA_SAMPLING_ENABLED_DEFAULT",
    "DATA_SAMPLING_NUM_EPOCHS_DEFAULT",
    "DATA_SAMPLING_NUM_WORKERS_DEFAULT",
    "DATA_SAMPLING_PIN_MEMORY_DEFAULT",
    "DYNAMIC_BATCHING_ENABLED_DEFAULT",
    "DYNAMIC_BATCHING_LR_SCALING_METHODS",
    "DYNAMIC_BATCHING_LR_SCALING_METHOD_DEFAULT",
    "DYNAMIC_BATCHING_MAX_BATCH_SIZE_DEFAULT",
    "DYNAMIC_BATCHING_MIN_BATCH_SIZE_DEFAULT",
    "DYNAMIC_BATCHING_SEQUENCE_PICKING_ORDERS",
    "DYNAMIC_BATCHING_SEQUENCE_PICKING_ORDER_DEFAULT",
    "DYNAMIC_BATCHING_VERBOSE_DEFAULT",
    "DataSamplingConfig",
    "DynamicBatchingConfig",
]

DATA_SAMPLING_ENABLED_DEFAULT = False
DATA_SAMPLING_NUM_EPOCHS_DEFAULT = 1000
DATA_SAMPLING_NUM_WORKERS_DEFAULT = 0
DATA_SAMPLING_PIN_MEMORY_DEFAULT = False

DYNAMIC_BATCHING_ENABLED_DEFAULT = False
DYNAMIC_BATCHING_LR_SCALING_METHODS = ("linear", "sqrt", "none")
DYNAMIC_BATCHING_LR_SCALING_METHOD_DEFAULT = "linear"
DYNAMIC_BATCHING_MIN_BATCH_SIZE_DEFAULT = 1
DYNAMIC_BATCHING_MAX_BATCH_SIZE_DEFAULT = None
DYNAMIC_BATCHING_SEQUENCE_PICKING_ORDERS = ("random", "seqlen", "dataloader")
DYNAMIC_BATCHING_SEQUENCE_PICKING_ORDER_DEFAULT = "dataloader"
DYNAMIC_BATCHING_VERBOSE_DEFAULT = False

_DYNAMIC_PATH = f"{DATA_SAMPLING_PATH}.dynamic_batching"
_DYNAMIC_KEYS = ("enabled", "lr_scaling_method", "min_batch_size", "max_batch_size",
                 "sequence_picking_order", "max_tokens", "verbose")
_SAMPLING_KEYS = ("enabled", "num_epochs", "num_workers", "pin_memory",
                  "curriculum_learning", "dynamic_batching")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DynamicBatchingConfig:
    """``data_sampling.dynamic_batching``: parsed and validated; enabling it is an error.

    Attributes:
      enabled: must stay false (not supported yet).
      lr_scaling_method: ``linear``, ``sqrt`` or ``none``.
      min_batch_size: int ``>= 1``.
      max_batch_size: int ``>= min_batch_size``, or ``None`` (no bound).
      sequence_picking_order: ``random``, ``seqlen`` or ``dataloader``.
      max_tokens: tokens per batch, int ``>= 1``; required when enabled.
      verbose: log the batches.
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this block sits in the configuration (for messages).
    """

    enabled: bool = DYNAMIC_BATCHING_ENABLED_DEFAULT
    lr_scaling_method: str = DYNAMIC_BATCHING_LR_SCALING_METHOD_DEFAULT
    min_batch_size: int = DYNAMIC_BATCHING_MIN_BATCH_SIZE_DEFAULT
    max_batch_size: int | None = DYNAMIC_BATCHING_MAX_BATCH_SIZE_DEFAULT
    sequence_picking_order: str = DYNAMIC_BATCHING_SEQUENCE_PICKING_ORDER_DEFAULT
    max_tokens: int | None = None
    verbose: bool = DYNAMIC_BATCHING_VERBOSE_DEFAULT
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=_DYNAMIC_PATH, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        for name in ("enabled", "verbose"):
            set_field(self, name, _validation.boolean(f"{p}.{name}", getattr(self, name)))
        _validation.choice(f"{p}.lr_scaling_method", self.lr_scaling_method,
                           DYNAMIC_BATCHING_LR_SCALING_METHODS)
        _validation.choice(f"{p}.sequence_picking_order", self.sequence_picking_order,
                           DYNAMIC_BATCHING_SEQUENCE_PICKING_ORDERS)
        low = _validation.integer(f"{p}.min_batch_size", self.min_batch_size, minimum=1)
        set_field(self, "min_batch_size", low)
        set_field(self, "max_batch_size", _validation.optional(
            _validation.integer, f"{p}.max_batch_size", self.max_batch_size, minimum=low,
            fix="it bounds the batch size from above (>= min_batch_size); null: no bound"))
        set_field(self, "max_tokens", _validation.optional(
            _validation.integer, f"{p}.max_tokens", self.max_tokens, minimum=1))
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))
        if self.enabled:
            if self.max_tokens is None:
                raise _validation.value_error(f"{p}.max_tokens", MISSING,
                                              "given when dynamic batching is enabled")
            raise _validation.value_error(
                f"{p}.enabled", True, "false",
                fix="dynamic batching (variable batch size with LR scaling) is not "
                    "supported yet")

    @classmethod
    def from_dict(cls, block: Block | None) -> DynamicBatchingConfig:
        """Parse the block (``None``: absent, every default)."""
        if block is None:
            return cls()
        extra = block.extras(_DYNAMIC_KEYS, kept=True)
        given = {k: block.data[k] for k in _DYNAMIC_KEYS if k in block}
        return cls(**given, extra=extra, key_path=block.path)

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict, every default written out (``max_tokens`` only if set)."""
        out = {k: getattr(self, k) for k in _DYNAMIC_KEYS}
        if self.max_tokens is None:
            del out["max_tokens"]
        return {**out, **dict(self.extra)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSamplingConfig:
    """``data_efficiency.data_sampling``: the curriculum sampler's settings.

    Attributes:
      enabled: parsed, never consulted (DeepSpeed's behaviour):
        ``curriculum_learning.enabled`` is the switch.
      num_epochs: the sampler yields ``N * num_epochs`` samples, int ``>= 1``.
      num_workers: data-loader workers when the curriculum is on, int ``>= 0``.
      pin_memory: only read by DeepSpeed's dynamic-batching helper.
      curriculum_learning: :class:`CurriculumLearningConfig` (a dict is parsed).
      dynamic_batching: :class:`DynamicBatchingConfig` (a dict is parsed).
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this block sits in the configuration (for messages).
    """

    enabled: bool = DATA_SAMPLING_ENABLED_DEFAULT
    num_epochs: int = DATA_SAMPLING_NUM_EPOCHS_DEFAULT
    num_workers: int = DATA_SAMPLING_NUM_WORKERS_DEFAULT
    pin_memory: bool = DATA_SAMPLING_PIN_MEMORY_DEFAULT
    curriculum_learning: CurriculumLearningConfig = dataclasses.field(
        default_factory=CurriculumLearningConfig)
    dynamic_batching: DynamicBatchingConfig = dataclasses.field(
        default_factory=DynamicBatchingConfig)
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=DATA_SAMPLING_PATH, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        for name in ("enabled", "pin_memory"):
            set_field(self, name, _validation.boolean(f"{p}.{name}", getattr(self, name)))
        set_field(self, "num_epochs",
                  _validation.integer(f"{p}.num_epochs", self.num_epochs, minimum=1))
        set_field(self, "num_workers",
                  _validation.integer(f"{p}.num_workers", self.num_workers, minimum=0))
        set_field(self, "curriculum_learning", sub_config(
            f"{p}.curriculum_learning", self.curriculum_learning, CurriculumLearningConfig))
        set_field(self, "dynamic_batching", sub_config(
            f"{p}.dynamic_batching", self.dynamic_batching, DynamicBatchingConfig))
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))

    @classmethod
    def from_dict(cls, block: Block | None, *, legacy_rounding: bool | None = None
                  ) -> DataSamplingConfig:
        """Parse the block (``None``: absent, every default)."""
        if block is None:
            return cls()
        extra = block.extras(_SAMPLING_KEYS, kept=True)
        given = {k: block.data[k] for k in ("enabled", "num_epochs", "num_workers",
                                            "pin_memory") if k in block}
        return cls(**given, extra=extra, key_path=block.path,
                   curriculum_learning=CurriculumLearningConfig.from_dict(
                       block.sub("curriculum_learning"), legacy_rounding=legacy_rounding),
                   dynamic_batching=DynamicBatchingConfig.from_dict(
                       block.sub("dynamic_batching")))

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict, every default written out."""
        out = {k: getattr(self, k) for k in ("enabled", "num_epochs", "num_workers",
                                             "pin_memory")}
        out["curriculum_learning"] = self.curriculum_learning.to_dict()
        out["dynamic_batching"] = self.dynamic_batching.to_dict()
        return {**out, **dict(self.extra)}
