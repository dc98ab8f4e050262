"""The analyzer's reduce stage: every shard's intermediate files to DeepSpeed's index files.

Per single-value metric ``m`` it writes, in ``save_path/<m>/`` (spec §3.2), with
sample ids in ``find_fit_int_dtype(0, N - 1)`` and values in
``find_fit_int_dtype(min, max)``:

* ``<m>_sample_to_metric``: one row ``[value]`` per sample, in shard order;
* ``<m>_index_to_metric``: one row ``[value]`` per distinct value, ascending;
* ``<m>_index_to_sample``: row ``j`` = the ids whose value is row ``j``'s, in shard
  and iteration order (a stable sort of the ids by value);
* ``<m>_index_to_sample_percentile_merged``: the same ids, rows merged in groups of
  ``max(1, n_values // 100)`` values;

and per accumulated metric ``<m>_metric_value``: one row, the sum over every batch.

The document indexes are DeepSpeed's: its reduce splits the shards (for
``sample_to_metric``) and the distinct values (for ``index_to_*``) into
``num_threads_reduce`` parts at ``np.linspace`` boundaries, writes one closed part
file each and merges them, so a file of ``n`` rows in parts ``n1, n2, ...`` has the
document index ``[0, n1, n1 + n2, ..., n, n]``; ``percentile_merged`` and
``metric_value`` are written whole: ``[0, n]``. With the default
``num_threads_reduce=1`` nothing depends on the number of workers or threads. Where
DeepSpeed's merge fails on an empty first part (more reduce threads than values or
shards), ours writes the repeated entries.

Memory: the distinct values with their counts (O(distinct values)) and one block of
``block_size`` samples; never every sample id at once. Sample ids are placed with a
distribution sort on disk: pass 1 counts the values, pass 2 appends each block's
(value index, id) pairs to spill files by bucket of consecutive values (a bucket holds
at most about ``2 * block_size`` pairs, or the pairs of one value), pass 3 sorts each
bucket stably and streams it out. Files are read sequentially in blocks
(``np.fromfile``), not memory-mapped, so they never add to the process's resident
memory either.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np

from algoperf_reinit.data_efficiency import _analyzer_map
from algoperf_reinit.data_efficiency._analyzer_map import MetricSpec, Shard
from algoperf_reinit.data_efficiency._index_files import find_fit_int_dtype, write_rows
from algoperf_reinit.data_efficiency._index_writer import IndexedDatasetWriter

__all__ = ["OUTPUT_KINDS", "output_prefix", "reduce_metric"]

OUTPUT_KINDS = ("sample_to_metric", "index_to_metric", "index_to_sample",
                "index_to_sample_percentile_merged", "metric_value")
_log = logging.getLogger("algoperf_reinit.data_efficiency")


def output_prefix(save_path: str, metric: str, kind: str) -> str:
    """``save_path/<m>/<m>_<kind>``: the prefix of one of the analyzer's output files."""
    return os.path.join(save_path, metric, f"{metric}_{kind}")


def _summaries(save_path: str, spec: MetricSpec, shards: Sequence[Shard]) -> list[dict]:
    found = []
    for shard in shards:
        path = _analyzer_map.shard_files(save_path, spec.name, shard)["summary.json"]
        rerun = (f"run run_map() with worker_id={shard.worker_id} (and the same dataset, "
                 "num_workers and num_threads) before run_reduce()")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"the map output of worker {shard.worker_id} thread "
                                    f"{shard.thread_id} for metric {spec.name!r} is missing "
                                    f"({path}); {rerun}")
        with open(path) as f:
            summary = json.load(f)
        expected = {"format": _analyzer_map.FORMAT, "metric_type": spec.type,
                    "metric_dtype": spec.dtype.name, "start": shard.start, "stop": shard.stop}
        wrong = {k: summary.get(k) for k, v in expected.items() if summary.get(k) != v}
        if wrong:
            raise ValueError(f"the map output {path} does not match this analyzer: it has "
                             f"{wrong}, expected {({k: expected[k] for k in wrong})}; {rerun}")
        found.append(summary)
    return found


def _blocks(path: str, dtype: np.dtype | str, count: int, block: int) -> Iterator[np.ndarray]:
    """``count`` items of ``path`` in blocks, read sequentially."""
    with open(path, "rb") as f:
        for begin in range(0, count, block):
            data = np.fromfile(f, dtype=dtype, count=min(block, count - begin))
            if data.shape[0] != min(block, count - begin):
                raise ValueError(f"{path} is truncated: expected {count} items")
            yield data


