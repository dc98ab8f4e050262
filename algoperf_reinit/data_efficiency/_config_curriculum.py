"""The ``curriculum_learning`` block: THE switch of the curriculum sampler.

:class:`CurriculumLearningConfig` mirrors
``data_efficiency.data_sampling.curriculum_learning`` (``enabled``,
``data_cluster_path``, ``curriculum_metrics``) with DeepSpeed's rules: only its own
``enabled`` acts; disabled, its other keys are dropped (neither validated nor kept);
enabled, ``curriculum_metrics`` is required (DeepSpeed asserts it at parse). Each metric
is a :class:`CurriculumMetricConfig` (``_config_metric``), kept in config order (the
sampler's cluster names follow it).

Ours in addition: at least one metric; each with ``difficulty_type`` and
``clustering_type`` (DeepSpeed: ``KeyError`` when its sampler is built);
``data_cluster_path`` required unless every metric is ``single_cluster`` (then no
cluster restricts the data and the sampler needs no files; DeepSpeed still requires the
path).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_common import (
    CURRICULUM_LEARNING_PATH,
    MISSING,
    Block,
    FrozenMapping,
    frozen_extra,
    path_or_none,
    set_field,
)
from algoperf_reinit.data_efficiency._config_metric import CurriculumMetricConfig

__all__ = ["CurriculumLearningConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CurriculumLearningConfig:
    """``data_sampling.curriculum_learning``: THE switch of the curriculum sampler.

    Disabled (the default), its other keys are dropped, as DeepSpeed drops them (they
    are not validated either). Enabled, it needs ``curriculum_metrics`` (name ->
    :class:`CurriculumMetricConfig`, in config order) with ``difficulty_type`` and
    ``clustering_type`` set, and ``data_cluster_path`` unless every metric is
    ``single_cluster`` (then no cluster restricts the data and the sampler needs no
    files; DeepSpeed still requires the path).

    Attributes:
      enabled: whether the curriculum sampler is used.
      data_cluster_path: directory of the cluster files (rank 0 writes them).
      curriculum_metrics: the metrics, by name, in config order.
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this block sits in the configuration (for messages).
    """

    enabled: bool = False
    data_cluster_path: str | None = None
    curriculum_metrics: FrozenMapping[CurriculumMetricConfig] = dataclasses.field(
        default_factory=FrozenMapping)
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=CURRICULUM_LEARNING_PATH, compare=False,
                                      repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        set_field(self, "enabled", _validation.boolean(f"{p}.enabled", self.enabled))
        if not self.enabled:
            for name, empty in (("data_cluster_path", None), ("curriculum_metrics",
                                FrozenMapping()), ("extra", FrozenMapping())):
                set_field(self, name, empty)
            return
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))
        set_field(self, "curriculum_metrics", self._metrics())
        set_field(self, "data_cluster_path",
                  path_or_none(f"{p}.data_cluster_path", self.data_cluster_path))
        single = all(m.clustering_type == "single_cluster"
                     for m in self.curriculum_metrics.values())
        if self.data_cluster_path is None and not single:
            raise _validation.value_error(
                f"{p}.data_cluster_path", MISSING,
                "given when a curriculum metric is schedule_based")

    def _metrics(self) -> FrozenMapping[CurriculumMetricConfig]:
        where = f"{self.key_path}.curriculum_metrics"
        metrics = self.curriculum_metrics
        if not isinstance(metrics, Mapping):
            raise _validation.type_error(where, metrics, "a dict of metric name -> config")
        if not metrics:
            raise _validation.value_error(where, dict(metrics), "a non-empty dict of metrics")
        out = []
        for name, metric in metrics.items():
            if not isinstance(name, str):
                raise _validation.type_error(f"{where} key", name, "a metric name (a string)")
            if not name:
                raise _validation.value_error(f"{where} key", name, "a non-empty metric name")
            if isinstance(metric, Mapping):
                metric = CurriculumMetricConfig.from_dict(Block(f"{where}.{name}", metric))
            _validation.instance(f"{where}.{name}", metric, CurriculumMetricConfig)
            for key in ("difficulty_type", "clustering_type"):
                if getattr(metric, key) is None:
                    raise _validation.value_error(
                        f"{where}.{name}.{key}", MISSING,
                        "given when curriculum_learning is enabled")
            out.append((name, metric))
        return FrozenMapping(out)

    @classmethod
    def from_dict(cls, block: Block | None, *, legacy_rounding: bool | None = None
                  ) -> CurriculumLearningConfig:
        """Parse the block (``None``: absent); only its own ``enabled`` switch acts."""
        if block is None:
            return cls()
        enabled = _validation.boolean(block.key("enabled"), block.get("enabled", False))
        if not enabled:
            return cls(key_path=block.path)
        extra = block.extras(("enabled", "data_cluster_path", "curriculum_metrics"), kept=True)
        metrics = Block(block.key("curriculum_metrics"), block.require(
            "curriculum_metrics", "when curriculum_learning is enabled"))
        parsed = {name: CurriculumMetricConfig.from_dict(
                      Block(metrics.key(name), value), legacy_rounding=legacy_rounding)
                  for name, value in metrics.data.items()}
        return cls(enabled=True, data_cluster_path=block.get("data_cluster_path"),
                   curriculum_metrics=parsed, extra=extra, key_path=block.path)

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict: ``{"enabled": False}`` when disabled."""
        if not self.enabled:
            return {"enabled": False}
        out: dict[str, Any] = {"enabled": True}
        if self.data_cluster_path is not None:
            out["data_cluster_path"] = self.data_cluster_path
        out["curriculum_metrics"] = {n: m.to_dict() for n, m in self.curriculum_metrics.items()}
        return {**out, **dict(self.extra)}
