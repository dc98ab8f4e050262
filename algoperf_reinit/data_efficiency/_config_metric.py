"""One curriculum metric of ``curriculum_metrics`` and its difficulty schedule.

Two frozen dataclasses with DeepSpeed's key names, under
``data_efficiency.data_sampling.curriculum_learning.curriculum_metrics.<name>``:

* :class:`CurriculumScheduleConfig`: a metric's ``schedule_config``
  (``total_curriculum_step``, ``difficulty_step``, ``root_degree``, ``difficulty``,
  ``max_step``).
* :class:`CurriculumMetricConfig`: the metric (``difficulty_type``,
  ``clustering_type``, the index paths, ``min_difficulty``, ``max_difficulty``,
  ``schedule_type``, ``schedule_config``), plus our ``legacy_rounding`` (DeepSpeed
  <= 0.19.6 rounding, see ``_difficulty``).

Each validates itself on construction (``__post_init__``), so an object built in
Python is checked like one parsed from JSON, and every message names the key path.
DeepSpeed checks the schedule keys only when its ``CurriculumScheduler`` is built and
``difficulty_type``/``clustering_type`` only when its sampler is; we check them when
the configuration is parsed. A metric on its own (what :class:`CurriculumScheduler`
takes) needs only the schedule keys; ``difficulty_type`` and ``clustering_type`` are
required once it is part of an enabled ``curriculum_learning`` block.

Where we are stricter than DeepSpeed (each would pass its parser and fail later, or
silently do something else): ``clustering_type`` must be ``single_cluster`` or
``schedule_based`` (DeepSpeed treats any other string, a typo included, as schedule
based); ``max_step`` must be strictly increasing (DeepSpeed assumes it, unchecked);
``min_difficulty <= max_difficulty``; difficulties are ints; percentile difficulties
lie in ``[0, max_difficulty]`` with ``max_difficulty >= 1``; the index paths a metric
reads are required up front. What DeepSpeed only warns about stays a warning: a
``difficulty_step`` that is not a multiple of 8.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_common import (
    CURRICULUM_METRIC_PATH,
    MISSING,
    Block,
    FrozenMapping,
    frozen_extra,
    int_tuple,
    optional_int,
    path_or_none,
    set_field,
)

__all__ = [
    "CLUSTERING_TYPES",
    "DIFFICULTY_TYPES",
    "SCHEDULE_TYPES",
    "TENSOR_CORE_MULTIPLE",
    "CurriculumMetricConfig",
    "CurriculumScheduleConfig",
]

SCHEDULE_TYPES = ("fixed_linear", "fixed_root", "fixed_discrete", "custom")
DIFFICULTY_TYPES = ("value", "percentile")
CLUSTERING_TYPES = ("single_cluster", "schedule_based")
TENSOR_CORE_MULTIPLE = 8
"""DeepSpeed warns when ``difficulty_step`` is not a multiple of this (Tensor Cores)."""

_SCHEDULE_KEYS = ("total_curriculum_step", "difficulty_step", "root_degree", "difficulty",
                  "max_step")
_METRIC_KEYS = ("index_to_sample_path", "index_to_metric_path", "difficulty_type",
                "clustering_type", "min_difficulty", "max_difficulty", "schedule_type",
                "schedule_config", "legacy_rounding")
# What each schedule type needs in schedule_config (DeepSpeed asserts the same keys).
_REQUIRED_SCHEDULE_KEYS = {
    "fixed_linear": ("total_curriculum_step", "difficulty_step"),
    "fixed_root": ("total_curriculum_step", "difficulty_step", "root_degree"),
    "fixed_discrete": ("difficulty", "max_step"),
    "custom": (),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class CurriculumScheduleConfig:
    """A metric's ``schedule_config``; which keys are needed depends on ``schedule_type``.

    Attributes:
      total_curriculum_step: steps from min to max difficulty (``fixed_linear``,
        ``fixed_root``), ``>= 1``.
      difficulty_step: difficulties are multiples of it (``fixed_linear``,
        ``fixed_root``), ``>= 1``.
      root_degree: the root of ``fixed_root`` (2: square root), a real ``> 0``.
      difficulty: the levels of ``fixed_discrete``.
      max_step: the last step of each level but the final one (``fixed_discrete``),
        strictly increasing.
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this block sits in the configuration (for messages).
    """

    total_curriculum_step: int | None = None
    difficulty_step: int | None = None
    root_degree: float | None = None
    difficulty: tuple[int, ...] | None = None
    max_step: tuple[int, ...] | None = None
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=f"{CURRICULUM_METRIC_PATH}.schedule_config",
                                      compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        set_field(self, "total_curriculum_step", optional_int(
            f"{p}.total_curriculum_step", self.total_curriculum_step, 1))
        set_field(self, "difficulty_step", optional_int(
            f"{p}.difficulty_step", self.difficulty_step, 1))
        if self.root_degree is not None:
            degree = _validation.positive(f"{p}.root_degree", self.root_degree)
            is_int = isinstance(self.root_degree, int)
            set_field(self, "root_degree", int(self.root_degree) if is_int else degree)
        if self.difficulty is not None:
            set_field(self, "difficulty", int_tuple(f"{p}.difficulty", self.difficulty))
        if self.max_step is not None:
            set_field(self, "max_step", int_tuple(f"{p}.max_step", self.max_step,
                                                  minimum=0, increasing=True))
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))

    @classmethod
    def from_dict(cls, block: Block) -> CurriculumScheduleConfig:
        """Parse a ``schedule_config`` dict (unknown keys kept, with a warning)."""
        extra = block.extras(_SCHEDULE_KEYS, kept=True)
        values = {k: block.get(k) for k in _SCHEDULE_KEYS}
        return cls(**values, extra=extra, key_path=block.path)

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict (keys that are not set are left out)."""
        out = {k: getattr(self, k) for k in _SCHEDULE_KEYS if getattr(self, k) is not None}
        for k in ("difficulty", "max_step"):
            if k in out:
                out[k] = list(out[k])
        return {**out, **dict(self.extra)}


