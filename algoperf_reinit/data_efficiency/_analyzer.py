"""DeepSpeed's offline data analyzer: per-sample difficulty metrics to index files.

:class:`DataAnalyzer` takes DeepSpeed's keyword arguments and writes DeepSpeed's
files, byte for byte (checked against DeepSpeed 0.19.8's own output in
``tests/data_efficiency/fixtures``), which the curriculum sampler then reads. The
map stage (:mod:`._analyzer_map`) and the reduce stage (:mod:`._analyzer_reduce`)
stream: memory depends on ``batch_size``, ``block_size`` and the number of distinct
metric values, not on the dataset's size.

Where we differ from DeepSpeed 0.19.8 (spec §3.1-3.2):

* NumPy, no torch: datasets are NumPy arrays, dicts of arrays or indexable objects
  (:mod:`._analyzer_batches`), ``collate_fn`` receives a list of items; the
  ``custom_map_*`` / ``custom_reduce`` hooks (torch tensors and DeepSpeed's internal
  file layout) are not supported, and ``save_path`` has no default (DeepSpeed's is
  ``"./"``).
* ``num_threads`` shards run in a thread pool of this process (NumPy releases the GIL
  in its kernels; metric functions must be thread-safe), not in forked processes;
  the shards and files are DeepSpeed's. ``num_threads_reduce`` shapes the output's
  document indexes exactly as DeepSpeed's does, but the reduce itself is one pass.
* Intermediate map files are ours (DeepSpeed's are one CSV per distinct value and
  worker thread); the reduce refuses outputs of another split or dtype.
* The batch start of a shard advances by the batch's real number of samples
  (DeepSpeed's ``len(batch)`` is a dict batch's number of keys, which shifts the
  positional sample ids of dict batches without an ``"index"`` field).
* Sample ids are stored in ``find_fit_int_dtype(0, max(N - 1, largest id))``;
  DeepSpeed uses ``(0, N - 1)`` and wraps larger ids (from ``sample_indices`` or an
  ``"index"`` field) silently. Negative ids are an error.
* Accumulated metrics are summed in int64 (uint64 for unsigned declared dtypes);
  DeepSpeed sums in the declared dtype, which wraps when it is narrow.
* Every result is checked (kind, dtype, shape) with an error naming the metric and
  the batch; a failed map leaves no partial shard, and each output file pair is
  written atomically.
* Logging: nothing is printed; the reduce logs one INFO line per metric (values,
  range, dtypes) instead of DeepSpeed's value at every 5th percentile.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Sequence
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency import _analyzer_map, _analyzer_reduce
from algoperf_reinit.data_efficiency._analyzer_batches import BatchReader
from algoperf_reinit.data_efficiency._analyzer_map import MapProgress, MetricSpec
from algoperf_reinit.data_efficiency._index_writer import storage_dtype

__all__ = ["DataAnalyzer", "MapProgress"]

_UNSUPPORTED = ("custom_map_init", "custom_map_update", "custom_map_finalize", "custom_reduce")


def _specs(names: Any, functions: Any, types: Any, dtypes: Any) -> tuple[MetricSpec, ...]:
    lists = {"metric_names": names, "metric_functions": functions, "metric_types": types,
             "metric_dtypes": dtypes}
    for field, value in lists.items():
        if not isinstance(value, list | tuple):
            raise _validation.type_error(field, value, "a list")
    if not names:
        raise _validation.value_error("metric_names", names, "a non-empty list")
    for field, value in lists.items():
        if len(value) != len(names):
            raise _validation.value_error(f"len({field})", len(value),
                                          f"len(metric_names) = {len(names)}")
    specs = []
    for i, (name, function, kind, dtype) in enumerate(zip(names, functions, types, dtypes,
                                                          strict=True)):
        if not isinstance(name, str) or not name or name in (".", "..") or any(
                sep in name for sep in (os.sep, "/", os.altsep or "/")):
            raise _validation.value_error(f"metric_names[{i}]", name,
                                          "a non-empty file name (no path separator)")
        if name in names[:i]:
            raise _validation.value_error(f"metric_names[{i}]", name, "unique")
        if not callable(function):
            raise _validation.type_error(f"metric_functions[{i}]", function, "callable")
        _validation.choice(f"metric_types[{i}]", kind, _analyzer_map.METRIC_TYPES)
        specs.append(MetricSpec(i, name, function, kind,
                                storage_dtype(f"metric_dtypes[{i}]", dtype)))
    return tuple(specs)


class DataAnalyzer:
    """Computes difficulty metrics over a dataset and writes DeepSpeed's index files.

    ``run_map()`` maps this worker's shards, ``run_reduce()`` (worker 0; a no-op on
    the others, as in DeepSpeed) merges every worker's shards: run the map in each of
    ``num_workers`` processes (``worker_id`` 0..N-1), wait for all, then reduce once;
    the files equal one worker's. ``run_map_reduce()`` does both in one process.
    Outputs go to ``save_path/<m>/<m>_<kind>`` (:meth:`output_prefix`).

    Metric functions receive a batch (an array or a dict of arrays, leading axis =
    samples) and return, for ``"single_value_per_sample"``, one integer per sample
    (shape ``(n,)`` or ``(n, 1)``), for ``"accumulate_value_over_samples"`` one array
    of a fixed shape per batch (summed), of exactly the declared dtype (one of uint8,
    int8, int16, int32, int64, uint16, uint32, uint64). Sample ids: a dict batch's
    ``"index"`` field (``batch["index"][row][0]``), else ``sample_indices[position]``,
    else the position.

    Memory: the map holds one batch and its results; the reduce holds the distinct
    values of one metric with their counts and blocks of ``block_size`` samples (see
    :mod:`._analyzer_reduce`); no stage holds every sample id at once.

    Args:
      dataset: a NumPy array, a dict of arrays, or an object with ``__len__`` and
        ``__getitem__`` (see :mod:`._analyzer_batches`).
      metric_names: one name per metric (a file name: outputs go to
        ``save_path/<name>/``).
      metric_functions: one function per metric, ``batch -> array``.
      metric_types: ``"single_value_per_sample"`` or ``"accumulate_value_over_samples"``.
      metric_dtypes: the dtype each function returns.
      save_path: output directory (created if needed).
      num_workers: number of map processes the dataset is split over.
      worker_id: this process's worker, in ``[0, num_workers)``.
      num_threads: shards per worker (run concurrently in threads).
      num_threads_reduce: parts of DeepSpeed's reduce (shapes the document indexes).
      specific_threads: only these thread ids of this worker (``None`` or ``[]``: all).
      batch_size: samples per metric call.
      collate_fn: optional ``list of items -> batch`` (items are then read one by one).
      sample_indices: optional sample id of every position, ``len(dataset)`` long.
      batch_by_slice: read a generic dataset as ``dataset[start:stop]``.
      block_size: samples per block read by the reduce.
      log_every: report map progress every this many samples of a shard (to
        ``progress``, else to the ``algoperf_reinit.data_efficiency`` logger at INFO).
      progress: optional callback receiving a :class:`MapProgress` (every batch when
        ``log_every`` is None).
      custom_map_init, custom_map_update, custom_map_finalize, custom_reduce: DeepSpeed's
        hooks, accepted only as ``None`` (they take torch tensors and DeepSpeed's
        internal files).

    Raises:
      TypeError, ValueError: for invalid arguments (named, with the rule).

    Example:
      >>> import tempfile
      >>> import numpy as np
      >>> from algoperf_reinit.data_efficiency import MMapIndexedDataset, seqlen_metric
      >>> tokens = np.array([[3, 4, 0], [5, 0, 0], [1, 2, 6], [7, 0, 0]])
      >>> out = tempfile.mkdtemp()
      >>> DataAnalyzer(tokens, metric_names=["seqlen"], metric_functions=[seqlen_metric()],
      ...              metric_types=["single_value_per_sample"], metric_dtypes=[np.int64],
      ...              save_path=out, batch_size=2).run_map_reduce()
      >>> prefix = DataAnalyzer.output_prefix(out, "seqlen", "index_to_sample")
      >>> [row.tolist() for row in MMapIndexedDataset(prefix)]
      [[1, 3], [0], [2]]
    """

    def __init__(self, dataset: Any, *, metric_names: Sequence[str],
                 metric_functions: Sequence[Callable[[Any], Any]], metric_types: Sequence[str],
                 metric_dtypes: Sequence[Any], save_path: str | os.PathLike[str],
                 num_workers: int = 1, worker_id: int = 0, num_threads: int = 1,
                 num_threads_reduce: int = 1, specific_threads: Sequence[int] | None = None,
                 batch_size: int = 1, collate_fn: Callable[[list[Any]], Any] | None = None,
                 sample_indices: Any = None, batch_by_slice: bool = False,
                 block_size: int = 1 << 18, log_every: int | None = None,
                 progress: Callable[[MapProgress], None] | None = None,
                 custom_map_init: None = None, custom_map_update: None = None,
                 custom_map_finalize: None = None, custom_reduce: None = None) -> None:
        hooks = (custom_map_init, custom_map_update, custom_map_finalize, custom_reduce)
        for key, value in zip(_UNSUPPORTED, hooks, strict=True):
            if value is not None:
                raise _validation.value_error(
                    key, value, "None: DeepSpeed's custom map/reduce hooks are not supported",
                    fix="compute the metric in metric_functions instead")
        self._specs = _specs(metric_names, metric_functions, metric_types, metric_dtypes)
        self.num_workers = _validation.integer("num_workers", num_workers, minimum=1)
        self.worker_id = _validation.integer("worker_id", worker_id, minimum=0,
                                             maximum=self.num_workers - 1)
        self.num_threads = _validation.integer("num_threads", num_threads, minimum=1)
        self.num_threads_reduce = _validation.integer("num_threads_reduce",
                                                      num_threads_reduce, minimum=1)
        threads = list(specific_threads or [])
        for i, t in enumerate(threads):
            _validation.integer(f"specific_threads[{i}]", t, minimum=0,
                                maximum=self.num_threads - 1)
        if len(set(threads)) != len(threads):
            raise _validation.value_error("specific_threads", threads, "distinct thread ids")
        self.specific_threads = threads
        self.batch_size = _validation.integer("batch_size", batch_size, minimum=1)
        self.block_size = _validation.integer("block_size", block_size, minimum=1)
        self.log_every = _validation.optional(_validation.integer, "log_every", log_every,
                                              minimum=1)
        if progress is not None and not callable(progress):
            raise _validation.type_error("progress", progress, "callable or None")
        self.progress = progress
        self.save_path = os.fspath(_validation.instance("save_path", save_path,
                                                        (str, os.PathLike)))
        self._reader = BatchReader(dataset, collate_fn=collate_fn,
                                   batch_by_slice=_validation.boolean("batch_by_slice",
                                                                      batch_by_slice))
        if len(self._reader) == 0:
            raise _validation.value_error("len(dataset)", 0, ">= 1")
        if sample_indices is not None and len(sample_indices) != len(self._reader):
            raise _validation.value_error("len(sample_indices)", len(sample_indices),
                                          f"len(dataset) = {len(self._reader)}")
        self.sample_indices = sample_indices

    @property
    def metric_names(self) -> list[str]:
        """The metrics' names, in order."""
        return [spec.name for spec in self._specs]

    @staticmethod
    def output_prefix(save_path: str | os.PathLike[str], metric_name: str, kind: str) -> str:
        """The prefix of an output file, e.g. ``kind="index_to_sample"``.

        ``kind`` is one of ``sample_to_metric``, ``index_to_metric``, ``index_to_sample``,
        ``index_to_sample_percentile_merged`` (single value per sample) and
        ``metric_value`` (accumulated).
        """
        _validation.choice("kind", kind, _analyzer_reduce.OUTPUT_KINDS)
        return _analyzer_reduce.output_prefix(os.fspath(save_path), metric_name, kind)

    def run_map(self) -> None:
        """Maps this worker's shards (``specific_threads`` only, if given)."""
        mine = [s for s in _analyzer_map.shards(len(self._reader), self.num_workers,
                                                 self.num_threads)
                if s.worker_id == self.worker_id
                and (not self.specific_threads or s.thread_id in self.specific_threads)]

        def run(shard: _analyzer_map.Shard) -> None:
            _analyzer_map.map_shard(
                self._reader, self._specs, shard, save_path=self.save_path,
                batch_size=self.batch_size, sample_indices=self.sample_indices,
                log_every=self.log_every, progress=self.progress)

        if len(mine) == 1:
            run(mine[0])
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(mine)) as pool:
            for future in [pool.submit(run, shard) for shard in mine]:
                future.result()

    def run_reduce(self) -> None:
        """Merges every worker's map output into DeepSpeed's files (worker 0 only).

        Raises:
          FileNotFoundError: if a worker's or thread's map output is missing.
          ValueError: if a map output was made with another split or dtype.
        """
        if self.worker_id != 0:
            return
        for spec in self._specs:
            _analyzer_reduce.reduce_metric(
                self.save_path, spec, num_samples=len(self._reader),
                num_workers=self.num_workers, num_threads=self.num_threads,
                num_threads_reduce=self.num_threads_reduce, block_size=self.block_size)

    def run_map_reduce(self) -> None:
        """:meth:`run_map`, then :meth:`run_reduce` (every worker's output must exist)."""
        self.run_map()
        self.run_reduce()
