"""The input streams: the step-indexed training stream, and eval batches in order.

Training batch ``step`` is a pure function of the key, the step and the size.

Example ``g = step * batch_size + i`` of the stream is entry ``g % N`` of epoch
``g // N``'s permutation of the ``N`` training examples (a batch may straddle two
epochs), and that permutation is drawn by NumPy (PCG64) from a seed made of the
key's uint32 words and the epoch. So ``_build_input_queue(..., start_step=k)``
can start at any step, and a resumed run sees exactly the batches it would have
seen. An eval split's (padded) batches are yielded in order, once or repeatedly.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from algoperf_reinit_workloads import _validation as v

__all__ = ["EpochPermutations", "eval_stream", "key_words", "train_stream"]

_T = TypeVar("_T")


def key_words(rng: Any) -> tuple[int, ...]:
    """The uint32 words of a raw (uint32[2]) or typed JAX key, as Python ints.

    Raises:
      TypeError: if ``rng`` is not a JAX PRNG key.
    """
    if jnp.issubdtype(getattr(rng, "dtype", np.uint32), jax.dtypes.prng_key):
        rng = jax.random.key_data(rng)
    words = np.asarray(jax.device_get(rng))
    if words.dtype.kind not in "ui" or words.size == 0:
        raise TypeError(f"data_rng must be a JAX PRNG key, got {words.dtype} array {words!r}")
    return tuple(int(w) for w in words.astype(np.uint32).ravel())


class EpochPermutations:
    """The epoch permutations of ``num_examples`` examples, the last few cached.

    Args:
      num_examples: examples per epoch.
      cache_size: permutations kept (a batch needs at most two epochs).
    """

    def __init__(self, num_examples: int, cache_size: int = 4) -> None:
        self.num_examples = v.integer("num_examples", num_examples, minimum=1)
        self._cache_size = cache_size
        self._cache: collections.OrderedDict[tuple[int, ...], np.ndarray] = (
            collections.OrderedDict())

    def epoch(self, words: tuple[int, ...], epoch: int) -> np.ndarray:
        """The permutation of epoch ``epoch`` for the key ``words`` (read-only)."""
        key = (*words, epoch)
        perm = self._cache.get(key)
        if perm is None:
            seed = np.random.SeedSequence([*words, epoch])
            perm = np.random.Generator(np.random.PCG64(seed)).permutation(self.num_examples)
            perm.flags.writeable = False
            self._cache[key] = perm
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return perm

    def indices(self, data_rng: Any, step: Any, batch_size: Any) -> np.ndarray:
        """Indices of the examples of batch ``step`` of the stream for ``data_rng``.

        Args:
          data_rng: a JAX PRNG key (raw ``uint32[2]`` or typed).
          step: the 0-based batch index.
          batch_size: examples per batch.

        Returns:
          int64 array of shape ``(batch_size,)``.

        Raises:
          TypeError: for a step or size that is not an int, or a key that is not one.
          ValueError: for a negative ``step`` or a non-positive size.
        """
        step = v.integer("step", step, minimum=0)
        size = v.integer("global_batch_size", batch_size, minimum=1)
        words = key_words(data_rng)
        positions = step * size + np.arange(size, dtype=np.int64)
        epochs, offsets = np.divmod(positions, self.num_examples)
        indices = np.empty(size, dtype=np.int64)
        for epoch in np.unique(epochs):
            where = epochs == epoch
            indices[where] = self.epoch(words, int(epoch))[offsets[where]]
        return indices


def train_stream(batch_at: Callable[[int], _T], start_step: int,
                 num_batches: int | None) -> Iterator[_T]:
    """``batch_at(start_step)``, ``batch_at(start_step + 1)``, ... (``num_batches`` of them)."""
    step = start_step
    while num_batches is None or step - start_step < num_batches:
        yield batch_at(step)
        step += 1


def eval_stream(batches: Sequence[_T], repeat: bool, num_batches: int | None) -> Iterator[_T]:
    """The batches in order, once or (``repeat``) forever, at most ``num_batches``."""
    count = 0
    while True:
        for batch in batches:
            if num_batches is not None and count >= num_batches:
                return
            yield batch
            count += 1
        if not repeat:
            return

