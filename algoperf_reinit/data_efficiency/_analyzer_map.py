"""The analyzer's map stage: one shard (worker, thread) of the dataset to intermediate files.

Shards are DeepSpeed's (spec §3.2): the dataset is cut into ``num_workers``
contiguous ranges, each into ``num_threads``, at ``np.linspace(start, stop, n + 1,
dtype=int)`` boundaries; a shard is read in batches of ``batch_size`` from its own
start (the last batch of a shard may be short).

Intermediate files are ours (DeepSpeed writes a per-shard ``sample_to_metric`` and
one CSV per distinct value; neither is part of its contract). Per metric and shard,
in DeepSpeed's directory ``save_path/<m>/worker<w>_thread<t>/``:

* ``<m>_map_values.bin``: the values, raw little-endian in the declared dtype, in
  iteration order, and ``<m>_map_ids.bin``: their sample ids, raw int64 (single
  value per sample);
* ``<m>_map_value.npy``: the sum of the batches' arrays, int64 (uint64 for an
  unsigned declared dtype) (accumulate over samples);
* ``<m>_map_summary.json``: the shard, its sample count and id range, written last;
  the reduce reads a shard only if its summary exists and matches.

Both data files are appended to batch by batch (memory does not depend on the shard's
size) under temporary names, and renamed when the shard is complete.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency import _analyzer_batches

__all__ = [
    "ACCUMULATE",
    "FORMAT",
    "METRIC_TYPES",
    "SINGLE",
    "MapProgress",
    "MetricSpec",
    "Shard",
    "map_shard",
    "shard_dir",
    "shard_files",
    "shards",
]

SINGLE = "single_value_per_sample"
ACCUMULATE = "accumulate_value_over_samples"
METRIC_TYPES = (SINGLE, ACCUMULATE)
FORMAT = "algoperf_reinit.data_analyzer.map/1"
_log = logging.getLogger("algoperf_reinit.data_efficiency")


class MetricSpec(NamedTuple):
    """One validated metric of a :class:`DataAnalyzer`."""

    index: int  # position in metric_names
    name: str
    function: Callable[[Any], Any]
    type: str  # SINGLE or ACCUMULATE
    dtype: np.dtype  # declared, little-endian


class Shard(NamedTuple):
    """A contiguous range of the dataset mapped by one (worker, thread)."""

    worker_id: int
    thread_id: int
    start: int
    stop: int


class MapProgress(NamedTuple):
    """A progress report of one map shard, handed to ``DataAnalyzer(progress=...)``."""

    worker_id: int
    thread_id: int
    processed: int  # samples of this shard done
    total: int  # samples of this shard
    elapsed_s: float


def _split(start: int, stop: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(start, stop, parts + 1, dtype=int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def shards(num_samples: int, num_workers: int, num_threads: int) -> list[Shard]:
    """Every shard, in DeepSpeed's (worker, thread) order.

    Example:
      >>> [s[2:] for s in shards(10, 2, 2)]
      [(0, 2), (2, 5), (5, 7), (7, 10)]
    """
    return [Shard(w, t, a, b)
            for w, (ws, we) in enumerate(_split(0, num_samples, num_workers))
            for t, (a, b) in enumerate(_split(ws, we, num_threads))]


def shard_dir(save_path: str, metric: str, shard: Shard) -> str:
    """DeepSpeed's per-shard directory ``save_path/<m>/worker<w>_thread<t>``."""
    return os.path.join(save_path, metric, f"worker{shard.worker_id}_thread{shard.thread_id}")


def shard_files(save_path: str, metric: str, shard: Shard) -> dict[str, str]:
    """Paths of a shard's intermediate files, by kind."""
    base = os.path.join(shard_dir(save_path, metric, shard), metric)
    return {kind: f"{base}_map_{kind}" for kind in
            ("summary.json", "values.bin", "ids.bin", "value.npy")}


def _replace_json(path: str, content: dict[str, Any]) -> None:
    temp = f"{path}.tmp-{secrets.token_hex(4)}"
    with open(temp, "w") as f:
        json.dump(content, f, indent=1)
    os.replace(temp, path)


