"""DeepSpeed's ``data_efficiency`` configuration: parsed once, frozen, validated.

:func:`parse_data_efficiency_config` takes what a DeepSpeed user has — the
``data_efficiency`` block, a whole DeepSpeed config (``{"train_batch_size": ...,
"data_efficiency": {...}}``, possibly with the legacy top-level
``curriculum_learning``), or the path of its JSON file — and returns a
:class:`DataEfficiencyConfig`, a tree of frozen dataclasses with DeepSpeed's key names
and defaults::

    DataEfficiencyConfig            data_efficiency (enabled, seed)
    ├─ DataSamplingConfig           .data_sampling (num_epochs, num_workers, pin_memory)
    │  ├─ CurriculumLearningConfig  .curriculum_learning (enabled, data_cluster_path)
    │  │  └─ CurriculumMetricConfig .curriculum_metrics[<name>] (+ CurriculumScheduleConfig)
    │  └─ DynamicBatchingConfig     .dynamic_batching
    └─ DataRoutingConfig            .data_routing
       └─ RandomLTDConfig           .random_ltd
          ├─ RandomLTDSchedule      .random_ltd_schedule (+ RandomLTDScheduleConfig)
          └─ LayerTokenLRScheduleConfig  .layer_token_lr_schedule

DeepSpeed's rules, kept: only the two leaf switches act
(``data_sampling.curriculum_learning.enabled``, ``data_routing.random_ltd.enabled``;
the parents' ``enabled`` flags are parsed and never consulted); a disabled leaf block
drops its other keys (they are neither validated nor kept: :meth:`to_dict` gives
``{"enabled": false}``); unknown keys are kept where DeepSpeed copies a block through
and ignored where it rebuilds one, with a warning naming the key path and the closest
valid key either way. Given a whole config, ``train_batch_size`` and
``train_micro_batch_size_per_gpu`` are injected into an enabled ``random_ltd`` as
``global_batch_size`` / ``micro_batch_size``, as DeepSpeed's engine does (only when
given: ``train_batch_size`` is not derived from the micro batch, the accumulation steps
and a world size this parser does not know).

Where we differ: the input is never mutated (DeepSpeed's parser inserts empty
sub-dicts); every value is type-checked and every rule DeepSpeed enforces later (when
its scheduler, sampler or model conversion runs), or never, is checked here, with a
``TypeError``/``ValueError`` naming the key path; the legacy top-level block, an error
in DeepSpeed 0.19.8, is accepted and mapped (``_legacy``); ``dynamic_batching.enabled:
true`` is an error (not supported yet).

Example:
  >>> cfg = parse_data_efficiency_config({})
  >>> cfg.seed, cfg.data_sampling.num_epochs, cfg.data_sampling.curriculum_learning.enabled
  (1234, 1000, False)
  >>> parse_data_efficiency_config(cfg.to_dict()) == cfg
  True
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_common import (
    DATA_EFFICIENCY_PATH,
    Block,
    FrozenMapping,
    set_field,
    sub_config,
)
from algoperf_reinit.data_efficiency._config_curriculum import CurriculumLearningConfig
from algoperf_reinit.data_efficiency._config_metric import CurriculumMetricConfig
from algoperf_reinit.data_efficiency._config_routing import DataRoutingConfig, RandomLTDConfig
from algoperf_reinit.data_efficiency._config_sampling import DataSamplingConfig
from algoperf_reinit.data_efficiency._legacy import (
    LEGACY_CURRICULUM_KEY,
    LEGACY_METRIC_NAME,
    legacy_curriculum_metric,
)

__all__ = [
    "DATA_EFFICIENCY_ENABLED_DEFAULT",
    "DATA_EFFICIENCY_SEED_DEFAULT",
    "DataEfficiencyConfig",
    "parse_data_efficiency_config",
]

DATA_EFFICIENCY_ENABLED_DEFAULT = False
DATA_EFFICIENCY_SEED_DEFAULT = 1234

_BLOCK_KEYS = ("enabled", "seed", "data_sampling", "data_routing")
# Keys that mark a whole DeepSpeed config (besides data_efficiency and the legacy block).
_DEEPSPEED_KEYS = frozenset({
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
    "optimizer", "scheduler", "fp16", "bf16", "amp", "zero_optimization",
    "gradient_clipping", "steps_per_print", "wall_clock_breakdown", "dump_state",
    "prescale_gradients", "gradient_predivide_factor", "sparse_gradients",
    "communication_data_type", "activation_checkpointing", "flops_profiler", "tensorboard",
    "wandb", "csv_monitor", "comet", "checkpoint", "aio", "elasticity",
    "compression_training", "autotuning", "pipeline", "zero_allow_untested_optimizer",
    "data_types", "monitor_config", "progressive_layer_drop", "sparse_attention",
})
# Engine-injected random_ltd keys and the top-level keys they come from.
_INJECTED = (("global_batch_size", "train_batch_size"),
             ("micro_batch_size", "train_micro_batch_size_per_gpu"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataEfficiencyConfig:
    """The ``data_efficiency`` block of a DeepSpeed config, validated.

    Attributes:
      enabled: parsed, never consulted (DeepSpeed's behaviour).
      seed: seed of the curriculum sampler's ``numpy`` generator, int ``>= 0``.
      data_sampling: :class:`DataSamplingConfig` (a dict is parsed).
      data_routing: :class:`DataRoutingConfig` (a dict is parsed).
      key_path: where this block sits (for messages).
    """

    enabled: bool = DATA_EFFICIENCY_ENABLED_DEFAULT
    seed: int = DATA_EFFICIENCY_SEED_DEFAULT
    data_sampling: DataSamplingConfig = dataclasses.field(default_factory=DataSamplingConfig)
    data_routing: DataRoutingConfig = dataclasses.field(default_factory=DataRoutingConfig)
    key_path: str = dataclasses.field(default=DATA_EFFICIENCY_PATH, compare=False,
                                      repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        set_field(self, "enabled", _validation.boolean(f"{p}.enabled", self.enabled))
        set_field(self, "seed", _validation.integer(f"{p}.seed", self.seed, minimum=0,
                                                    fix="numpy generators take seeds >= 0"))
        for name, cls in (("data_sampling", DataSamplingConfig),
                          ("data_routing", DataRoutingConfig)):
            set_field(self, name, sub_config(f"{p}.{name}", getattr(self, name), cls))

    @property
    def curriculum_learning(self) -> CurriculumLearningConfig:
        """``data_sampling.curriculum_learning`` (the sampler's switch and metrics)."""
        return self.data_sampling.curriculum_learning

    @property
    def random_ltd(self) -> RandomLTDConfig:
        """``data_routing.random_ltd`` (random-LTD's switch and schedule)."""
        return self.data_routing.random_ltd

    @classmethod
    def from_dict(cls, block: Block, *, legacy_rounding: bool | None = None
                  ) -> DataEfficiencyConfig:
        """Parse the block; unknown keys are ignored (as DeepSpeed does), with a warning.

        ``legacy_rounding`` (if not ``None``) sets every curriculum metric's rounding.
        """
        block.extras(_BLOCK_KEYS, kept=False)
        return cls(**{k: block.data[k] for k in ("enabled", "seed") if k in block},
                   data_sampling=DataSamplingConfig.from_dict(
                       block.sub("data_sampling"), legacy_rounding=legacy_rounding),
                   data_routing=DataRoutingConfig.from_dict(block.sub("data_routing")),
                   key_path=block.path)

    def to_dict(self) -> dict[str, Any]:
        """An equivalent DeepSpeed ``data_efficiency`` dict (JSON-serialisable).

        Parsing it again gives an equal object; ``{"data_efficiency": cfg.to_dict()}``
        is the piece of a whole DeepSpeed config.
        """
        return {"enabled": self.enabled, "seed": self.seed,
                "data_sampling": self.data_sampling.to_dict(),
                "data_routing": self.data_routing.to_dict()}


def _load(config: Any) -> Mapping[str, Any]:
    """The config as a mapping: a path is read as JSON, ``None`` is ``{}``."""
    if config is None:
        return {}
    if isinstance(config, str | os.PathLike):
        path = os.fspath(config)
        with open(path, encoding="utf-8") as handle:
            try:
                config = json.load(handle)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} must be a JSON file, got invalid JSON: {err}") from err
    if not isinstance(config, Mapping):
        raise _validation.type_error(
            "config", config, "a data_efficiency dict, a whole DeepSpeed config dict or "
            "the path of a JSON file")
    return config


def _is_whole_config(config: Mapping[str, Any]) -> bool:
    keys = set(config)
    return bool(keys & (_DEEPSPEED_KEYS | {DATA_EFFICIENCY_PATH, LEGACY_CURRICULUM_KEY}))


def _with_metric(cfg: DataEfficiencyConfig, name: str, metric: CurriculumMetricConfig
                 ) -> DataEfficiencyConfig:
    """``cfg`` with ``metric`` added to (and enabling) ``curriculum_learning``."""
    cl = cfg.curriculum_learning
    if name in cl.curriculum_metrics:
        raise _validation.value_error(
            f"{cl.key_path}.curriculum_metrics.{name}", name,
            f"a name not taken: the legacy block {LEGACY_CURRICULUM_KEY} becomes this metric",
            fix="merge the two sequence-length curricula into one")
    metrics = FrozenMapping({**cl.curriculum_metrics, name: metric})
    new_cl = CurriculumLearningConfig(enabled=True, data_cluster_path=cl.data_cluster_path,
                                      curriculum_metrics=metrics, extra=cl.extra,
                                      key_path=cl.key_path)
    sampling = dataclasses.replace(cfg.data_sampling, curriculum_learning=new_cl)
    return dataclasses.replace(cfg, data_sampling=sampling)


def _inject_batch_sizes(cfg: DataEfficiencyConfig, whole: Mapping[str, Any]
                        ) -> DataEfficiencyConfig:
    """DeepSpeed's engine copies the batch sizes into an enabled ``random_ltd``."""
    ltd = cfg.random_ltd
    if not ltd.enabled:
        return cfg
    updates = {}
    for key, top in _INJECTED:
        if top not in whole:
            continue
        size = _validation.integer(top, whole[top], minimum=1)
        given = getattr(ltd, key)
        if given is None:
            updates[key] = size
        elif given != size:
            raise _validation.value_error(
                f"{ltd.key_path}.{key}", given, f"{top} = {size}",
                fix=f"DeepSpeed's engine overwrites it with {top}; leave it out")
    if not updates:
        return cfg
    routing = dataclasses.replace(cfg.data_routing, random_ltd=dataclasses.replace(ltd, **updates))
    return dataclasses.replace(cfg, data_routing=routing)


def parse_data_efficiency_config(
    config: Mapping[str, Any] | str | os.PathLike | DataEfficiencyConfig | None = None,
    *,
    legacy_rounding: bool | None = None,
) -> DataEfficiencyConfig:
    """Parse DeepSpeed's data-efficiency configuration (never mutating the input).

    Args:
      config: the ``data_efficiency`` block; a whole DeepSpeed config (recognised by a
        ``data_efficiency`` key, the legacy ``curriculum_learning`` key or a DeepSpeed
        top-level key such as ``train_batch_size``); the path of a JSON file holding
        either; an already parsed config; or ``None`` (every default).
      legacy_rounding: the rounding of every curriculum metric: ``True`` is DeepSpeed
        <= 0.19.6 (no lower clamp), ``False`` 0.19.8. ``None`` (default): each metric's
        own ``legacy_rounding`` key (default false), except that a legacy top-level
        ``curriculum_learning`` block implies ``True`` for all.

    Returns:
      The validated :class:`DataEfficiencyConfig`.

    Raises:
      TypeError: for a value of the wrong kind, named by its key path.
      ValueError: for an invalid value, a missing required key or an inconsistency,
        named by its key path, with the rule.

    Warns:
      UserWarning: for an unknown key (with the closest valid one), a
        ``difficulty_step`` that is not a multiple of 8, or ``data_efficiency`` keys
        written at the top level of a whole config.
      DeprecationWarning: for the legacy top-level ``curriculum_learning`` block.
    """
    if isinstance(config, DataEfficiencyConfig):
        if legacy_rounding is None:
            return config
        config = config.to_dict()
    data = _load(config)
    whole = _is_whole_config(data)
    if whole:
        for key in _BLOCK_KEYS:
            if key in data:
                _validation.warn(f"{key} is not read at the top level of a DeepSpeed config "
                                 f"(did you mean {DATA_EFFICIENCY_PATH}.{key}?); ignored")
        has_legacy = LEGACY_CURRICULUM_KEY in data
        block = data.get(DATA_EFFICIENCY_PATH, {})
    else:
        has_legacy, block = False, data
    rounding = True if legacy_rounding is None and has_legacy else legacy_rounding
    cfg = DataEfficiencyConfig.from_dict(Block(DATA_EFFICIENCY_PATH, block),
                                         legacy_rounding=rounding)
    if has_legacy:
        metric = legacy_curriculum_metric(
            Block(LEGACY_CURRICULUM_KEY, data[LEGACY_CURRICULUM_KEY]),
            legacy_rounding=bool(rounding))
        if metric is not None:
            cfg = _with_metric(cfg, LEGACY_METRIC_NAME, metric)
    return _inject_batch_sizes(cfg, data) if whole else cfg
