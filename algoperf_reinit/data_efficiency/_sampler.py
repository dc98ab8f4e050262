"""DeepSpeed's curriculum-learning data sampler (``DeepSpeedDataSampler``), in NumPy.

Given the same configuration, index files, batch sizes and seed,
:class:`DeepSpeedDataSampler` yields DeepSpeed 0.19.8's micro-batches, id for id, and
writes the same cluster files (checked against DeepSpeed's own recorded streams and
files in ``tests/data_efficiency/fixtures``). Per global batch of
``G = micro_batch_size * data_parallel_size * gradient_accumulation_steps`` ids
(spec §3.5), with one ``numpy.random.default_rng(seed)`` (PCG64):

1. ``curriculum_step += 1`` (1 for the first global batch); each metric's
   :class:`CurriculumScheduler` (config order) ``update_difficulty(curriculum_step)``;
2. if a difficulty changed (or on the first batch), a new cluster (a band of one
   metric, :func:`~._selection.band_cluster_ids`, or an intersection of several,
   :class:`~._intersection.Intersection`), shuffled (``rng.shuffle``) and written;
3. ``rng.choice(num_clusters, G, replace=True, p=sizes / sum(sizes))`` and
   ``bincount``: how many ids each cluster gives;
4. each cluster's ids taken sequentially, reshuffled when exhausted
   (:meth:`~._clusters.ClusterStore.take`);
5. ``rng.shuffle(batch)``.

Iteration (spec §3.6) yields consecutive chunks of ``micro_batch_size *
data_parallel_size`` ids of the global batch; rank ``r`` gets
``[round(r*L/dp), round((r+1)*L/dp))`` of a chunk of ``L`` ids, as an int64 NumPy
array (``.tolist()`` gives DeepSpeed's list). The loop runs while ``consumed_samples
<= N * num_epochs``: ``floor(N * num_epochs / (micro * dp)) + 1`` micro-batches per
pass. ``len(sampler)`` is ``N * num_epochs``.

Multi-host without a broadcast: DeepSpeed draws on rank 0 and broadcasts each global
batch. Here every process computes the same global batch from the same seed and takes
its own slice, so no collective is needed: the stream is a deterministic function of
the configuration, the index files, ``N``, the batch sizes, the seed and the options,
which every process must share (and the same NumPy version), while the rank only picks
the slice. Every process reads the index files and holds the clusters in memory; only
the writer (``write_clusters``, by default rank 0) writes cluster files, which are
never read back during a run (they serve DeepSpeed tooling and restores).

Where we differ from DeepSpeed (each also said where it happens):

* arguments are checked with clear errors (DeepSpeed asserts); the curriculum must be
  enabled (DeepSpeed's sampler loops forever without it); ``gradient_accumulation_steps``
  must be ``>= 1`` (DeepSpeed: an endless loop of empty batches);
* a percentile metric with ``N1 < max_difficulty`` (and ``min < max``) is a
  ``ValueError`` at construction; a first global batch with no eligible sample is a
  ``ValueError`` naming the difficulties (DeepSpeed: numpy's ``choice`` fails);
* ``consumed_samples`` counts a micro-batch when it is yielded (DeepSpeed: when the next
  one is requested), so a checkpoint taken between micro-batches resumes with the
  right epoch-end count; the stream itself is unchanged;
* resume (#8405): the sampler's own generator state is saved and restored, and the
  schedulers' difficulties too (``compat_resume_bug=True``: DeepSpeed's restart from the
  seed, schedulers not restored; the process-wide NumPy RNG is never touched); cluster
  files are checked against CRC-32s saved in the state, and when they are missing,
  rewritten after the checkpoint or the generator state is DeepSpeed's, the state is
  rebuilt by replaying the stream from the seed;
* ``set_custom_curriculum_learning_schedule`` rejects unknown metric names (DeepSpeed
  ignores them); a custom percentile difficulty must be an int in ``[0, max]``;
* options off by default, each changing the stream: ``wrap_small_clusters`` (#8520) and
  ``empty_selection_is_empty`` (see :mod:`._intersection`); a global batch that comes back
  short under the default gives one warning (a chunk too short for ``drop_last`` is
  dropped and the next global batch drawn, as in DeepSpeed, which can repeat while
  every eligible cluster is smaller than a chunk);
* every process reads the index files (DeepSpeed: rank 0 only, then a broadcast);
* ``data_cluster_path`` may be ``None`` when every metric is ``single_cluster``.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._clusters import ClusterStore, cluster_name
from algoperf_reinit.data_efficiency._config import (
    DataEfficiencyConfig,
    parse_data_efficiency_config,
)
from algoperf_reinit.data_efficiency._curriculum_scheduler import CurriculumScheduler
from algoperf_reinit.data_efficiency._intersection import Intersection
from algoperf_reinit.data_efficiency._sampler_restore import restore
from algoperf_reinit.data_efficiency._sampler_state import SamplerState, encode_state
from algoperf_reinit.data_efficiency._selection import (
    MetricIndex,
    band_cluster_ids,
    percentile_total,
    resolve,
)

__all__ = ["DeepSpeedDataSampler"]


class DeepSpeedDataSampler:
    """DeepSpeed's curriculum data sampler: micro-batches of sample ids, resumable.

    Args:
      data_efficiency_config: DeepSpeed's ``data_efficiency`` dict (or a whole DeepSpeed
        config, or the path of its JSON file, or a :class:`DataEfficiencyConfig`);
        ``data_sampling.curriculum_learning.enabled`` must be true.
      one_epoch_total_samples: ``N``, the dataset's number of samples (ids ``0..N-1``).
      micro_batch_size: ids per micro-batch and rank.
      data_parallel_rank: this process's rank, in ``[0, data_parallel_size)``.
      data_parallel_size: number of ranks sharing each global batch.
      gradient_accumulation_steps: micro-batches per rank and global batch.
      drop_last: drop a short last chunk of a global batch (DeepSpeed's class default;
        its engine passes ``dataloader_drop_last``, default false).
      base_path: directory that relative index paths and a relative
        ``data_cluster_path`` are resolved against (``None``: the working directory,
        as DeepSpeed does).
      write_clusters: whether this process writes cluster files (``None``: rank 0).
      compat_resume_bug: :meth:`load_state_dict` restarts the generator from the seed,
        as DeepSpeed 0.19.8 does (#8405).
      wrap_small_clusters: a cluster is reshuffled as often as needed to give every
        requested id (fix of #8520; changes the stream where DeepSpeed's is short).
      empty_selection_is_empty: with several clustering metrics, a value metric with no
        value in range selects nothing (DeepSpeed: no constraint).

    Raises:
      TypeError, ValueError: for invalid arguments or configuration, naming them.
      FileNotFoundError: for a missing index file.

    Example:
      >>> cfg = {"data_sampling": {"num_epochs": 1, "curriculum_learning": {
      ...     "enabled": True, "curriculum_metrics": {"seqlen": {
      ...         "difficulty_type": "value", "clustering_type": "single_cluster",
      ...         "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
      ...         "schedule_config": {"total_curriculum_step": 4, "difficulty_step": 8}}}}}}
      >>> sampler = DeepSpeedDataSampler(cfg, 10, 2, 0, 1, 2)
      >>> batches = iter(sampler)
      >>> next(batches).tolist(), sampler.curriculum_step, sampler.current_difficulties
      ([5, 9], 1, {'seqlen': 16})
    """

    def __init__(self, data_efficiency_config: Any, one_epoch_total_samples: int,
                 micro_batch_size: int, data_parallel_rank: int, data_parallel_size: int,
                 gradient_accumulation_steps: int, drop_last: bool = True, *,
                 base_path: str | os.PathLike[str] | None = None,
                 write_clusters: bool | None = None, compat_resume_bug: bool = False,
                 wrap_small_clusters: bool = False,
                 empty_selection_is_empty: bool = False) -> None:
        cfg = parse_data_efficiency_config(data_efficiency_config)
        cl = cfg.curriculum_learning
        if not cl.enabled:
            raise _validation.value_error(
                f"{cl.key_path}.enabled", False, "true for the curriculum sampler",
                fix="without a curriculum use an ordinary sampler (DeepSpeed's would loop "
                    "forever)")
        n = _validation.integer("one_epoch_total_samples", one_epoch_total_samples, minimum=1)
        self._micro = _validation.integer("micro_batch_size", micro_batch_size, minimum=1)
        self._dp = _validation.integer("data_parallel_size", data_parallel_size, minimum=1)
        self._rank = _validation.integer("data_parallel_rank", data_parallel_rank, minimum=0,
                                         maximum=self._dp - 1)
        gas = _validation.integer("gradient_accumulation_steps", gradient_accumulation_steps,
                                  minimum=1)
        self._drop_last = _validation.boolean("drop_last", drop_last)
        self._config: DataEfficiencyConfig = cfg
        self._n = n
        self._global = self._micro * self._dp * gas
        self._total = n * cfg.data_sampling.num_epochs
        self._compat = _validation.boolean("compat_resume_bug", compat_resume_bug)
        self._wrap_all = _validation.boolean("wrap_small_clusters", wrap_small_clusters)
        self._empty_is_empty = _validation.boolean("empty_selection_is_empty",
                                                   empty_selection_is_empty)
        metrics = cl.curriculum_metrics
        self._schedulers = {name: CurriculumScheduler(m) for name, m in metrics.items()}
        self._indexes = {name: MetricIndex(name, m, n, base_path) for name, m in metrics.items()
                         if m.clustering_type != "single_cluster"}
        self._n1 = percentile_total(self._indexes)
        self._intersection = (Intersection(self._indexes, list(metrics), n,
                                           empty_is_empty=self._empty_is_empty)
                              if len(self._indexes) >= 2 else None)
        self._cluster_dir = (None if cl.data_cluster_path is None
                             else resolve(cl.data_cluster_path, base_path))
        writer = (self._rank == 0 if write_clusters is None
                  else _validation.boolean("write_clusters", write_clusters))
        self._write_dir = self._cluster_dir if writer else None
        if self._write_dir is not None:
            os.makedirs(self._write_dir, exist_ok=True)
        self._warned_short = False
        self._reset()

    def _reset(self, *, write: bool = True) -> None:
        """Back to the state of a new sampler (clusters dropped, generator re-seeded).

        Args:
          write: whether new clusters are written (when this process writes).
        """
        self._rng = np.random.default_rng(self._config.seed)
        self._store = ClusterStore(self._n, self._write_dir if write else None,
                                   track_covered=self._intersection is not None)
        if self._intersection is not None:
            self._intersection.reset()
        for sched in self._schedulers.values():
            sched.load_state_dict({"current_difficulty": sched.config.min_difficulty})
        self._step = 0
        self._current: dict[str, int | float] = {}
        self._consumed = 0
        self._batch = np.zeros(0, np.int64)
        self._cursor = 0

    # ---- read-only views -------------------------------------------------------------

    def __len__(self) -> int:
        """``N * num_epochs``, as DeepSpeed (the ids one pass nominally covers)."""
        return self._total

    @property
    def config(self) -> DataEfficiencyConfig:
        """The validated configuration."""
        return self._config

    @property
    def global_batch_size(self) -> int:
        """``micro_batch_size * data_parallel_size * gradient_accumulation_steps``."""
        return self._global

    @property
    def curriculum_step(self) -> int:
        """Global batches drawn so far (the step of the last difficulty update)."""
        return self._step

    @property
    def consumed_samples(self) -> int:
        """Ids yielded so far, summed over all ranks (their chunks)."""
        return self._consumed

    @property
    def current_difficulties(self) -> dict[str, int | float]:
        """Each metric's current difficulty, config order (``{}`` before the first batch).

        This is what a post-processing hook such as ``seqlen_truncate`` reads (DeepSpeed
        passes ``state_dict()['current_difficulties']``).
        """
        return dict(self._current)

    @property
    def curriculum_schedulers(self) -> Mapping[str, CurriculumScheduler]:
        """The per-metric schedulers, config order (read-only mapping)."""
        return types.MappingProxyType(self._schedulers)

    @property
    def data_cluster_paths(self) -> list[str]:
        """The clusters' file names, creation order."""
        return self._store.names

    @property
    def data_cluster_sizes(self) -> list[int]:
        """The clusters' sizes, creation order."""
        return [int(s) for s in self._store.sizes]

    @property
    def data_cluster_current_position(self) -> list[int]:
        """The clusters' cursors, creation order."""
        return self._store.positions

    def cluster_ids(self, index: int) -> np.ndarray:
        """Cluster ``index``'s ids in their current order (what its file holds)."""
        return self._store.ids(index)

    def set_custom_curriculum_learning_schedule(
            self, schedule_func_dict: Mapping[str, Callable[[int], int | float]]) -> None:
        """Install ``custom`` schedules: ``{metric: step -> difficulty}``.

        Each function receives the curriculum step (1 for the first global batch).

        Raises:
          ValueError: for a metric not in the configuration (DeepSpeed ignores it), or
            one whose ``schedule_type`` is not ``custom``.
        """
        for name, fn in schedule_func_dict.items():
            if name not in self._schedulers:
                _validation.choice("set_custom_curriculum_learning_schedule key", name,
                                   list(self._schedulers))
            self._schedulers[name].set_custom_get_difficulty(fn)

    # ---- drawing -------------------------------------------------------------------

    def _update_difficulties(self) -> dict[str, int | float] | None:
        """Step 1 of a global batch: the previous difficulties if one changed, else None."""
        self._step += 1
        changed, previous = False, {}
        for name, sched in self._schedulers.items():
            difficulty = sched.update_difficulty(self._step)
            m = sched.config
            if m.difficulty_type == "percentile" and name in self._indexes:
                _validation.integer(f"{m.key_path} difficulty at curriculum step {self._step}",
                                    difficulty, minimum=0, maximum=m.max_difficulty)
            if name not in self._current or difficulty != self._current[name]:
                changed = True
            first = float("-inf") if m.difficulty_type == "value" else 0
            previous[name] = self._current.get(name, first)
            self._current[name] = difficulty
        return previous if changed else None

    def _new_cluster(self, previous: Mapping[str, int | float]) -> None:
        if self._intersection is not None:
            ids = self._intersection.new_ids(self._current, self._n1, self._store.covered)
        else:
            ids = band_cluster_ids(self._indexes, self._current, previous, num_samples=self._n,
                                   n1=self._n1, has_clusters=len(self._store) > 0)
        if ids is not None and ids.shape[0]:
            self._store.add(cluster_name(self._current), ids, self._rng)

    def get_next_global_batch(self) -> np.ndarray:
        """Draw the next global batch (it becomes the batch iteration yields from).

        Returns:
          A copy of its ids (int64, ``global_batch_size`` of them unless a cluster too
          small for one wrap made it short).

        Raises:
          ValueError: if no sample is eligible yet (no cluster exists).
        """
        previous = self._update_difficulties()
        if previous is not None:
            self._new_cluster(previous)
        if not len(self._store):
            raise _validation.value_error(
                f"eligible samples at curriculum step {self._step} (difficulties "
                f"{self._current})", 0, ">= 1",
                fix="no id of the index files lies within these difficulties; raise "
                    "min_difficulty (DeepSpeed fails inside numpy's choice here)")
        sizes = self._store.sizes
        picks = self._rng.choice(sizes.shape[0], self._global, replace=True,
                                 p=sizes / float(sizes.sum()))
        counts = np.bincount(picks, minlength=sizes.shape[0])
        batch = self._store.take(counts, self._rng, wrap_all=self._wrap_all)
        self._rng.shuffle(batch)
        if batch.shape[0] < self._global and not self._warned_short:
            self._warned_short = True
            _validation.warn(
                f"curriculum global batch {self._step} has {batch.shape[0]} of "
                f"{self._global} ids: a cluster smaller than its share wraps only once, as "
                "in DeepSpeed (issue #8520); wrap_small_clusters=True returns every id")
        self._batch, self._cursor = batch, 0
        return batch.copy()

    def get_start_end_idx(self, batch_len: int | None = None) -> tuple[int, int]:
        """This rank's ``[start, end)`` in a chunk of ``batch_len`` ids (DeepSpeed's rule)."""
        length = self._micro * self._dp if batch_len is None else batch_len
        return (round(self._rank * length / self._dp),
                round((self._rank + 1) * length / self._dp))

    def __iter__(self) -> Iterator[np.ndarray]:
        """This rank's micro-batches until ``consumed_samples`` exceeds ``len(self)``."""
        chunk_size = self._micro * self._dp
        while self._consumed <= self._total:
            if self._cursor >= self._batch.shape[0]:
                self.get_next_global_batch()
            chunk = self._batch[self._cursor:self._cursor + chunk_size]
            self._cursor += chunk.shape[0]
            if chunk.shape[0] == chunk_size or (chunk.shape[0] and not self._drop_last):
                start, end = self.get_start_end_idx(chunk.shape[0])
                self._consumed += chunk.shape[0]
                yield chunk[start:end].copy()

    # ---- checkpoints ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """DeepSpeed's sampler state keys, JSON-serialisable (see :mod:`._sampler_state`)."""
        store = self._store
        return encode_state(SamplerState(
            batch=self._batch[self._cursor:], consumed_samples=self._consumed,
            curriculum_step=self._step, current_difficulties=dict(self._current),
            data_cluster_paths=store.names, data_cluster_current_position=store.positions,
            rng_state=self._rng.bit_generator.state,
            crc32=[store.crc32(c) for c in range(len(store))]))

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (ours, or a DeepSpeed checkpoint's).

        Install custom schedules first: a restore may replay the stream. See
        :func:`~._sampler_restore.restore` for how the clusters come back.

        Raises:
          TypeError, ValueError: for a malformed state or one of another configuration.
          FileNotFoundError: with ``compat_resume_bug`` and a missing cluster file.
        """
        restore(self, state_dict)