def _check_result(spec: MetricSpec, result: Any, start: int, stop: int,
                  shape: tuple[int, ...] | None) -> np.ndarray:
    """The metric's result for a batch, checked against its type, dtype and shape."""
    field = f"metric_functions[{spec.index}] (metric {spec.name!r}) result on samples " \
            f"[{start}, {stop})"
    if not isinstance(result, np.ndarray) and not hasattr(result, "__array__"):
        raise _validation.type_error(field, result, "a NumPy array")
    values = np.asarray(result)
    if values.dtype != spec.dtype:
        raise _validation.type_error(
            f"{field} dtype", values.dtype.name,
            f"{spec.dtype.name}, as metric_dtypes[{spec.index}] declares",
            fix=f"return .astype(np.{spec.dtype.name}) or declare {values.dtype.name}")
    n = stop - start
    if spec.type == SINGLE:
        if values.shape not in ((n,), (n, 1)):
            raise _validation.value_error(
                f"{field} shape", values.shape,
                f"({n},) or ({n}, 1): one value per sample ({SINGLE})")
        return values.reshape(n)
    if shape is not None and values.shape != shape:
        raise _validation.value_error(
            f"{field} shape", values.shape, f"{shape}, the first batch's shape ({ACCUMULATE})",
            fix="an accumulated metric returns one fixed-shape array per batch, not one "
                "value per sample (the last batch of a shard can be short)")
    return values


class _Sink:
    """One metric's intermediate files for one shard, written under temporary names."""

    def __init__(self, spec: MetricSpec, paths: dict[str, str]) -> None:
        self.spec, self.paths, self.shape = spec, paths, None
        self.total: np.ndarray | None = None
        self.count, self.min_id, self.max_id = 0, None, None
        tag = f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
        kinds = ("values.bin", "ids.bin") if spec.type == SINGLE else ("value.npy",)
        self.temps = {k: paths[k] + tag for k in kinds}
        self.files = ({k: open(t, "wb") for k, t in self.temps.items()}
                      if spec.type == SINGLE else {})

    def add(self, values: np.ndarray, ids: np.ndarray) -> None:
        self.count += values.shape[0] if self.spec.type == SINGLE else 0
        if self.spec.type == ACCUMULATE:
            wide = np.uint64 if self.spec.dtype.kind == "u" else np.int64
            self.shape = values.shape
            self.total = values.astype(wide) if self.total is None else self.total + values
            return
        values.astype(self.spec.dtype, copy=False).tofile(self.files["values.bin"])
        ids.astype("<i8", copy=False).tofile(self.files["ids.bin"])
        if ids.size:
            low, high = int(ids.min()), int(ids.max())
            self.min_id = low if self.min_id is None else min(self.min_id, low)
            self.max_id = high if self.max_id is None else max(self.max_id, high)

    def commit(self, shard: Shard) -> None:
        for f in self.files.values():
            f.close()
        if self.total is not None:
            with open(self.temps["value.npy"], "wb") as f:
                np.save(f, self.total)
        for kind, temp in self.temps.items():
            if os.path.exists(temp):
                os.replace(temp, self.paths[kind])
        _replace_json(self.paths["summary.json"], {
            "format": FORMAT, "metric_name": self.spec.name, "metric_type": self.spec.type,
            "metric_dtype": self.spec.dtype.name, **shard._asdict(),
            "num_samples": shard.stop - shard.start, "min_id": self.min_id,
            "max_id": self.max_id, "has_value": self.total is not None,
        })

    def discard(self) -> None:
        for f in self.files.values():
            f.close()
        for temp in self.temps.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)


def map_shard(reader: _analyzer_batches.BatchReader, specs: Sequence[MetricSpec], shard: Shard,
              *, save_path: str, batch_size: int, sample_indices: Any = None,
              log_every: int | None = None,
              progress: Callable[[MapProgress], None] | None = None) -> None:
    """Maps one shard: reads its batches, runs every metric, writes the shard's files.

    Memory: one batch and the metrics' results on it (plus each accumulated array).

    Raises:
      TypeError, ValueError: for a metric result of the wrong kind, dtype or shape, or
        bad sample ids (nothing of this shard is kept).
    """
    sinks = []
    try:
        for spec in specs:
            paths = shard_files(save_path, spec.name, shard)
            os.makedirs(os.path.dirname(paths["summary.json"]), exist_ok=True)
            for old in paths.values():  # a previous run of this shard: summary first
                with contextlib.suppress(FileNotFoundError):
                    os.remove(old)
            sinks.append(_Sink(spec, paths))
        began, reported, total = time.perf_counter(), 0, shard.stop - shard.start
        for start in range(shard.start, shard.stop, batch_size):
            stop = min(start + batch_size, shard.stop)
            batch = reader.read(start, stop)
            ids = _analyzer_batches.sample_ids(batch, start, stop, sample_indices)
            for spec, sink in zip(specs, sinks, strict=True):
                values = _check_result(spec, spec.function(batch), start, stop, sink.shape)
                sink.add(values, ids)
            done = stop - shard.start
            if (progress or log_every) and (done == total or not log_every
                                            or done - reported >= log_every):
                reported = done
                report = MapProgress(shard.worker_id, shard.thread_id, done, total,
                                     time.perf_counter() - began)
                if progress is not None:
                    progress(report)
                else:
                    _log.info("data analyzer map: worker %d thread %d: %d of %d samples in "
                              "%.1f s", *report)
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    for sink in sinks:
        sink.commit(shard)