def _check_schedule(metric: CurriculumMetricConfig) -> None:
    """The schedule keys ``metric.schedule_type`` needs, and their consistency."""
    p, sched = metric.key_path, metric.schedule_config
    for key in _REQUIRED_SCHEDULE_KEYS[metric.schedule_type]:
        if getattr(sched, key) is None:
            raise _validation.value_error(
                f"{p}.schedule_config.{key}", MISSING,
                f"given for schedule_type {metric.schedule_type!r}")
    if metric.schedule_type == "fixed_discrete":
        levels, steps = sched.difficulty, sched.max_step
        if len(levels) != len(steps) + 1:
            raise _validation.value_error(
                f"{p}.schedule_config.difficulty", list(levels),
                f"a list of len(max_step) + 1 = {len(steps) + 1} levels")
        if metric.difficulty_type == "percentile":
            for i, level in enumerate(levels):
                _validation.integer(f"{p}.schedule_config.difficulty[{i}]", level,
                                    minimum=0, maximum=metric.max_difficulty)
    if metric.schedule_type in ("fixed_linear", "fixed_root"):
        if sched.difficulty_step % TENSOR_CORE_MULTIPLE != 0:
            _validation.warn(
                f"{p}.schedule_config.difficulty_step is {sched.difficulty_step}, not a "
                f"multiple of {TENSOR_CORE_MULTIPLE}: for a sequence-length metric NVIDIA "
                "Tensor Cores need multiples of 8 (FP16) or 16 (INT8); disregard this if "
                "the metric is not a length (DeepSpeed gives the same warning)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CurriculumMetricConfig:
    """One metric of ``curriculum_metrics``: what it selects and how its difficulty grows.

    Attributes:
      min_difficulty: the difficulty at step 0 (percentile: in ``[0, max]``).
      max_difficulty: the final difficulty (percentile: ``>= 1``, usually 100).
      schedule_type: ``fixed_linear``, ``fixed_root``, ``fixed_discrete`` or ``custom``.
      schedule_config: its :class:`CurriculumScheduleConfig` (a dict is parsed);
        required unless ``custom``.
      difficulty_type: ``value`` (metric <= difficulty) or ``percentile``; required in
        an enabled ``curriculum_learning`` block.
      clustering_type: ``schedule_based`` or ``single_cluster`` (no data selection: the
        difficulty only drives post-processing such as sequence-length truncation);
        required in an enabled ``curriculum_learning`` block.
      index_to_sample_path: the analyzer's ``index_to_sample`` file (required for
        ``schedule_based``; ``percentile`` may use ``..._percentile_merged``).
      index_to_metric_path: the analyzer's ``index_to_metric`` file (required for a
        ``schedule_based`` ``value`` metric).
      legacy_rounding: DeepSpeed <= 0.19.6 rounding (no lower clamp); ours, not a
        DeepSpeed key (written by :meth:`to_dict` only when true).
      extra: unknown keys, kept as DeepSpeed keeps them.
      key_path: where this metric sits in the configuration (for messages).

    Example:
      >>> m = CurriculumMetricConfig(min_difficulty=16, max_difficulty=64,
      ...     schedule_type="fixed_linear",
      ...     schedule_config={"total_curriculum_step": 10, "difficulty_step": 8})
      >>> m.schedule_config.difficulty_step
      8
    """

    min_difficulty: int
    max_difficulty: int
    schedule_type: str
    schedule_config: CurriculumScheduleConfig | None = None
    difficulty_type: str | None = None
    clustering_type: str | None = None
    index_to_sample_path: str | None = None
    index_to_metric_path: str | None = None
    legacy_rounding: bool = False
    extra: FrozenMapping[Any] = dataclasses.field(default_factory=FrozenMapping)
    key_path: str = dataclasses.field(default=CURRICULUM_METRIC_PATH, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.key_path
        lo = _validation.integer(f"{p}.min_difficulty", self.min_difficulty)
        hi = _validation.integer(f"{p}.max_difficulty", self.max_difficulty)
        set_field(self, "min_difficulty", lo)
        set_field(self, "max_difficulty", hi)
        _validation.choice(f"{p}.schedule_type", self.schedule_type, SCHEDULE_TYPES)
        for name, choices in (("difficulty_type", DIFFICULTY_TYPES),
                              ("clustering_type", CLUSTERING_TYPES)):
            _validation.optional(_validation.choice, f"{p}.{name}", getattr(self, name),
                                 choices=choices)
        for name in ("index_to_sample_path", "index_to_metric_path"):
            set_field(self, name, path_or_none(f"{p}.{name}", getattr(self, name)))
        set_field(self, "legacy_rounding",
                  _validation.boolean(f"{p}.legacy_rounding", self.legacy_rounding))
        set_field(self, "extra", frozen_extra(f"{p}.extra", self.extra))
        if lo > hi:
            raise _validation.value_error(f"{p}.min_difficulty", lo,
                                          f"<= max_difficulty = {hi}")
        if self.difficulty_type == "percentile":
            _validation.integer(f"{p}.max_difficulty", hi, minimum=1,
                                fix="percentiles are 0..max_difficulty (usually 100)")
            _validation.integer(f"{p}.min_difficulty", lo, minimum=0)
        self._check_paths()
        self._normalise_schedule_config()
        _check_schedule(self)

    def _check_paths(self) -> None:
        if self.clustering_type != "schedule_based":
            return
        needed = ["index_to_sample_path"]
        if self.difficulty_type == "value":
            needed.append("index_to_metric_path")
        kind = "" if self.difficulty_type is None else f" {self.difficulty_type!r}"
        for name in needed:
            if getattr(self, name) is None:
                raise _validation.value_error(f"{self.key_path}.{name}", MISSING,
                                              f"given for a schedule_based{kind} metric")

    def _normalise_schedule_config(self) -> None:
        sched, where = self.schedule_config, f"{self.key_path}.schedule_config"
        if isinstance(sched, Mapping):
            sched = CurriculumScheduleConfig.from_dict(Block(where, sched))
        elif sched is None:
            if self.schedule_type != "custom":
                raise _validation.value_error(where, MISSING,
                                              f"given for schedule_type {self.schedule_type!r}")
            sched = CurriculumScheduleConfig(key_path=where)
        elif not isinstance(sched, CurriculumScheduleConfig):
            raise _validation.type_error(where, sched, "a dict or a CurriculumScheduleConfig")
        set_field(self, "schedule_config", sched)

    @classmethod
    def from_dict(cls, block: Block, *, legacy_rounding: bool | None = None
                  ) -> CurriculumMetricConfig:
        """Parse one metric's dict; ``legacy_rounding`` (if not ``None``) overrides its key."""
        extra = block.extras(_METRIC_KEYS, kept=True)
        when = "for every curriculum metric"
        values = {k: block.require(k, when) for k in
                  ("min_difficulty", "max_difficulty", "schedule_type")}
        optional = {k: block.get(k) for k in ("difficulty_type", "clustering_type",
                                              "index_to_sample_path", "index_to_metric_path")}
        sched = block.sub("schedule_config")
        if legacy_rounding is None:
            legacy_rounding = block.get("legacy_rounding", False)
        if sched is not None:
            sched = CurriculumScheduleConfig.from_dict(sched)
        return cls(**values, **optional, schedule_config=sched, legacy_rounding=legacy_rounding,
                   extra=extra, key_path=block.path)

    def to_dict(self) -> dict[str, Any]:
        """The DeepSpeed dict of this metric (keys that are not set are left out)."""
        out: dict[str, Any] = {}
        for k in ("index_to_sample_path", "index_to_metric_path", "difficulty_type",
                  "clustering_type", "min_difficulty", "max_difficulty", "schedule_type"):
            value = getattr(self, k)
            if value is not None:
                out[k] = value
        sched = self.schedule_config.to_dict()
        if self.schedule_type != "custom" or sched:
            out["schedule_config"] = sched
        if self.legacy_rounding:
            out["legacy_rounding"] = True
        return {**out, **dict(self.extra)}
