"""The streaming writer of DeepSpeed's ``MMapIndexedDataset`` files (``.bin`` + ``.idx``).

The format is described in :mod:`algoperf_reinit.data_efficiency._index_files`, which
also holds the reader. The writer keeps O(1) memory whatever it writes: values go
to a temporary ``.bin`` as they come, row sizes to a temporary spool file, and
:meth:`IndexedDatasetWriter.finalize` writes the ``.idx`` from the spool in blocks
(the document index is the one list held in memory: one int per ``end_document``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import numpy as np

from algoperf_reinit import _validation

__all__ = ["DTYPE_CODES", "HEADER", "MAGIC", "VERSION", "IndexedDatasetWriter", "storage_dtype"]

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, rows, doc entries
_BLOCK = 1 << 18  # elements per write or index block (bounds the temporary copies)

DTYPE_CODES = MappingProxyType({
    code: np.dtype(name) for code, name in
    ((1, "u1"), (2, "i1"), (3, "<i2"), (4, "<i4"), (5, "<i8"), (6, "<u2"), (7, "<u4"), (8, "<u8"))
})
"""DeepSpeed's dtype codes (read-only): 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
6 uint16, 7 uint32, 8 uint64."""

_CODE_OF = MappingProxyType({(d.kind, d.itemsize): c for c, d in DTYPE_CODES.items()})


def storage_dtype(field: str, dtype: Any) -> np.dtype:
    """``dtype`` as the little-endian integer dtype the format stores, or a clear error."""
    try:
        found = np.dtype(dtype)
    except TypeError:
        raise _validation.type_error(field, dtype, "a NumPy integer dtype") from None
    if (found.kind, found.itemsize) not in _CODE_OF:
        names = ", ".join(d.name for d in DTYPE_CODES.values())
        raise _validation.value_error(field, found.name, f"one of {names}",
                                      fix="the format stores integers only")
    return found.newbyteorder("<")


def _temporary(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


class IndexedDatasetWriter:
    """Writes one ``.bin``/``.idx`` pair, streaming; atomic (temporary files + rename).

    Use it as a context manager: leaving the block normally finalizes the files,
    leaving it with an exception removes every temporary file (the previous files
    of that prefix, if any, stay untouched).

    Rows are added whole (:meth:`add_item`, :meth:`add_items`) or streamed as values
    and sizes separately (:meth:`write_values` with :meth:`add_sizes` or
    :meth:`add_equal_sizes`, in any order), for rows too large to hold at once or
    values produced in an order that does not follow rows. :meth:`finalize` checks
    that the sizes account for exactly the values written.

    Args:
      path: the prefix (``.bin`` and ``.idx`` are appended); its directory must exist.
      dtype: the stored dtype: one of :data:`DTYPE_CODES`.

    Raises:
      TypeError, ValueError: for a dtype the format cannot store.

    Example:
      >>> import os, tempfile
      >>> from algoperf_reinit.data_efficiency import MMapIndexedDataset
      >>> prefix = os.path.join(tempfile.mkdtemp(), "rows")
      >>> with IndexedDatasetWriter(prefix, np.uint16) as writer:
      ...     writer.add_item(np.array([1, 2, 3]))
      ...     writer.write_values(np.arange(5))
      ...     writer.add_sizes([2, 3])
      ...     writer.end_document()
      >>> [row.tolist() for row in MMapIndexedDataset(prefix)]
      [[1, 2, 3], [0, 1], [2, 3, 4]]
    """

    def __init__(self, path: str | os.PathLike[str], dtype: Any) -> None:
        self._dtype = storage_dtype("dtype", dtype)
        self._info = np.iinfo(self._dtype)
        self._path = os.fspath(path)
        self._final = (self._path + ".bin", self._path + ".idx")
        self._temp = tuple(_temporary(p) for p in (*self._final, self._path + ".sizes"))
        self._files = [open(self._temp[0], "wb")]
        try:
            self._files.append(open(self._temp[2], "w+b"))
        except BaseException:
            self.abort()
            raise
        self._rows = 0
        self._sized = 0  # elements the sizes account for
        self._written = 0  # elements written to .bin
        self._doc_idx = [0]
        self._state = "open"

    @property
    def dtype(self) -> np.dtype:
        """The stored dtype."""
        return self._dtype

    @property
    def rows(self) -> int:
        """Number of rows added so far."""
        return self._rows

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"the writer of {self._path} is already {self._state}")

    def write_values(self, values: Any) -> None:
        """Appends values (any shape, flattened) to ``.bin``; rows come from the sizes.

        Args:
          values: an integer or bool array (a memmap is written in blocks, never loaded
            whole), or a list of ints.

        Raises:
          TypeError: for non-integer values.
          ValueError: for a value out of the stored dtype's range (DeepSpeed would
            store it wrapped).
        """
        self._check_open()
        array = np.asarray(values)
        if array.size and array.dtype.kind not in "iub":
            raise _validation.type_error(
                f"values written to {self._path}", array.dtype.name, "integers",
                fix=f"the file stores {self._dtype.name}")
        flat = array.reshape(-1)
        safe = array.size == 0 or np.can_cast(array.dtype, self._dtype, "safe")
        for begin in range(0, flat.shape[0], _BLOCK):
            block = flat[begin: begin + _BLOCK]
            if not safe and block.size:
                low, high = int(block.min()), int(block.max())
                if low < self._info.min or high > self._info.max:
                    raise _validation.value_error(
                        f"values written to {self._path}", [low, high],
                        f"in [{self._info.min}, {self._info.max}] ({self._dtype.name})",
                        fix="choose the dtype with find_fit_int_dtype(min, max)")
            np.ascontiguousarray(block, dtype=self._dtype).tofile(self._files[0])
            self._written += int(block.size)

    def add_sizes(self, sizes: Any) -> None:
        """Appends rows of the given sizes (numbers of elements) to the index.

        Raises:
          TypeError, ValueError: for sizes that are not integers in ``[0, 2**31)``
            (the format stores row sizes as int32).
        """
        self._check_open()
        array = np.asarray(sizes).reshape(-1)
        if array.size and array.dtype.kind not in "iu":
            raise _validation.type_error("sizes", array.dtype.name, "integers")
        if array.size and (array.min() < 0 or array.max() > _validation.INT32_MAX):
            raise _validation.value_error(
                "sizes", [int(array.min()), int(array.max())],
                f"in [0, {_validation.INT32_MAX}]", fix="rows are at most int32 elements")
        array.astype("<i4").tofile(self._files[1])
        self._rows += int(array.size)
        self._sized += int(array.sum(dtype=np.int64))

    def add_equal_sizes(self, count: int, size: int = 1) -> None:
        """Appends ``count`` rows of ``size`` elements each (streamed, O(1) memory)."""
        count = _validation.integer("count", count, minimum=0)
        size = _validation.integer("size", size, minimum=0, maximum=_validation.INT32_MAX)
        for begin in range(0, count, _BLOCK):
            self.add_sizes(np.full(min(_BLOCK, count - begin), size, "<i4"))

    def add_item(self, array: Any) -> None:
        """Appends one row: ``array``'s values, flattened."""
        values = np.asarray(array)
        self.write_values(values)
        self.add_sizes(np.array([values.size], np.int64))

    def add_items(self, arrays: Iterable[Any]) -> None:
        """Appends one row per array."""
        for array in arrays:
            self.add_item(array)

    def end_document(self) -> None:
        """Appends the number of rows so far to the document index."""
        self._check_open()
        self._doc_idx.append(self._rows)

    def _write_index(self, path: str) -> None:
        spool = self._files[1]
        itemsize = self._dtype.itemsize
        with open(path, "wb") as out:
            code = _CODE_OF[(self._dtype.kind, self._dtype.itemsize)]
            out.write(HEADER.pack(MAGIC, VERSION, code, self._rows, len(self._doc_idx)))
            spool.seek(0)
            for block in iter(lambda: spool.read(4 * _BLOCK), b""):
                out.write(block)
            spool.seek(0)
            offset = 0
            for block in iter(lambda: spool.read(4 * _BLOCK), b""):
                sizes = np.frombuffer(block, "<i4").astype(np.int64) * itemsize
                ends = np.cumsum(sizes) + offset
                (ends - sizes).astype("<i8").tofile(out)
                offset = int(ends[-1])
            np.asarray(self._doc_idx, "<i8").tofile(out)

    def finalize(self) -> None:
        """Writes ``.idx`` and moves both files into place (``.bin`` first).

        Raises:
          ValueError: if the sizes do not account for exactly the values written
            (nothing is kept).
        """
        self._check_open()
        try:
            if self._sized != self._written:
                raise ValueError(f"the rows of {self._path} hold {self._sized} elements, "
                                 f"but {self._written} values were written")
            self._files[0].close()
            self._write_index(self._temp[1])
            os.replace(self._temp[0], self._final[0])
            os.replace(self._temp[1], self._final[1])
        except BaseException:
            self.abort()
            raise
        self._close_and_remove(self._temp[2:])
        self._state = "finalized"

    def abort(self) -> None:
        """Closes and removes every temporary file; the writer cannot be used again."""
        self._close_and_remove(self._temp)
        self._state = "aborted"

    def _close_and_remove(self, paths: Iterable[str]) -> None:
        for f in self._files:
            f.close()
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            if self._state == "open":
                self.abort()
        elif self._state == "open":
            self.finalize()
