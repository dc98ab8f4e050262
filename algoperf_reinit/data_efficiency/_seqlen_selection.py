"""A sequence-length curriculum per trial, for AlgoPerf's ``data_selection``.

:class:`SeqlenSelection` holds one validated ``data_efficiency`` configuration (parsed
when the submission file is imported, so a bad config fails before any training) and
builds a fresh :class:`SeqlenCurriculum` for each trial (:meth:`SeqlenSelection.start`,
called from ``init_optimizer_state``). :meth:`SeqlenSelection.select` is the body of
``data_selection``: the next batch of the queue, cut to the curriculum's length at
``global_step`` (non-sequence batches pass unchanged, decided from the batch alone).
:meth:`SeqlenSelection.observe` attributes the train step's new compilations to the
length of the batch it just ran on (the jitted function's cache size), and writes the
report (:data:`REPORT_FILE` in the trial directory) when one happened; batches that
passed through are counted apart.

The curriculum's only training state is the step: the difficulty of every fixed
schedule is a pure function of ``global_step`` (``update_difficulty`` only makes it
sticky at the maximum, which a monotone schedule is anyway), and AlgoPerf's harness
checkpoints the step. So a trial resumed from a checkpoint cuts its batches exactly as
the uninterrupted one; only the report's counters (tokens, steps per length) restart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config import (
    DataEfficiencyConfig,
    parse_data_efficiency_config,
)
from algoperf_reinit.data_efficiency._seqlen_curriculum import SeqlenCurriculum

__all__ = ["REPORT_FILE", "SeqlenSelection"]

REPORT_FILE = "seqlen_curriculum.json"
"""The report a :class:`SeqlenSelection` writes into a trial directory."""


class SeqlenSelection:
    """One :class:`SeqlenCurriculum` per trial, from a DeepSpeed ``data_efficiency`` config.

    Args:
      config: what :meth:`SeqlenCurriculum.from_config` takes (a dict, a whole DeepSpeed
        config, a JSON path or a parsed config) with one ``seqlen_truncate`` or
        ``seqlen_reshape`` metric.
      **kwargs: the other arguments of :class:`SeqlenCurriculum` (``unit``, ``buckets``,
        ``max_buckets``, ...).

    Raises:
      TypeError, ValueError: for an invalid configuration or arguments (at construction).

    Example:
      >>> import numpy as np
      >>> selection = SeqlenSelection({"data_sampling": {"curriculum_learning": {
      ...     "enabled": True, "curriculum_metrics": {"seqlen_truncate": {
      ...         "difficulty_type": "value", "clustering_type": "single_cluster",
      ...         "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
      ...         "schedule_config": {"total_curriculum_step": 2, "difficulty_step": 8}}}}}},
      ...     unit="fraction")
      >>> _ = selection.start()
      >>> tokens = np.ones((2, 32), np.int32)
      >>> queue = iter([{"inputs": tokens, "targets": tokens,
      ...                "weights": np.ones((2, 32), np.float32)}] * 3)
      >>> [selection.select(queue, step)["inputs"].shape[1] for step in range(3)]
      [16, 32, 32]
    """

    def __init__(self, config: DataEfficiencyConfig | Mapping[str, Any] | str,
                 **kwargs: Any) -> None:
        if not isinstance(config, DataEfficiencyConfig):
            config = parse_data_efficiency_config(config)
        self._config = config
        self._kwargs = dict(kwargs)
        SeqlenCurriculum.from_config(config, **self._kwargs)  # every check, now
        self._curriculum: SeqlenCurriculum | None = None
        self._run_dir: str | None = None
        self._passed_compilations = 0
        self._cache_size = 0
        self._last_length: int | None = None

    @property
    def config(self) -> DataEfficiencyConfig:
        """The validated configuration."""
        return self._config

    @property
    def curriculum(self) -> SeqlenCurriculum:
        """The current trial's curriculum.

        Raises:
          RuntimeError: before :meth:`start`.
        """
        if self._curriculum is None:
            raise RuntimeError("SeqlenSelection.start() must be called first (in "
                               "init_optimizer_state)")
        return self._curriculum

    def start(self, run_dir: str | os.PathLike[str] | None = None) -> SeqlenCurriculum:
        """A new trial: a fresh curriculum; ``run_dir`` receives :data:`REPORT_FILE`."""
        self._curriculum = SeqlenCurriculum.from_config(self._config, **self._kwargs)
        self._run_dir = None if run_dir is None else os.fspath(run_dir)
        self._passed_compilations = 0
        self._cache_size = 0
        self._last_length: int | None = None
        return self._curriculum

    def select(self, input_queue: Iterator[Any], global_step: int) -> Any:
        """``data_selection``'s body: the queue's next batch at the curriculum's length."""
        curriculum = self.curriculum
        before = curriculum.last_plan
        batch = curriculum(next(input_queue), global_step)
        plan = curriculum.last_plan
        self._last_length = plan.length if plan is not None and plan is not before else None
        return batch

    def observe(self, train_step: Any) -> int:
        """Attribute the growth of ``train_step``'s compile cache to the last batch's shape.

        Args:
          train_step: the jitted train step (anything with JAX's ``_cache_size()``).

        Returns:
          The number of new compilations (the report is rewritten when > 0).
        """
        curriculum = self.curriculum
        size = _validation.integer("train_step._cache_size()", train_step._cache_size(),
                                   minimum=0)
        new = max(size - self._cache_size, 0)
        self._cache_size = size
        if new and self._last_length is not None:
            curriculum.counter.record_compilations((self._last_length,), new)
        elif new:
            self._passed_compilations += new
        if new:
            self.write_report()
        return new

    def summary(self) -> dict[str, Any]:
        """The curriculum's summary plus the compilations of batches that passed through."""
        return {**self.curriculum.summary(),
                "passed_batch_compilations": self._passed_compilations}

    def write_report(self) -> str | None:
        """Write :meth:`summary` to :data:`REPORT_FILE` in the trial directory (if any)."""
        if self._run_dir is None:
            return None
        os.makedirs(self._run_dir, exist_ok=True)
        path = os.path.join(self._run_dir, REPORT_FILE)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.summary(), f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        return path
