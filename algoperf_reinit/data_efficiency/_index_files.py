"""DeepSpeed's ``MMapIndexedDataset`` file format: rows of integers in ``.bin`` + ``.idx``.

A file *prefix* ``path/to/a_index_to_sample`` names two files. ``.bin`` holds the
rows' values back to back, raw, little-endian. ``.idx`` holds the index, all
integers little-endian (spec §3.2; layout checked against DeepSpeed 0.19.8's own
files in ``tests/data_efficiency/fixtures``):

=======  ===========  ==========================================================
offset   type         content
=======  ===========  ==========================================================
0        9 bytes      magic ``b"MMIDIDX\\x00\\x00"``
9        u64          version, always 1
17       u8           dtype code of the values (:data:`DTYPE_CODES`)
18       u64          number of rows ``n``
26       u64          number of document-index entries ``d``
34       int32[n]     row sizes (elements)
34+4n    int64[n]     byte offset of each row in ``.bin`` (exclusive cumsum)
34+12n   int64[d]     document index: row counts at document ends, from ``0``
=======  ===========  ==========================================================

The document index comes from the writer's calls: it starts at ``[0]`` and every
:meth:`IndexedDatasetWriter.end_document` appends the number of rows written so far.
DeepSpeed closes each file it writes with one ``end_document()`` (so a file of ``n``
rows ends ``[..., n]``) and builds some files by merging closed part files, which
repeats entries: the analyzer's ``index_to_metric`` of 57 values has ``[0, 57, 57]``.

Dtype codes are DeepSpeed's: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 uint16,
7 uint32, 8 uint64. The fixtures contain only code 1 (uint8: their 64 samples and
metric values fit one byte); the other codes are as DeepSpeed's source defines them
and as the spec lists them. Megatron-LM and fairseq use the same magic with a
different table for 6-8 (6 float32 or float64, 7 float64, 8 uint16): a Megatron token
file of code 8 holds uint16 tokens, which this reader, like DeepSpeed's, reads as
uint64 (and then rejects: the ``.bin`` size no longer matches the index).

Reading maps both files with ``np.memmap``: rows are zero-copy views and nothing is
read before it is used, which is what makes a 300B-token index cheap to query.
Writing streams: values go to ``.bin`` as they come, row sizes to a spool file, and
:meth:`IndexedDatasetWriter.finalize` writes ``.idx`` in blocks, so memory does not
grow with the file. Both files are written under temporary names and renamed into
place at the end (``.bin`` first, then ``.idx``); an error leaves nothing half-written.

Example:
  >>> import os, tempfile
  >>> prefix = os.path.join(tempfile.mkdtemp(), "cluster_a16")
  >>> write_rows(prefix, [np.array([5, 3, 9])], find_fit_int_dtype(0, 64))
  >>> ds = MMapIndexedDataset(prefix)
  >>> len(ds), ds.dtype, ds[0].tolist(), ds.doc_idx.tolist()
  (1, dtype('uint8'), [5, 3, 9], [0, 1])
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency import _index_writer
from algoperf_reinit.data_efficiency._index_writer import IndexedDatasetWriter

__all__ = [
    "DTYPE_CODES",
    "IndexedDatasetWriter",
    "MMapIndexedDataset",
    "find_fit_int_dtype",
    "write_rows",
]

DTYPE_CODES = _index_writer.DTYPE_CODES
MAGIC = _index_writer.MAGIC
VERSION = _index_writer.VERSION
_HEADER = _index_writer.HEADER


def find_fit_int_dtype(min_value: int, max_value: int) -> np.dtype:
    """The smallest integer dtype holding every value in ``[min_value, max_value]``.

    DeepSpeed's rule: unsigned (uint8, uint16, uint32, uint64) when ``min_value >= 0``,
    else signed (int8, int16, int32, int64), the first whose range holds both ends.
    The analyzer stores sample ids in ``find_fit_int_dtype(0, N - 1)``, metric values in
    ``find_fit_int_dtype(min, max)``, and the sampler its clusters in
    ``find_fit_int_dtype(0, N)``.

    Args:
      min_value: smallest value to store (a Python or NumPy int).
      max_value: largest value to store, ``>= min_value``.

    Returns:
      A NumPy dtype (compares equal to ``np.uint8`` etc.).

    Raises:
      TypeError: for a non-integer bound.
      ValueError: if ``max_value < min_value``, or no 64-bit dtype holds the range
        (DeepSpeed would return int64 or uint64 and store wrapped values).

    Example:
      >>> find_fit_int_dtype(0, 255), find_fit_int_dtype(0, 256), find_fit_int_dtype(-1, 127)
      (dtype('uint8'), dtype('uint16'), dtype('int8'))
    """
    low = _validation.integer("min_value", min_value)
    high = _validation.integer("max_value", max_value, minimum=low,
                               fix=f"the range is [min_value, max_value] = [{low}, ...]")
    kinds = (np.uint8, np.uint16, np.uint32, np.uint64) if low >= 0 else (
        np.int8, np.int16, np.int32, np.int64)
    for kind in kinds:
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return np.dtype(kind)
    raise _validation.value_error(
        "[min_value, max_value]", [low, high], "a range that one 64-bit integer dtype holds")


def write_rows(
    path: str | os.PathLike[str],
    rows: Iterable[Any],
    dtype: Any,
    *,
    doc_idx: Sequence[int] | None = None,
) -> None:
    """Writes ``rows`` (arrays, any shape, stored flattened) as one ``.bin``/``.idx`` pair.

    The one-call form of :class:`IndexedDatasetWriter`, for small files such as the
    sampler's clusters (``write_rows(prefix, [ids], find_fit_int_dtype(0, N))``).

    Args:
      path: the prefix (``.bin`` and ``.idx`` are appended).
      rows: integer arrays (or lists); each becomes one row.
      dtype: the stored dtype (one of :data:`DTYPE_CODES`); values must fit it.
      doc_idx: the document index to write, ``[0, ...]`` non-decreasing and ending at
        most at the number of rows. By default one document holding every row
        (``[0, n]``), as DeepSpeed writes its cluster and analyzer files.

    Raises:
      TypeError, ValueError: as :meth:`IndexedDatasetWriter.write_values`, or for a
        ``doc_idx`` that is not of the form above.
    """
    rows = list(rows)
    if doc_idx is None:
        ends = [len(rows)]
    else:
        ends = [_validation.integer(f"doc_idx[{i}]", e, minimum=0, maximum=len(rows))
                for i, e in enumerate(doc_idx)]
        if not ends or ends[0] != 0 or any(b < a for a, b in itertools.pairwise(ends)):
            raise _validation.value_error(
                "doc_idx", list(doc_idx), "non-decreasing and starting with 0",
                fix="the writer's document index always begins with 0")
        ends = ends[1:]
    with IndexedDatasetWriter(path, dtype) as writer:
        pending = iter(ends)
        boundary = next(pending, None)
        for i, row in enumerate(rows):
            while boundary == i:
                writer.end_document()
                boundary = next(pending, None)
            writer.add_item(row)
        while boundary is not None:
            writer.end_document()
            boundary = next(pending, None)


def _prefix(path: str | os.PathLike[str]) -> str:
    """``path`` without a ``.bin``/``.idx`` suffix when only the stripped form exists."""
    text = os.fspath(path)
    for suffix in (".idx", ".bin"):
        if text.endswith(suffix) and not os.path.exists(text + ".idx"):
            return text[: -len(suffix)]
    return text


def _read_header(index_path: str) -> tuple[np.dtype, int, int, int]:
    """Checks ``.idx``'s header and size; returns (dtype, rows, doc entries, file size)."""
    if not os.path.isfile(index_path):
        raise FileNotFoundError(
            f"index file {index_path} does not exist; MMapIndexedDataset takes the path "
            "without its .bin/.idx suffix")
    size = os.path.getsize(index_path)
    with open(index_path, "rb") as f:
        head = f.read(_HEADER.size)
    if len(head) < len(MAGIC) or not head.startswith(MAGIC):
        found = head[: len(MAGIC)]
        hint = (" (a TNTIDX 'lazy'/'cached' IndexedDataset index, which is not supported)"
                if found.startswith(b"TNTIDX") else "")
        raise ValueError(f"{index_path} is not an MMapIndexedDataset index: it starts with "
                         f"{found!r}, expected {MAGIC!r}{hint}")
    if len(head) < _HEADER.size:
        raise ValueError(f"{index_path} is truncated: {size} bytes, but the header alone "
                         f"has {_HEADER.size}")
    _, version, code, rows, docs = _HEADER.unpack(head)
    if version != VERSION:
        raise ValueError(f"{index_path} has format version {version}; only version "
                         f"{VERSION} is supported")
    if code not in DTYPE_CODES:
        known = ", ".join(f"{c} ({d.name})" for c, d in DTYPE_CODES.items())
        raise ValueError(f"{index_path} has dtype code {code}; the known codes are {known}")
    expected = _HEADER.size + 12 * rows + 8 * docs
    if size < expected:
        raise ValueError(f"{index_path} is truncated: {size} bytes, but {rows} rows and "
                         f"{docs} document-index entries need {expected}")
    if size > expected:
        raise ValueError(f"{index_path} has {size - expected} unexpected bytes after its "
                         f"document index ({rows} rows and {docs} entries make {expected})")
    return DTYPE_CODES[code], rows, docs, size


