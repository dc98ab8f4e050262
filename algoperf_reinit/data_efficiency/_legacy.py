"""The legacy top-level ``curriculum_learning`` block, mapped onto the current machinery.

DeepSpeed <= 0.19.6 accepted a top-level block (beside ``train_batch_size``, not under
``data_efficiency``)::

    "curriculum_learning": {"enabled": true, "curriculum_type": "seqlen",
        "min_difficulty": 8, "max_difficulty": 1024, "schedule_type": "fixed_linear",
        "schedule_config": {"total_curriculum_step": 40000, "difficulty_step": 8}}

and its engine passed ``curriculum_seqlen = scheduler.update_difficulty(global_steps +
1)`` to the model at every training forward, which truncated its inputs to that many
tokens. DeepSpeed 0.19.8 removed it (any presence of the key is a config error, PR
#8566).

We accept it and map it onto the current machinery: a metric named
``seqlen_truncate`` in ``data_efficiency.data_sampling.curriculum_learning`` with
``clustering_type: single_cluster`` (it selects no data: every sample stays eligible)
and ``difficulty_type: value``, the same schedule keys, and ``legacy_rounding=True``
(the block only existed while the schedules had no lower clamp). Its difficulty is the
sequence length to truncate to, as for DeepSpeed's data-efficiency ``seqlen_truncate``
metric; the sequence-length curriculum applies it. The step offsets agree: the legacy
engine used ``global_steps + 1`` and the curriculum sampler's step is 1 for the first
global batch. A ``DeprecationWarning`` says what the block became.

Rules kept from DeepSpeed <= 0.19.6: the block must contain ``enabled`` (DeepSpeed
fails with ``KeyError('enabled')``); disabled, it does nothing. Ours in addition:
``curriculum_type`` must be ``seqlen``, the only type that ever had an effect
(DeepSpeed read any other value and then did nothing with it).
"""

from __future__ import annotations

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_common import (
    CURRICULUM_LEARNING_PATH,
    Block,
)
from algoperf_reinit.data_efficiency._config_metric import (
    CurriculumMetricConfig,
    CurriculumScheduleConfig,
)

__all__ = ["LEGACY_CURRICULUM_KEY", "LEGACY_METRIC_NAME", "legacy_curriculum_metric"]

LEGACY_CURRICULUM_KEY = "curriculum_learning"
"""The top-level key of the legacy block (in a whole DeepSpeed config)."""
LEGACY_METRIC_NAME = "seqlen_truncate"
"""The curriculum metric the legacy block becomes."""

_LEGACY_KEYS = ("enabled", "curriculum_type", "min_difficulty", "max_difficulty",
                "schedule_type", "schedule_config")
_WHEN = "in the legacy top-level curriculum_learning block"


def legacy_curriculum_metric(block: Block, *, legacy_rounding: bool = True
                             ) -> CurriculumMetricConfig | None:
    """The ``seqlen_truncate`` metric the legacy block becomes (``None`` if disabled).

    Warns with a ``DeprecationWarning`` either way.

    Args:
      block: the legacy block, under its top-level key path ``curriculum_learning``.
      legacy_rounding: DeepSpeed <= 0.19.6 rounding for the metric (the default; the
        block only existed in those versions).

    Returns:
      The metric, with ``key_path`` ``curriculum_learning`` (messages name the keys
      where the user wrote them), or ``None`` when ``enabled`` is false.

    Raises:
      ValueError: without ``enabled``, with a ``curriculum_type`` other than ``seqlen``,
        or for any invalid schedule key (as for a data-efficiency metric).
      TypeError: for a value of the wrong kind.

    Example:
      >>> import warnings
      >>> block = Block("curriculum_learning", {"enabled": True, "curriculum_type": "seqlen",
      ...     "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
      ...     "schedule_config": {"total_curriculum_step": 6, "difficulty_step": 8}})
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore")
      ...     metric = legacy_curriculum_metric(block)
      >>> metric.clustering_type, metric.difficulty_type, metric.legacy_rounding
      ('single_cluster', 'value', True)
    """
    enabled = _validation.boolean(block.key("enabled"), block.require(
        "enabled", f"{_WHEN} (DeepSpeed <= 0.19.6 fails with KeyError('enabled'))"))
    if not enabled:
        _validation.warn(
            f"{block.path} (the legacy top-level curriculum block, removed in DeepSpeed "
            "0.19.8) is disabled and ignored; delete it", DeprecationWarning)
        return None
    _validation.choice(block.key("curriculum_type"),
                       block.require("curriculum_type", _WHEN), ("seqlen",))
    extra = block.extras(_LEGACY_KEYS, kept=True)
    schedule = block.sub("schedule_config")
    metric = CurriculumMetricConfig(
        **{k: block.require(k, _WHEN) for k in
           ("min_difficulty", "max_difficulty", "schedule_type")},
        schedule_config=None if schedule is None else CurriculumScheduleConfig.from_dict(schedule),
        difficulty_type="value",
        clustering_type="single_cluster",
        legacy_rounding=legacy_rounding,
        extra=extra,
        key_path=block.path,
    )
    _validation.warn(
        f"{block.path} (the legacy top-level curriculum block of DeepSpeed <= 0.19.6, "
        "removed in 0.19.8) became the curriculum metric "
        f"{CURRICULUM_LEARNING_PATH}.curriculum_metrics.{LEGACY_METRIC_NAME}: "
        "clustering_type 'single_cluster', difficulty_type 'value', the same schedule, "
        f"legacy_rounding={legacy_rounding}; its difficulty is the sequence length to "
        "truncate to (the sequence-length curriculum applies it) at curriculum step "
        "global_steps + 1. Move it there to silence this warning.",
        DeprecationWarning)
    return metric
