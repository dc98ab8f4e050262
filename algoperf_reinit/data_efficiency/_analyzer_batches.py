"""Batches of a dataset for the data analyzer: contiguous ranges of samples, collated.

A dataset is one of:

* a NumPy array (a ``np.memmap`` too): batch ``[start, stop)`` is the slice
  ``dataset[start:stop]``, a view (nothing is copied);
* a dict of arrays with one leading length (columnar, AlgoPerf style):
  ``{key: array[start:stop]}``;
* any object with ``__len__`` and ``__getitem__(i)`` returning an array, a dict of
  arrays or a tuple of arrays: items are read one by one and stacked along a new
  leading axis (or passed as a list to ``collate_fn``). With ``batch_by_slice=True``
  it is read as ``dataset[start:stop]`` instead, which must return an array or a dict
  of arrays of ``stop - start`` rows (for datasets that read many samples at once).

The sample ids of a batch follow DeepSpeed (spec §3.1): ``batch["index"][row][0]``
when the batch is a dict with an ``"index"`` field, else ``sample_indices[position]``
when given, else the position itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from algoperf_reinit import _validation

__all__ = ["BatchReader", "collate", "sample_ids"]

Batch = Any  # np.ndarray | Mapping[str, np.ndarray] | tuple[np.ndarray, ...]


def _stack(field: str, arrays: Sequence[Any]) -> np.ndarray:
    try:
        return np.stack([np.asarray(a) for a in arrays])
    except ValueError:
        shapes = sorted({np.shape(a) for a in arrays})
        raise _validation.value_error(
            field, shapes[:4], "one shape for every item of a batch",
            fix="pad the items or pass collate_fn") from None


def collate(items: Sequence[Any]) -> Batch:
    """Stacks dataset items along a new leading axis: arrays, dicts or tuples of arrays."""
    first = items[0]
    if isinstance(first, Mapping):
        keys = list(first)
        for item in items:
            if not isinstance(item, Mapping) or list(item) != keys:
                found = sorted(item) if isinstance(item, Mapping) else type(item).__name__
                raise _validation.value_error("dataset item keys", found,
                                              f"the first item's keys {keys}")
        return {k: _stack(f"dataset items [{k!r}]", [it[k] for it in items]) for k in keys}
    if isinstance(first, tuple):
        return tuple(_stack(f"dataset items [{i}]", column)
                     for i, column in enumerate(zip(*items, strict=True)))
    return _stack("dataset items", items)


def _rows(batch: Batch) -> int | None:
    """Number of samples of a sliced batch, or None if it is not an array/dict of arrays."""
    if isinstance(batch, np.ndarray):
        return batch.shape[0] if batch.ndim else None
    if isinstance(batch, Mapping) and batch:
        lengths = {np.shape(v)[0] if np.ndim(v) else None for v in batch.values()}
        return lengths.pop() if len(lengths) == 1 else None
    return None


class BatchReader:
    """Reads ``[start, stop)`` ranges of a dataset as batches (see the module docstring).

    Args:
      dataset: the dataset.
      collate_fn: optional function from a list of items to a batch; items are then
        always read one by one.
      batch_by_slice: read a generic dataset with ``dataset[start:stop]``.
    """

    def __init__(self, dataset: Any, *, collate_fn: Callable[[list[Any]], Batch] | None = None,
                 batch_by_slice: bool = False) -> None:
        if collate_fn is not None and not callable(collate_fn):
            raise _validation.type_error("collate_fn", collate_fn, "callable or None")
        self._collate = collate_fn
        self._dataset = dataset
        if isinstance(dataset, np.ndarray):
            if dataset.ndim == 0:
                raise _validation.value_error("dataset.shape", dataset.shape,
                                              "(samples, ...): at least one axis")
            self._kind = "items" if collate_fn is not None else "array"
            self._len = dataset.shape[0]
        elif isinstance(dataset, Mapping):
            lengths = {k: (np.shape(v)[0] if np.ndim(v) else None) for k, v in dataset.items()}
            if not lengths or None in lengths.values() or len(set(lengths.values())) != 1:
                raise _validation.value_error(
                    "dataset", lengths, "a dict of arrays with one leading length",
                    fix="a columnar dataset maps each key to an array [samples, ...]")
            self._kind = "columns"
            self._len = next(iter(lengths.values()))
            self._dataset = {k: v if isinstance(v, np.ndarray) else np.asarray(v)
                             for k, v in dataset.items()}
        elif hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
            self._kind = "slice" if batch_by_slice and collate_fn is None else "items"
            self._len = len(dataset)
        else:
            raise _validation.type_error(
                "dataset", dataset,
                "a NumPy array, a dict of arrays, or an object with __len__ and __getitem__")

    def __len__(self) -> int:
        return int(self._len)

    def read(self, start: int, stop: int) -> Batch:
        """The batch of samples ``start`` to ``stop`` (exclusive)."""
        if self._kind == "array":
            return self._dataset[start:stop]
        if self._kind == "columns":
            return {k: v[start:stop] for k, v in self._dataset.items()}
        if self._kind == "slice":
            batch = self._dataset[start:stop]
            if _rows(batch) != stop - start:
                raise _validation.value_error(
                    f"dataset[{start}:{stop}]", type(batch).__name__,
                    f"an array or a dict of arrays of {stop - start} rows",
                    fix="batch_by_slice=True needs slices to return whole batches")
            return batch
        items = [self._dataset[i] for i in range(start, stop)]
        return self._collate(items) if self._collate is not None else collate(items)


def sample_ids(batch: Batch, start: int, stop: int, sample_indices: Any = None) -> np.ndarray:
    """Sample ids (int64) of the batch of positions ``[start, stop)``, as DeepSpeed does.

    Raises:
      TypeError, ValueError: for a non-integer ``index`` field or ids, a wrong count
        of them, or a negative id.
    """
    n = stop - start
    if isinstance(batch, Mapping) and "index" in batch:
        field = f"batch['index'] of samples [{start}, {stop})"
        found = np.asarray(batch["index"])
        if found.ndim == 0 or found.shape[0] != n:
            raise _validation.value_error(f"{field}.shape", found.shape, f"({n}, ...)")
        ids = found.reshape(n, -1)[:, 0]
    elif sample_indices is not None:
        field = f"sample_indices[{start}:{stop}]"
        ids = np.asarray(sample_indices[start:stop])
    else:
        return np.arange(start, stop, dtype=np.int64)
    if ids.size and ids.dtype.kind not in "iu":
        raise _validation.type_error(field, ids.dtype.name, "integer sample ids")
    if ids.size and ids.min() < 0:
        raise _validation.value_error(f"min({field})", int(ids.min()), ">= 0")
    if ids.dtype == np.uint64 and ids.size and ids.max() > np.iinfo(np.int64).max:
        raise _validation.value_error(f"max({field})", int(ids.max()), "<= 2**63 - 1")
    return ids.astype(np.int64, copy=False)