class MMapIndexedDataset:
    """Reads a ``.bin``/``.idx`` pair through ``np.memmap`` (zero-copy views).

    :attr:`values`, :attr:`sizes`, :attr:`pointers` and :attr:`doc_idx` are
    ``np.memmap`` objects; rows (``ds[i]``, :meth:`concatenated`) are read-only
    ``np.ndarray`` views into the same mapping (nothing is copied; a plain view is
    about 20x faster to make than an ``np.memmap`` slice).

    The header is checked when the files are opened (magic, version, dtype code,
    exact ``.idx`` size, ``.bin`` size against the last row's offset); errors name the
    file. :meth:`validate` checks every row offset as well (it reads the whole index).

    Args:
      path: the prefix (``path/to/a_index_to_sample``); a path ending in ``.bin`` or
        ``.idx`` is accepted too.
      skip_warmup: accepted for DeepSpeed's signature; nothing is pre-read either way.

    Raises:
      FileNotFoundError: if ``.idx`` or ``.bin`` is missing.
      ValueError: for a malformed or truncated file.

    Example:
      >>> import os, tempfile
      >>> prefix = os.path.join(tempfile.mkdtemp(), "x")
      >>> write_rows(prefix, [[1, 2], [3], []], np.int16)
      >>> ds = MMapIndexedDataset(prefix)
      >>> ds.sizes.tolist(), ds[1].tolist(), ds.values.tolist(), ds.concatenated(0, 2).tolist()
      ([2, 1, 0], [3], [1, 2, 3], [1, 2, 3])
    """

    def __init__(self, path: str | os.PathLike[str], skip_warmup: bool = True) -> None:
        del skip_warmup
        self._prefix = _prefix(path)
        self._index_path = self._prefix + ".idx"
        self._data_path = self._prefix + ".bin"
        dtype, rows, docs, index_size = _read_header(self._index_path)
        if not os.path.isfile(self._data_path):
            raise FileNotFoundError(f"data file {self._data_path} does not exist (its index "
                                    f"{self._index_path} does)")
        self._dtype = dtype
        raw = (np.memmap(self._index_path, dtype=np.uint8, mode="r")
               if index_size > _HEADER.size else np.zeros(_HEADER.size, np.uint8))
        start = _HEADER.size
        self._sizes = raw[start: start + 4 * rows].view("<i4")
        start += 4 * rows
        self._pointers = raw[start: start + 8 * rows].view("<i8")
        start += 8 * rows
        self._doc_idx = raw[start: start + 8 * docs].view("<i8")
        data_size = os.path.getsize(self._data_path)
        expected = (int(self._pointers[-1]) + int(self._sizes[-1]) * dtype.itemsize
                    if rows else 0)
        if data_size != expected:
            state = "is truncated: it has" if data_size < expected else "has"
            raise ValueError(f"{self._data_path} {state} {data_size} bytes, but its index "
                             f"{self._index_path} describes {expected} ({rows} rows of "
                             f"{dtype.name})")
        self._values = (np.memmap(self._data_path, dtype=dtype, mode="r")
                        if data_size else np.zeros(0, dtype))
        # Plain-ndarray views of the same mapped bytes: slicing them skips np.memmap's
        # Python-level __getitem__ and __array_finalize__ (rows come ~20x faster).
        self._plain = tuple(a.view(np.ndarray) for a in (self._sizes, self._pointers,
                                                          self._values))

    @property
    def path(self) -> str:
        """The prefix the files were opened from."""
        return self._prefix

    @property
    def dtype(self) -> np.dtype:
        """The values' dtype (from the header's dtype code)."""
        return self._dtype

    @property
    def sizes(self) -> np.ndarray:
        """Number of elements of each row, int32, a view of ``.idx``."""
        return self._sizes

    @property
    def pointers(self) -> np.ndarray:
        """Byte offset of each row in ``.bin``, int64, a view of ``.idx``."""
        return self._pointers

    @property
    def doc_idx(self) -> np.ndarray:
        """The document index, int64, a view of ``.idx``."""
        return self._doc_idx

    @property
    def values(self) -> np.ndarray:
        """Every row's values back to back (all of ``.bin``), a memmap view."""
        return self._values

    def __len__(self) -> int:
        return int(self._sizes.shape[0])

    def _row(self, i: int) -> np.ndarray:
        sizes, pointers, values = self._plain
        first = int(pointers[i]) // self._dtype.itemsize
        return values[first: first + int(sizes[i])]

    def __getitem__(self, key: int | slice) -> np.ndarray | list[np.ndarray]:
        """Row ``key`` as a zero-copy view, or a list of views for a slice."""
        if isinstance(key, slice):
            return [self._row(i) for i in range(*key.indices(len(self)))]
        if not isinstance(key, int | np.integer) or isinstance(key, bool | np.bool_):
            raise TypeError(f"row index must be an int or a slice, got {key!r} of type "
                            f"{type(key).__name__}")
        n = len(self)
        i = int(key) + n if key < 0 else int(key)
        if not 0 <= i < n:
            raise IndexError(f"row {key} is out of range for {self._prefix} ({n} rows)")
        return self._row(i)

    def __iter__(self):
        return (self._row(i) for i in range(len(self)))

    def concatenated(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start`` to ``stop`` (exclusive) back to back, one zero-copy view.

        Rows are contiguous in ``.bin``: for ``index_to_sample`` this is every sample id
        whose metric lies in a band of values, in index order.
        """
        n = len(self)
        begin, end, _ = slice(start, stop).indices(n)
        sizes, pointers, values = self._plain
        if end <= begin:
            return values[:0]
        isz = self._dtype.itemsize
        first = int(pointers[begin]) // isz
        return values[first: int(pointers[end - 1]) // isz + int(sizes[end - 1])]

    def validate(self) -> None:
        """Checks every row offset and the document index (reads the whole ``.idx``).

        Raises:
          ValueError: naming the file and the first inconsistent row or entry.
        """
        sizes = np.asarray(self._sizes, np.int64)
        if sizes.size and sizes.min() < 0:
            raise ValueError(f"{self._index_path}: row {int(np.argmin(sizes))} has a "
                             "negative size")
        expected = np.zeros_like(sizes)
        np.cumsum(sizes[:-1] * self._dtype.itemsize, out=expected[1:])
        bad = np.flatnonzero(expected != self._pointers)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{self._index_path}: row {i} starts at byte "
                             f"{int(self._pointers[i])}, but the sizes before it put it at "
                             f"{int(expected[i])}")
        doc = np.asarray(self._doc_idx)
        if doc.size and (doc[0] != 0 or np.any(np.diff(doc) < 0) or doc[-1] > len(self)):
            raise ValueError(f"{self._index_path}: the document index {doc.tolist()[:8]}... "
                             f"must start at 0 and not decrease past {len(self)} rows")

    def __repr__(self) -> str:
        return (f"MMapIndexedDataset({self._prefix!r}, rows={len(self)}, "
                f"dtype={self._dtype.name})")
