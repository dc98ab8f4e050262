"""Two or more clustering metrics: the next cluster is an intersection minus the clusters.

With two or more ``schedule_based`` metrics, DeepSpeed (spec §3.4) builds each new
cluster from every metric's *cumulative* selection (value ``(-inf, d]``, percentile
``[0, per*d)``, ``single_cluster`` every id ``0..N-1``), intersected in config order
with ``np.intersect1d`` (sorted), then removes every id already in a cluster with
``np.setdiff1d(..., assume_unique=True)`` (order kept): the result is sorted. That costs
O(N log N) at every difficulty change.

:class:`Intersection` gives the same ids in O(k log k) for the k ids that entered a
selection since the previous attempt. A cumulative selection is a prefix of the
metric's value-sorted ids (:meth:`MetricIndex.cumulative`): ``ids[:b]``. An id in
every current selection and in no cluster must have entered some selection since the
previous attempt (had it been in all of them then, that attempt would have added it to
a cluster), i.e. lie in some band ``ids[b_prev:b_cur]``. So the candidates are those
bands, kept where every metric's :attr:`MetricIndex.rank` is below its bound, minus
the clusters, sorted and deduplicated. Before a first attempt, or after one that was
not computed this way, ``b_prev`` is 0 (every id of the selections is a candidate).

The full computation (boolean masks over ``[0, N)``, O(N); the same result for the
unique ids the analyzer writes) is used when a selection is ``None`` (a ``value``
metric with no value in range) or a value metric's index is not sorted by value.

Where we differ from DeepSpeed: a selection of ``None`` means "no constraint" wherever
it comes; in DeepSpeed only a ``None`` before any other selection does (the next
selection is then taken as is, in row order: so here too), and one after crashes
(``TypeError`` inside ``np.intersect1d``); if every selection is ``None`` the attempt is
empty (DeepSpeed: skipped without clusters, a crash with them). With
``empty_is_empty=True`` a ``None`` is an empty selection instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from algoperf_reinit.data_efficiency._selection import MetricIndex

__all__ = ["Intersection"]

Difficulty = int | float


def _sorted_unique(ids: np.ndarray) -> np.ndarray:
    """``np.unique(ids)`` by sorting (NumPy 2.4's ``np.unique`` hashes: ~30x slower here)."""
    ids = np.sort(ids)
    return ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if ids.shape[0] else ids


def _mask(ids: np.ndarray, num_samples: int) -> np.ndarray:
    out = np.zeros(num_samples, bool)
    out[ids] = True
    return out


class Intersection:
    """The next cluster's ids with two or more clustering metrics (see the module).

    Args:
      indexes: the ``schedule_based`` metrics' index files, by name (two or more).
      metric_names: every metric, in config order (``single_cluster`` ones included).
      num_samples: ``N``.
      empty_is_empty: treat a selection of ``None`` as empty (not as "no constraint").
    """

    def __init__(self, indexes: Mapping[str, MetricIndex], metric_names: Sequence[str],
                 num_samples: int, *, empty_is_empty: bool = False) -> None:
        self._indexes = dict(indexes)
        self._names = list(metric_names)
        self._n = num_samples
        self._empty_is_empty = empty_is_empty
        self._prefix = all(index.is_prefix for index in self._indexes.values())
        self._bounds: dict[str, int] | None = None

    def reset(self) -> None:
        """Forget the previous attempt (the next one considers every selected id)."""
        self._bounds = None

    def new_ids(self, current: Mapping[str, Difficulty], n1: int, covered: np.ndarray
                ) -> np.ndarray | None:
        """The ids of the next cluster, sorted (empty or ``None``: no new cluster).

        Args:
          current: each metric's current difficulty.
          n1: DeepSpeed's shared percentile count.
          covered: a mask over ``[0, N)`` of the ids already in a cluster.
        """
        selections = {name: index.cumulative(current[name], n1)
                      for name, index in self._indexes.items()}
        if self._prefix and all(sel is not None for sel in selections.values()):
            return self._incremental({n: sel.shape[0] for n, sel in selections.items()},
                                     covered)
        self._bounds = None
        return self._full(selections, covered)

    def _incremental(self, bounds: dict[str, int], covered: np.ndarray) -> np.ndarray:
        previous = self._bounds or dict.fromkeys(bounds, 0)
        self._bounds = bounds
        bands = [index.ids[previous[name]:bounds[name]]
                 for name, index in self._indexes.items() if bounds[name] > previous[name]]
        if not bands:
            return np.zeros(0, np.int64)
        candidates = np.concatenate([band.astype(np.int64) for band in bands])
        keep = ~covered[candidates]
        for name, index in self._indexes.items():
            keep &= index.rank[candidates] < bounds[name]
        return _sorted_unique(candidates[keep])

    def _full(self, selections: Mapping[str, np.ndarray | None], covered: np.ndarray
              ) -> np.ndarray | None:
        raw: np.ndarray | None = None
        mask: np.ndarray | None = None
        for name in self._names:
            if name not in self._indexes:
                sel = np.arange(self._n, dtype=np.int64)
            else:
                sel = selections[name]
                if sel is None:
                    if not self._empty_is_empty:
                        continue
                    sel = np.zeros(0, np.int64)
            if raw is None and mask is None:
                raw = sel
            else:
                mask = (_mask(raw, self._n) if mask is None else mask) & _mask(sel, self._n)
                raw = None
        new = np.flatnonzero(mask) if mask is not None else raw
        if new is None:
            return None
        return new[~covered[new]]
