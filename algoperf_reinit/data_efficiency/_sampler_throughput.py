"""Host throughput of :class:`DeepSpeedDataSampler`: a synthetic index and a timer.

For ``benchmarks/curriculum_sampler.py`` (and anyone sizing a run):

* :func:`synthetic_curriculum_config` writes analyzer index files for ``N`` synthetic
  samples with :class:`DataAnalyzer` (a ``seqlen``-like metric, values 1..2048, and a
  ``rarity``-like one, 100k values) and returns a ``data_efficiency`` dict using one or
  both (``value`` / ``percentile``, ``schedule_based``) or only a ``single_cluster``
  metric.
* :func:`measure_sampler_throughput` iterates a sampler's micro-batches (what the host
  does in training) and reports sample ids per second.

Example:
  >>> import tempfile
  >>> cfg = synthetic_curriculum_config(tempfile.mkdtemp(), 10_000, metrics=("seqlen",))
  >>> sampler = DeepSpeedDataSampler(cfg, 10_000, 32, 0, 1, 8)
  >>> result = measure_sampler_throughput(sampler, min_ids=20_000, min_seconds=0.0)
  >>> result.ids >= 20_000, result.global_batches >= 78
  (True, True)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._analyzer import DataAnalyzer
from algoperf_reinit.data_efficiency._sampler import DeepSpeedDataSampler

__all__ = ["SamplerThroughput", "measure_sampler_throughput", "synthetic_curriculum_config"]

SYNTHETIC_METRICS = ("seqlen", "rarity", "seqlen_truncate")
_MAX_LEN, _RARITY_VALUES = 2048, 100_000


class SamplerThroughput(NamedTuple):
    """What :func:`measure_sampler_throughput` measured."""

    ids: int  # sample ids yielded to this rank
    seconds: float
    ids_per_second: float
    global_batches: int  # drawn during the measurement
    clusters: int  # at the end


def _metric(name: str, root: str, total_step: int) -> dict[str, Any]:
    paths = {"index_to_sample_path": os.path.join(root, name, f"{name}_index_to_sample"),
             "index_to_metric_path": os.path.join(root, name, f"{name}_index_to_metric")}
    if name == "seqlen":
        return {"difficulty_type": "value", "clustering_type": "schedule_based",
                "min_difficulty": 64, "max_difficulty": _MAX_LEN,
                "schedule_type": "fixed_linear", **paths,
                "schedule_config": {"total_curriculum_step": total_step,
                                    "difficulty_step": 8}}
    if name == "rarity":
        paths["index_to_sample_path"] += "_percentile_merged"
        return {"difficulty_type": "percentile", "clustering_type": "schedule_based",
                "min_difficulty": 5, "max_difficulty": 100, "schedule_type": "fixed_root",
                **paths, "schedule_config": {"total_curriculum_step": total_step,
                                             "difficulty_step": 8, "root_degree": 2}}
    return {"difficulty_type": "value", "clustering_type": "single_cluster",
            "min_difficulty": 64, "max_difficulty": _MAX_LEN, "schedule_type": "fixed_linear",
            "schedule_config": {"total_curriculum_step": total_step, "difficulty_step": 8}}


def synthetic_curriculum_config(save_path: str | os.PathLike[str], num_samples: int, *,
                                metrics: Sequence[str] = ("seqlen",),
                                total_curriculum_step: int = 10_000, seed: int = 0,
                                ) -> dict[str, Any]:
    """Index files for ``num_samples`` synthetic samples and a config that uses them.

    Args:
      save_path: directory for the analyzer's files and the clusters (``clusters/``).
      num_samples: ``N``.
      metrics: any of ``"seqlen"`` (value, 64 -> 2048, step 8: 249 clusters),
        ``"rarity"`` (percentile 5 -> 100, square root) and ``"seqlen_truncate"``
        (``single_cluster``: one cluster of every id); two clustering metrics take the
        intersection path.
      total_curriculum_step: steps of each schedule.
      seed: of the synthetic metric values.

    Returns:
      A ``data_efficiency`` dict (absolute paths) with the curriculum enabled.
    """
    root = os.fspath(save_path)
    n = _validation.integer("num_samples", num_samples, minimum=1)
    for name in metrics:
        _validation.choice("metrics", name, SYNTHETIC_METRICS)
    rng = np.random.default_rng(seed)
    values = {"seqlen": rng.integers(1, _MAX_LEN + 1, n),
              "rarity": rng.integers(0, _RARITY_VALUES, n)}
    analysed = [m for m in ("seqlen", "rarity") if m in metrics]
    if analysed:
        DataAnalyzer(
            np.arange(n, dtype=np.int64), metric_names=analysed,
            metric_functions=[lambda b, v=values[m]: v[np.asarray(b)] for m in analysed],
            metric_types=["single_value_per_sample"] * len(analysed),
            metric_dtypes=[np.int64] * len(analysed), save_path=root,
            batch_size=65_536).run_map_reduce()
    return {"seed": seed, "data_sampling": {"curriculum_learning": {
        "enabled": True, "data_cluster_path": os.path.join(root, "clusters"),
        "curriculum_metrics": {m: _metric(m, root, total_curriculum_step) for m in metrics}}}}


def measure_sampler_throughput(sampler: DeepSpeedDataSampler, *, min_ids: int = 1_000_000,
                               min_seconds: float = 1.0) -> SamplerThroughput:
    """Iterate ``sampler``'s micro-batches until ``min_ids`` ids and ``min_seconds`` passed.

    The sampler continues from its current state (warm it up first to measure a
    curriculum's later phase). The timer covers everything a training loop's host
    thread does per micro-batch: difficulty updates, new clusters (and their files, when
    this process writes), the draw, reshuffles and the rank's slice.
    """
    steps, ids = sampler.curriculum_step, 0
    start = time.perf_counter()
    for batch in sampler:
        ids += batch.shape[0]
        if ids >= min_ids and time.perf_counter() - start >= min_seconds:
            break
    seconds = time.perf_counter() - start
    return SamplerThroughput(ids, seconds, ids / seconds if seconds > 0 else float("inf"),
                             sampler.curriculum_step - steps,
                             len(sampler.data_cluster_paths))
