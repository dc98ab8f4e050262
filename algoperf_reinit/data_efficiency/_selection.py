"""Which sample ids a curriculum metric admits, and the ids of the next new cluster.

DeepSpeed's curriculum sampler (spec §3.3-3.4) reads two analyzer files per
``schedule_based`` metric: ``index_to_sample`` (row ``j``: the ids whose metric value
is the ``j``-th distinct value, ascending) and, for a ``value`` metric,
``index_to_metric`` (row ``j``: ``[that value]``). :class:`MetricIndex` holds them
(memory-mapped) and selects, between two difficulties ``a`` and ``b``:

* ``value``: the rows whose value ``v`` has ``a < v <= b``, concatenated in row order.
  DeepSpeed scans every row; the analyzer writes the values ascending, so the rows
  form one contiguous band found with two ``searchsorted`` (one zero-copy view of
  ``.bin``). A file whose values are not ascending is scanned with a vectorised mask
  instead, which selects the same rows in the same order.
* ``percentile``: with ``N1`` the number of ids in the first percentile metric's
  ``index_to_sample`` (DeepSpeed computes it once and shares it) and
  ``per = N1 // max_difficulty``, positions ``[per*a, per*b)`` of the concatenated
  rows (``per*b`` is ``N1`` when ``b == max_difficulty``). DeepSpeed walks the rows one
  by one; :meth:`MetricIndex.percentile_band` gives the same slice from the rows'
  cumulative sizes, including DeepSpeed's corner cases (``None`` when no row is reached,
  an empty array when a reached row contributes nothing).

Both return ``None`` where DeepSpeed's loops select no row at all, and an array
otherwise (possibly empty): the distinction matters to the intersection of
several metrics (:mod:`._intersection`).

:func:`band_cluster_ids` builds the ids of the cluster DeepSpeed adds with at most
one ``schedule_based`` metric (before its shuffle, in DeepSpeed's order): the first
attempt starts from every id ``0..N-1``; a clustering metric replaces that by its
*incremental* band between the previous and the current difficulty (``single_cluster``
metrics never restrict). Two or more clustering metrics intersect their *cumulative*
selections (:mod:`._intersection`); for them, a cumulative selection is always a prefix
of the metric's value-sorted ids, and :attr:`MetricIndex.rank` gives each id's position
in that order.

Where we differ from DeepSpeed: the index files are checked when opened (one value per
``index_to_metric`` row, as many rows as ``index_to_sample``, ids in ``[0, N)``), where
DeepSpeed fails later or writes wrapped ids.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_metric import CurriculumMetricConfig
from algoperf_reinit.data_efficiency._index_files import MMapIndexedDataset

__all__ = ["MetricIndex", "band_cluster_ids", "percentile_total", "resolve"]

Difficulty = int | float


def resolve(path: str, base_path: str | os.PathLike[str] | None) -> str:
    """``path`` under ``base_path`` when relative (``None``: the working directory)."""
    if base_path is None or os.path.isabs(path):
        return path
    return os.path.join(os.fspath(base_path), path)


class MetricIndex:
    """One ``schedule_based`` metric's index files, memory-mapped, and its selections.

    Args:
      name: the metric's name (for messages).
      config: its validated configuration (index paths, ``difficulty_type``).
      num_samples: ``N``, the sampler's ``one_epoch_total_samples``; every id in
        ``index_to_sample`` must lie in ``[0, N)``.
      base_path: directory that relative index paths are resolved against
        (``None``: the working directory, as in DeepSpeed).

    Raises:
      FileNotFoundError, ValueError: for a missing or malformed file, naming it.
    """

    def __init__(self, name: str, config: CurriculumMetricConfig, num_samples: int,
                 base_path: str | os.PathLike[str] | None = None) -> None:
        self.name = name
        self.config = config
        self.kind = config.difficulty_type
        where = f"{config.key_path}.index_to_sample_path"
        self._samples = MMapIndexedDataset(resolve(config.index_to_sample_path, base_path))
        self._ids = self._samples.concatenated()
        self._check_ids(where, num_samples)
        self._cum = np.cumsum(np.asarray(self._samples.sizes, np.int64))
        self._values: np.ndarray | None = None
        self._sorted = False
        self._rank: np.ndarray | None = None
        self._num_samples = num_samples
        if self.kind == "value":
            self._values = self._metric_values(base_path)
            self._sorted = bool(np.all(self._values[1:] >= self._values[:-1]))

    def _check_ids(self, where: str, num_samples: int) -> None:
        if not self._ids.size:
            return
        low, high = int(self._ids.min()), int(self._ids.max())
        if low < 0 or high >= num_samples:
            bad = low if low < 0 else high
            raise _validation.value_error(
                f"sample id in {where} ({self._samples.path})", bad,
                f"in [0, one_epoch_total_samples) = [0, {num_samples})",
                fix="the index belongs to another dataset, or one_epoch_total_samples is "
                    "too small")

    def _metric_values(self, base_path: str | os.PathLike[str] | None) -> np.ndarray:
        where = f"{self.config.key_path}.index_to_metric_path"
        metric = MMapIndexedDataset(resolve(self.config.index_to_metric_path, base_path))
        sizes = np.asarray(metric.sizes)
        if len(metric) != len(self._samples):
            raise _validation.value_error(
                f"number of rows of {where} ({metric.path})", len(metric),
                f"the number of rows of index_to_sample ({len(self._samples)})",
                fix="both files must come from the same analysis")
        if sizes.size and not np.all(sizes == 1):
            row = int(np.flatnonzero(sizes != 1)[0])
            raise _validation.value_error(
                f"row {row} of {where} ({metric.path})", int(sizes[row]),
                "1 value long (one row per distinct metric value)")
        return np.asarray(metric.concatenated())

    @property
    def total(self) -> int:
        """The number of ids in ``index_to_sample`` (DeepSpeed's ``N1``)."""
        return int(self._cum[-1]) if self._cum.size else 0

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (exclusive) of ``index_to_sample``, back to back."""
        return self._samples.concatenated(start, stop)

    def value_band(self, start: Difficulty, end: Difficulty) -> np.ndarray | None:
        """Ids of the rows whose value ``v`` has ``start < v <= end``, in row order.

        ``None`` when no row qualifies (DeepSpeed's result too).
        """
        values = self._values
        if self._sorted:
            lo = 0 if start == float("-inf") else int(np.searchsorted(values, start, "right"))
            hi = int(np.searchsorted(values, end, "right"))
            return self._rows(lo, hi) if hi > lo else None
        rows = np.flatnonzero((values <= end) & (values > start))
        if not rows.size:
            return None
        return np.concatenate([self._samples[int(r)] for r in rows])

    def percentile_band(self, start: int, end: int, n1: int, max_difficulty: int
                        ) -> np.ndarray | None:
        """Positions ``[per*start, per*end)`` of the value-sorted ids, as DeepSpeed.

        Args:
          start, end: the two percentiles (integers in ``[0, max_difficulty]``).
          n1: DeepSpeed's shared ``N1`` (ids in the first percentile metric's index).
          max_difficulty: the metric's ``max_difficulty``; ``end == max_difficulty``
            extends the band to ``n1``.
        """
        per = n1 // max_difficulty
        first, last = per * start, (n1 if end == max_difficulty else per * end)
        cum, n = self._cum, self._cum.size
        # DeepSpeed walks the rows in order, takes part of every row that ends after
        # `first` and stops after the first row that ends at or after `last`.
        f = int(np.searchsorted(cum, first, "right"))
        if f == n:
            return None
        b = min(int(np.searchsorted(cum, last, "left")), n - 1)
        if f > b:
            return None
        begin = int(cum[f]) - int(self._samples.sizes[f])
        lo = max(begin, first)
        hi = min(int(cum[b]), last)
        return self._ids[lo:max(lo, hi)]

    def band(self, start: Difficulty, end: Difficulty, n1: int) -> np.ndarray | None:
        """The ids between two difficulties, by the metric's ``difficulty_type``."""
        if self.kind == "value":
            return self.value_band(start, end)
        return self.percentile_band(int(start), int(end), n1, self.config.max_difficulty)

    def cumulative(self, end: Difficulty, n1: int) -> np.ndarray | None:
        """The ids within difficulty ``end`` (value ``(-inf, end]``, percentile ``[0, end)``).

        For a percentile metric, or a value metric whose values ascend (:attr:`is_prefix`),
        a selection that is not ``None`` is always ``ids[:len(selection)]``, a prefix of
        the value-sorted ids.
        """
        return self.band(float("-inf") if self.kind == "value" else 0, end, n1)

    @property
    def is_prefix(self) -> bool:
        """Whether cumulative selections are prefixes of :attr:`ids` (see :meth:`cumulative`)."""
        return self.kind == "percentile" or self._sorted

    @property
    def ids(self) -> np.ndarray:
        """Every id of ``index_to_sample``, rows back to back (a zero-copy view)."""
        return self._ids

    @property
    def rank(self) -> np.ndarray:
        """Each id's position in :attr:`ids` (``total`` for an id not in the index).

        Built on first use (O(N) time, 4 or 8 bytes per sample), then kept.
        """
        if self._rank is None:
            total = self.total
            kind = np.int32 if total < np.iinfo(np.int32).max else np.int64
            rank = np.full(self._num_samples, total, kind)
            rank[self._ids] = np.arange(total, dtype=kind)
            self._rank = rank
        return self._rank


def percentile_total(indexes: Mapping[str, MetricIndex]) -> int:
    """DeepSpeed's shared ``N1``: the ids in the first percentile metric's index.

    DeepSpeed computes it once, from whichever percentile metric selects first (the
    first in config order), and uses it for every percentile metric.

    Raises:
      ValueError: for a percentile metric with ``N1 < max_difficulty`` and
        ``min_difficulty < max_difficulty``: every band below the maximum is empty
        (DeepSpeed fails inside numpy at the first batch).
    """
    n1 = next((i.total for i in indexes.values() if i.kind == "percentile"), 0)
    for index in indexes.values():
        m = index.config
        if index.kind == "percentile" and n1 < m.max_difficulty and m.min_difficulty < m.max_difficulty:
            raise _validation.value_error(
                f"{m.key_path}.max_difficulty", m.max_difficulty,
                f"<= N1 = {n1}, the number of ids in the first percentile metric's "
                "index_to_sample",
                fix="with fewer ids than percentiles every band below the maximum is "
                    "empty (DeepSpeed fails inside numpy at the first batch)")
    return n1


def band_cluster_ids(
    indexes: Mapping[str, MetricIndex],
    current: Mapping[str, Difficulty],
    previous: Mapping[str, Difficulty],
    *,
    num_samples: int,
    n1: int,
    has_clusters: bool,
) -> np.ndarray | None:
    """The next cluster's ids with at most one clustering metric, in DeepSpeed's order.

    Args:
      indexes: the ``schedule_based`` metric's index files (zero or one), by name.
      current: each metric's current difficulty.
      previous: each metric's difficulty at the previous global batch (``-inf`` for a
        value metric, 0 for a percentile metric, before the first).
      num_samples: ``N``.
      n1: DeepSpeed's shared percentile count (any int without a percentile metric).
      has_clusters: whether a cluster exists already.

    Returns:
      The ids before the shuffle (empty or ``None``: no new cluster).
    """
    new = None if has_clusters else np.arange(num_samples, dtype=np.int64)
    for name, index in indexes.items():
        new = index.band(previous[name], current[name], n1)
    return new