def _value_counts(paths: Sequence[str], sizes: Sequence[int], dtype: np.dtype,
                  block: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (ascending) and their counts over every shard's values."""
    values, counts = np.zeros(0, dtype), np.zeros(0, np.int64)
    for path, size in zip(paths, sizes, strict=True):
        for data in _blocks(path, dtype, size, block):
            new, new_counts = np.unique(data, return_counts=True)
            merged, inverse = np.unique(np.concatenate([values, new]), return_inverse=True)
            total = np.zeros(merged.shape[0], np.int64)
            np.add.at(total, inverse, np.concatenate([counts, new_counts]))
            values, counts = merged, total
    return values, counts


def _parts(total: int, parts: int) -> np.ndarray:
    return np.linspace(0, total, parts + 1, dtype=int)


def _buckets(counts: np.ndarray, value_parts: np.ndarray, block: int) -> np.ndarray:
    """Start value index of each bucket (and the end): consecutive values, never across
    a reduce part, at most ``block`` pairs plus the last value's, or one large value."""
    excl = np.cumsum(counts) - counts
    big = counts > block
    starts = np.zeros(counts.shape[0], bool)
    starts[np.minimum(value_parts[:-1], counts.shape[0] - 1)] = True
    starts[1:] |= (excl[1:] // block != excl[:-1] // block) | big[1:] | big[:-1]
    starts[0] = True
    return np.append(np.flatnonzero(starts), counts.shape[0])


def _write_sample_to_metric(prefix: str, paths: Sequence[str], sizes: Sequence[int],
                            spec: MetricSpec, dtype: np.dtype, parts: int, block: int) -> None:
    with IndexedDatasetWriter(prefix, dtype) as writer:
        edges = _parts(len(paths), parts)
        for a, b in itertools.pairwise(edges):
            for path, size in zip(paths[a:b], sizes[a:b], strict=True):
                for data in _blocks(path, spec.dtype, size, block):
                    writer.write_values(data)
                writer.add_equal_sizes(size)
            writer.end_document()
        writer.end_document()


def _write_index_files(save_path: str, spec: MetricSpec, shard_paths: Sequence[dict],
                       sizes: Sequence[int], values: np.ndarray, counts: np.ndarray,
                       id_dtype: np.dtype, value_dtype: np.dtype, parts: int,
                       block: int) -> None:
    """``index_to_metric``, ``index_to_sample`` and ``percentile_merged`` (passes 2, 3)."""
    n_values = values.shape[0]
    value_parts = _parts(n_values, parts)
    with IndexedDatasetWriter(output_prefix(save_path, spec.name, "index_to_metric"),
                              value_dtype) as writer:
        writer.write_values(values)
        for a, b in itertools.pairwise(value_parts):
            writer.add_equal_sizes(int(b - a))
            writer.end_document()
        writer.end_document()
    starts = _buckets(counts, value_parts, block)
    buckets = starts.shape[0] - 1  # small ints: NumPy's stable sort is a radix sort on them
    bucket_of = np.repeat(np.arange(buckets, dtype=find_fit_int_dtype(0, buckets)),
                          np.diff(starts))
    record = np.dtype([("value", find_fit_int_dtype(0, n_values - 1)), ("id", id_dtype)])
    spill = tempfile.mkdtemp(prefix=f"{spec.name}_reduce_", dir=os.path.join(save_path, spec.name))
    try:
        for paths, size in zip(shard_paths, sizes, strict=True):
            pairs = zip(_blocks(paths["values.bin"], spec.dtype, size, block),
                        _blocks(paths["ids.bin"], "<i8", size, block), strict=True)
            for data, ids in pairs:
                where = np.searchsorted(values, data)
                bucket = bucket_of[where]
                order = np.argsort(bucket, kind="stable")
                rows = np.empty(order.shape[0], record)
                rows["value"], rows["id"] = where[order], ids[order]
                cuts = np.flatnonzero(np.diff(bucket[order])) + 1
                for piece in np.split(rows, cuts):
                    with open(os.path.join(spill, str(bucket_of[piece["value"][0]])), "ab") as f:
                        piece.tofile(f)
        _write_sorted_ids(save_path, spec, spill, starts, value_parts, counts, record, block)
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _write_sorted_ids(save_path: str, spec: MetricSpec, spill: str, starts: np.ndarray,
                      value_parts: np.ndarray, counts: np.ndarray, record: np.dtype,
                      block: int) -> None:
    step = max(1, counts.shape[0] // 100)
    group_sizes = np.add.reduceat(counts, np.arange(0, counts.shape[0], step))
    id_dtype = record["id"]
    with contextlib.ExitStack() as stack:
        index = stack.enter_context(IndexedDatasetWriter(
            output_prefix(save_path, spec.name, "index_to_sample"), id_dtype))
        merged = stack.enter_context(IndexedDatasetWriter(
            output_prefix(save_path, spec.name, "index_to_sample_percentile_merged"), id_dtype))
        bucket = 0
        for a, b in itertools.pairwise(value_parts):
            index.add_sizes(counts[a:b])
            while bucket < starts.shape[0] - 1 and starts[bucket] < b:
                lo, hi = int(starts[bucket]), int(starts[bucket + 1])
                path, total = os.path.join(spill, str(bucket)), int(counts[lo:hi].sum())
                if hi - lo == 1:  # one value: already in order, possibly large
                    chunks = _blocks(path, record, total, block)
                else:
                    rows = np.fromfile(path, record)
                    chunks = [rows[np.argsort(rows["value"], kind="stable")]]
                for rows in chunks:
                    index.write_values(rows["id"])
                    merged.write_values(rows["id"])
                os.remove(path)
                bucket += 1
            index.end_document()
        index.end_document()
        merged.add_sizes(group_sizes)
        merged.end_document()


def _reduce_single(save_path: str, spec: MetricSpec, shards: Sequence[Shard],
                   summaries: Sequence[dict], num_samples: int, parts: int, block: int) -> None:
    paths = [_analyzer_map.shard_files(save_path, spec.name, s) for s in shards]
    sizes = [int(s["num_samples"]) for s in summaries]
    if sum(sizes) != num_samples:
        raise ValueError(f"the map outputs of metric {spec.name!r} hold {sum(sizes)} "
                         f"samples, but the dataset has {num_samples}")
    values, counts = _value_counts([p["values.bin"] for p in paths], sizes, spec.dtype, block)
    max_id = max([num_samples - 1] + [s["max_id"] for s in summaries if s["max_id"] is not None])
    id_dtype = find_fit_int_dtype(0, max_id)
    value_dtype = find_fit_int_dtype(int(values[0]), int(values[-1]))
    _write_sample_to_metric(output_prefix(save_path, spec.name, "sample_to_metric"),
                            [p["values.bin"] for p in paths], sizes, spec, value_dtype,
                            parts, block)
    _write_index_files(save_path, spec, paths, sizes, values, counts, id_dtype, value_dtype,
                       parts, block)
    _log.info("data analyzer reduce: metric %r: %d samples, %d distinct values in [%d, %d] "
              "stored as %s, sample ids as %s", spec.name, num_samples, values.shape[0],
              int(values[0]), int(values[-1]), value_dtype.name, id_dtype.name)


def _reduce_accumulate(save_path: str, spec: MetricSpec, shards: Sequence[Shard],
                       summaries: Sequence[dict]) -> None:
    total = None
    for shard, summary in zip(shards, summaries, strict=True):
        if summary["has_value"]:
            part = np.load(_analyzer_map.shard_files(save_path, spec.name, shard)["value.npy"])
            if total is not None and part.shape != total.shape:
                raise ValueError(f"metric {spec.name!r}: worker {shard.worker_id} thread "
                                 f"{shard.thread_id} accumulated shape {part.shape}, the "
                                 f"shards before it {total.shape}")
            total = part if total is None else total + part
    flat = total.reshape(-1)
    dtype = find_fit_int_dtype(int(flat.min()), int(flat.max()))
    write_rows(output_prefix(save_path, spec.name, "metric_value"), [flat], dtype)


def reduce_metric(save_path: str, spec: MetricSpec, *, num_samples: int, num_workers: int,
                  num_threads: int, num_threads_reduce: int, block_size: int) -> None:
    """Merges every shard's map output of one metric into its DeepSpeed files.

    Raises:
      FileNotFoundError: if a shard's map output is missing.
      ValueError: if a shard's output does not match this analyzer.
    """
    shards = _analyzer_map.shards(num_samples, num_workers, num_threads)
    summaries = _summaries(save_path, spec, shards)
    if spec.type == _analyzer_map.SINGLE:
        _reduce_single(save_path, spec, shards, summaries, num_samples, num_threads_reduce,
                       block_size)
    else:
        _reduce_accumulate(save_path, spec, shards, summaries)
