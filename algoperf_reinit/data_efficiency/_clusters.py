"""The curriculum sampler's clusters: shuffled id arrays read sequentially, with files.

A *cluster* (spec §3.4-3.5) is one shuffled array of sample ids with a read cursor.
:class:`ClusterStore` holds every cluster of a sampler in one growing buffer (dtype
``find_fit_int_dtype(0, N)``, the dtype of DeepSpeed's cluster files), with each
cluster's offset, size, cursor and file name ``cluster_<m1><d1>_<m2><d2>...``.

:meth:`ClusterStore.take` draws one global batch's ids given the per-cluster counts,
exactly as DeepSpeed's per-cluster loop does: for clusters in creation order, take
``count`` ids from the cursor; if fewer are left, take what is left, reshuffle the whole
cluster (one ``rng.shuffle`` of its current order) and take the rest from its start,
the cursor becoming the number taken after the wrap. DeepSpeed wraps once only, so a
count larger than what is left plus the whole cluster returns fewer ids, and the
cursor is set to the unclamped remainder (which may exceed the size: the next take
then reshuffles first). ``wrap_all=True`` (the fix of DeepSpeed's open PR #8520)
reshuffles as often as needed to return every requested id. The RNG is called only
for reshuffles, in cluster order, so clusters that do not wrap are read with one
vectorised gather (no per-id Python loop).

Files: with a ``directory`` (the writer process), each new cluster is written there
with ``write_rows(prefix, [ids], find_fit_int_dtype(0, N))`` (DeepSpeed's bytes) and
rewritten after each reshuffle (once per take with ``wrap_all``, which writes the same
final bytes). Without one (other processes, or no ``data_cluster_path``), clusters live
in memory only: every process computes the same clusters from the same seed, so the
files are an output for DeepSpeed tooling and for restoring, never read back during a
run.

Where we differ from DeepSpeed: clusters are held in memory (DeepSpeed memory-maps
the files it just wrote); a cluster's name must be new (DeepSpeed overwrites the file
of an existing cluster of the same name, which a non-monotone schedule can produce,
corrupting the earlier cluster); stale files of an earlier run in the directory are
ignored (DeepSpeed appends the name of a stale file when a new cluster is empty,
misaligning its lists).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._index_files import (
    MMapIndexedDataset,
    find_fit_int_dtype,
    write_rows,
)

__all__ = ["CLUSTER_PREFIX", "ClusterStore", "cluster_name", "shuffle_in_place"]

CLUSTER_PREFIX = "cluster"


def shuffle_in_place(ids: np.ndarray, rng: np.random.Generator) -> None:
    """``rng.shuffle(ids)`` for a 1-D array, through an int64 copy when narrower.

    NumPy's Fisher-Yates draws the same bounded integers whatever the dtype, so the
    permutation and the generator's state afterwards are those of ``rng.shuffle(ids)``;
    its swap loop is about twice as fast on 8-byte items (its fast path) as on the
    ``uint16``/``uint32`` ids of a cluster.
    """
    if ids.dtype.itemsize == 8:
        rng.shuffle(ids)
        return
    wide = ids.astype(np.int64)
    rng.shuffle(wide)
    ids[:] = wide


def cluster_name(difficulties: dict[str, int | float]) -> str:
    """DeepSpeed's file name: ``cluster`` then ``_<metric><difficulty>`` in config order.

    Example:
      >>> cluster_name({"a": 16, "seqlen_truncate": 8})
      'cluster_a16_seqlen_truncate8'
    """
    return CLUSTER_PREFIX + "".join(f"_{m}{d}" for m, d in difficulties.items())


class ClusterStore:
    """Every cluster of one sampler: ids, cursors, names, and (optionally) their files.

    Args:
      num_samples: ``N``; ids are stored in ``find_fit_int_dtype(0, N)``.
      directory: where cluster files are written (``None``: memory only).
      track_covered: keep a mask of the ids in any cluster (needed with two or more
        clustering metrics).
    """

    def __init__(self, num_samples: int, directory: str | None = None, *,
                 track_covered: bool = False) -> None:
        self.num_samples = num_samples
        self.dtype = find_fit_int_dtype(0, num_samples)
        self.directory = directory
        self._buf = np.zeros(max(16, num_samples), self.dtype)
        self._used = 0
        self._offsets = np.zeros(0, np.int64)
        self._sizes = np.zeros(0, np.int64)
        self._positions = np.zeros(0, np.int64)
        self._names: list[str] = []
        self._crc: list[int | None] = []
        self.covered = np.zeros(num_samples, bool) if track_covered else None

    def __len__(self) -> int:
        return len(self._names)

    @property
    def names(self) -> list[str]:
        """The cluster file names, in creation order."""
        return list(self._names)

    @property
    def sizes(self) -> np.ndarray:
        """Each cluster's number of ids (a copy, int64)."""
        return self._sizes.copy()

    @property
    def positions(self) -> list[int]:
        """Each cluster's cursor (DeepSpeed's ``data_cluster_current_position``)."""
        return [int(p) for p in self._positions]

    @positions.setter
    def positions(self, values: Sequence[int]) -> None:
        self._positions = np.asarray(values, np.int64).reshape(len(self))

    def ids(self, c: int) -> np.ndarray:
        """Cluster ``c``'s ids in their current order (a read-only view)."""
        start = int(self._offsets[c])
        view = self._buf[start:start + int(self._sizes[c])]
        view.flags.writeable = False
        return view

    def crc32(self, c: int) -> int:
        """CRC-32 of cluster ``c``'s file content (its ``.bin`` bytes), cached."""
        if self._crc[c] is None:
            self._crc[c] = zlib.crc32(np.ascontiguousarray(self.ids(c)).tobytes())
        return self._crc[c]

    def path(self, name: str) -> str:
        """The file prefix of cluster ``name`` in :attr:`directory`."""
        return os.path.join(self.directory, name)

    def _write(self, c: int) -> None:
        if self.directory is not None:
            write_rows(self.path(self._names[c]), [self.ids(c)], self.dtype)

    def add(self, name: str, ids: np.ndarray, rng: np.random.Generator | None, *,
            write: bool = True) -> None:
        """Append a cluster: copy ``ids``, shuffle them with ``rng`` (unless ``None``), write."""
        if name in self._names:
            raise _validation.value_error(
                "new curriculum cluster name", name, "a name not taken by an earlier cluster",
                fix="the difficulties returned to earlier values with new samples; "
                    "DeepSpeed would overwrite that cluster's file")
        size = int(ids.shape[0])
        if self._used + size > self._buf.shape[0]:
            grown = np.zeros(max(2 * self._buf.shape[0], self._used + size), self.dtype)
            grown[:self._used] = self._buf[:self._used]
            self._buf = grown
        block = self._buf[self._used:self._used + size]
        block[:] = ids
        if rng is not None:
            shuffle_in_place(block, rng)
        self._offsets = np.append(self._offsets, self._used)
        self._sizes = np.append(self._sizes, size)
        self._positions = np.append(self._positions, 0)
        self._names.append(name)
        self._crc.append(None)
        self._used += size
        if self.covered is not None:
            self.covered[block] = True
        if write:
            self._write(len(self) - 1)

    def rewrite_all(self) -> None:
        """Write every cluster's file again (after a restore that did not read them)."""
        for c in range(len(self)):
            self._write(c)

    def _reshuffle(self, c: int, rng: np.random.Generator) -> None:
        start = int(self._offsets[c])
        shuffle_in_place(self._buf[start:start + int(self._sizes[c])], rng)
        self._crc[c] = None

    def _wrap(self, c: int, count: int, rng: np.random.Generator, wrap_all: bool
              ) -> np.ndarray:
        """Cluster ``c``'s ``count`` ids when its cursor runs past its end."""
        start, size, pos = int(self._offsets[c]), int(self._sizes[c]), int(self._positions[c])
        parts = [self._buf[start + min(pos, size):start + size].copy()]
        remaining = count - parts[0].shape[0]
        while True:
            self._reshuffle(c, rng)
            taken = min(remaining, size)
            parts.append(self._buf[start:start + taken].copy())
            if not wrap_all or remaining <= size:
                break
            remaining -= size
        self._positions[c] = remaining
        self._write(c)
        return np.concatenate(parts)

    def take(self, counts: np.ndarray, rng: np.random.Generator, *, wrap_all: bool = False
             ) -> np.ndarray:
        """One global batch's ids (int64, before the batch shuffle), cluster by cluster.

        Args:
          counts: how many ids each cluster gives (``bincount`` of the cluster draw).
          rng: the sampler's generator (reshuffles only).
          wrap_all: reshuffle as often as needed (PR #8520) instead of once.
        """
        counts = np.asarray(counts, np.int64)
        ends = self._positions + counts
        wraps = np.flatnonzero((ends > self._sizes) & (counts > 0))
        plain = np.flatnonzero((ends <= self._sizes) & (counts > 0))
        n = counts[plain]
        src = np.repeat(self._offsets[plain] + self._positions[plain], n)
        if not wraps.size:
            within = np.arange(src.shape[0]) - np.repeat(np.cumsum(n) - n, n)
            self._positions[plain] += n
            return self._buf[src + within].astype(np.int64)
        tails = {int(c): self._wrap(int(c), int(counts[c]), rng, wrap_all) for c in wraps}
        lengths = counts.copy()
        for c, part in tails.items():
            lengths[c] = part.shape[0]
        seg = np.cumsum(lengths) - lengths
        out = np.empty(int(lengths.sum()), np.int64)
        within = np.arange(src.shape[0]) - np.repeat(np.cumsum(n) - n, n)
        out[np.repeat(seg[plain], n) + within] = self._buf[src + within]
        for c, part in tails.items():
            out[seg[c]:seg[c] + part.shape[0]] = part
        self._positions[plain] += n
        return out

    def load(self, names: Sequence[str], directory: str) -> list[int]:
        """Append the clusters of ``names`` read from ``directory``; returns their CRC-32s.

        Raises:
          FileNotFoundError: for a missing file (naming it).
        """
        crcs = []
        for name in names:
            ids = np.asarray(MMapIndexedDataset(os.path.join(directory, name))[0])
            self.add(name, ids, None, write=False)
            crcs.append(self.crc32(len(self) - 1))
        return crcs
