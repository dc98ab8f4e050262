"""Per-sample difficulty metrics of DeepSpeed's data-efficiency examples, in NumPy.

Two layers (spec §3.1, as Megatron-DeepSpeed's ``analyze_data.py`` computes them):

* array functions, vectorised over the batch (leading axis = samples):
  :func:`sequence_length`, :func:`vocab_histogram`, :func:`vocab_neg_log_prob`,
  :func:`vocab_rarity`, :func:`seqlen_vocab_rarity_coefficient`,
  :func:`seqlen_vocab_rarity`;
* metric-function factories for :class:`DataAnalyzer` (a batch, array or dict of
  arrays, in; one int64 per sample or one accumulated vector out; declare
  ``np.int64`` as their ``metric_dtypes`` entry, as DeepSpeed's examples do):
  :func:`seqlen_metric`, :func:`total_vocab_freq_metric`, :func:`vocab_rarity_metric`,
  :func:`seqlen_vocab_rarity_metric`.

The formulas: with token counts ``f`` over the dataset (the ``total_vocab_freq``
metric), zero counts replaced by 1, ``p = f / sum(f)``, a sample's rarity is
``int(sum over its tokens of -log p(token))`` (float64, then truncated; with a mask,
each token's term is multiplied by the mask, DeepSpeed's BERT variant), and
``seqlen_vocab_rarity = count_nonzero(mask) * C + rarity`` with
``C = 10 ** (ceil(log(seq_len * max(-log p), 10)) + 1)``, so length dominates. The
logarithm is ``math.log(x, 10)``, as the example computes it (it can differ from
``math.log10`` in the last bit, hence at an exact power of ten); ``sum(f)`` is an exact
int64 sum (the example's Python ``sum`` over the stored dtype can wrap under NumPy 2).
Sums of float64 terms are NumPy's (pairwise); torch's may round the last bit
differently, which moves a truncated rarity by one only when the sum lies within an
ulp of an integer.

Example:
  >>> tokens = np.array([[5, 1, 0, 0], [2, 2, 2, 1]])
  >>> sequence_length(tokens, padding_id=0).tolist()
  [2, 4]
  >>> counts = vocab_histogram(tokens, vocab_size=5)
  >>> counts.tolist()
  [2, 2, 3, 0, 0, 1]
  >>> vocab_rarity(tokens, vocab_neg_log_prob(counts), mask=tokens != 0).tolist()
  [3, 5]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from algoperf_reinit import _validation

__all__ = [
    "seqlen_metric", "seqlen_vocab_rarity", "seqlen_vocab_rarity_coefficient",
    "seqlen_vocab_rarity_metric", "sequence_length", "total_vocab_freq_metric",
    "vocab_histogram", "vocab_neg_log_prob", "vocab_rarity", "vocab_rarity_metric",
]

Batch = np.ndarray | Mapping[str, np.ndarray]
MetricFunction = Callable[[Batch], np.ndarray]


def _tokens(field: str, tokens: Any) -> np.ndarray:
    array = np.asarray(tokens)
    if array.dtype.kind not in "iu":
        raise _validation.type_error(field, array.dtype.name, "an integer token array")
    if array.ndim < 2:
        raise _validation.value_error(f"{field}.shape", array.shape,
                                      "(samples, tokens, ...): at least 2 axes")
    return array


def _flat(array: np.ndarray) -> np.ndarray:
    """``array`` as (samples, everything else)."""
    return array.reshape(array.shape[0], -1)


def _mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != shape:
        raise _validation.value_error("mask.shape", array.shape, f"the tokens' shape {shape}")
    if array.dtype.kind not in "biuf":
        raise _validation.type_error("mask", array.dtype.name, "a bool or numeric array")
    return array


def sequence_length(tokens: Any = None, *, mask: Any = None, padding_id: int = 0) -> np.ndarray:
    """Non-padding tokens per sample, int64: ``count_nonzero(mask)`` or ``tokens != padding_id``.

    Args:
      tokens: integer tokens ``[samples, length, ...]`` (used when ``mask`` is None).
      mask: padding mask of any dtype (non-zero = a real token), ``[samples, ...]``;
        takes precedence over ``tokens`` (DeepSpeed's ``seqlen`` metric counts it).
      padding_id: the padding token id, without a mask.

    Returns:
      int64 ``[samples]``.
    """
    if mask is not None:
        array = np.asarray(mask)
        if array.ndim < 1:
            raise _validation.value_error("mask.shape", array.shape, "(samples, ...)")
        return np.count_nonzero(array.reshape(array.shape[0], -1), axis=1).astype(np.int64)
    if tokens is None:
        raise _validation.value_error("tokens", None, "an array when no mask is given")
    padding = _validation.integer("padding_id", padding_id)
    return np.count_nonzero(_flat(_tokens("tokens", tokens)) != padding, axis=1).astype(np.int64)


def vocab_histogram(tokens: Any, vocab_size: int, *, mask: Any = None) -> np.ndarray:
    """Token counts of a batch, int64 ``[vocab_size + 1]`` (``bincount(minlength=V+1)``).

    The accumulate metric ``total_vocab_freq``: the analyzer sums it over batches.
    With a mask, only tokens where it is non-zero count (DeepSpeed's BERT variant
    weights the count by the padding mask).

    Raises:
      ValueError: for a token outside ``[0, vocab_size]`` (the histogram would change
        shape between batches).
    """
    vocab = _validation.integer("vocab_size", vocab_size, minimum=1)
    array = _tokens("tokens", tokens)
    flat = array.reshape(-1) if mask is None else array[_mask(mask, array.shape) != 0]
    if flat.size and (flat.min() < 0 or flat.max() > vocab):
        raise _validation.value_error(
            "tokens", [int(flat.min()), int(flat.max())], f"in [0, vocab_size] = [0, {vocab}]")
    return np.bincount(flat.astype(np.intp, copy=False), minlength=vocab + 1).astype(np.int64)


def vocab_neg_log_prob(token_counts: Any) -> np.ndarray:
    """``-log p(token)`` in float64 from dataset token counts, zero counts replaced by 1.

    Args:
      token_counts: non-negative integer counts (the ``total_vocab_freq`` metric's
        ``<m>_metric_value`` row, e.g. ``MMapIndexedDataset(prefix)[0]``).

    Returns:
      float64, the shape of ``token_counts``.
    """
    counts = np.asarray(token_counts)
    if counts.dtype.kind not in "iu" or counts.ndim != 1 or counts.size == 0:
        raise _validation.type_error("token_counts", counts.dtype.name,
                                     "a non-empty 1-D integer array")
    if counts.min() < 0:
        raise _validation.value_error("min(token_counts)", int(counts.min()), ">= 0")
    counts = np.where(counts == 0, 1, counts).astype(np.int64)
    return -np.log(counts / float(counts.sum()))


def _neg_log_prob(neg_log_p: Any) -> np.ndarray:
    array = np.asarray(neg_log_p, np.float64)
    if array.ndim != 1:
        raise _validation.value_error("neg_log_p.shape", array.shape,
                                      "1-D (one entry per token id)")
    return array


def _rarity_sum(tokens: np.ndarray, neg_log_p: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    flat = _flat(tokens)
    if flat.size and (flat.min() < 0 or flat.max() >= neg_log_p.shape[0]):
        raise _validation.value_error(
            "tokens", [int(flat.min()), int(flat.max())],
            f"valid ids of neg_log_p: in [0, {neg_log_p.shape[0] - 1}]")
    terms = neg_log_p[flat]
    if mask is not None:
        terms = terms * _flat(mask).astype(np.float64)
    return terms.sum(axis=1)


def vocab_rarity(tokens: Any, neg_log_p: Any, *, mask: Any = None) -> np.ndarray:
    """Per sample ``int(sum over tokens of -log p)``, int64 (float64 sum, truncated).

    Args:
      tokens: integer tokens ``[samples, length, ...]``.
      neg_log_p: :func:`vocab_neg_log_prob` of the dataset's token counts.
      mask: optional padding mask, the tokens' shape; each token's term is multiplied
        by it.
    """
    array = _tokens("tokens", tokens)
    masked = None if mask is None else _mask(mask, array.shape)
    return np.trunc(_rarity_sum(array, _neg_log_prob(neg_log_p), masked)).astype(np.int64)


def seqlen_vocab_rarity_coefficient(neg_log_p: Any, seq_len: int) -> int:
    """``C = 10 ** (ceil(log(seq_len * max(-log p), 10)) + 1)``: length dominates rarity.

    Raises:
      ValueError: when ``seq_len * max(-log p)`` is below about 0.01, where the
        example's formula gives a fractional ``C`` (a float metric DeepSpeed's analyzer
        would then reject for its dtype).

    Example:
      >>> seqlen_vocab_rarity_coefficient(np.array([0.5, 2.0]), seq_len=128)
      10000
    """
    length = _validation.integer("seq_len", seq_len, minimum=1)
    largest = float(np.max(_neg_log_prob(neg_log_p)))
    if not largest > 0:
        raise _validation.value_error("max(neg_log_p)", largest, "> 0",
                                      fix="a vocabulary of one token has no rarity")
    exponent = math.ceil(math.log(length * largest, 10)) + 1
    if exponent < 0:
        raise _validation.value_error(
            "seq_len * max(neg_log_p)", length * largest,
            "large enough (about 0.01) for a whole coefficient 10 ** (ceil(log(x, 10)) + 1)")
    return 10**exponent


def seqlen_vocab_rarity(tokens: Any, neg_log_p: Any, mask: Any, *,
                        seq_len: int | None = None) -> np.ndarray:
    """``count_nonzero(mask) * C + masked rarity`` per sample, int64.

    Args:
      tokens: integer tokens ``[samples, length, ...]``.
      neg_log_p: :func:`vocab_neg_log_prob` of the dataset's token counts.
      mask: padding mask, the tokens' shape (non-zero = a real token).
      seq_len: the maximum sequence length in ``C``; default the tokens' length
        (all but the sample axis).
    """
    array = _tokens("tokens", tokens)
    masked = _mask(mask, array.shape)
    log_p = _neg_log_prob(neg_log_p)
    length = int(np.prod(array.shape[1:])) if seq_len is None else seq_len
    coefficient = seqlen_vocab_rarity_coefficient(log_p, length)
    rarity = np.trunc(_rarity_sum(array, log_p, masked)).astype(np.int64)
    return np.count_nonzero(_flat(masked), axis=1).astype(np.int64) * coefficient + rarity


def _field(batch: Batch, key: str | None, name: str) -> np.ndarray:
    if key is None:
        if isinstance(batch, Mapping):
            raise _validation.value_error(
                name, None, "a key of the batch when batches are dicts",
                fix=f"the batch has keys {sorted(batch)}")
        return np.asarray(batch)
    if not isinstance(batch, Mapping) or key not in batch:
        keys = sorted(batch) if isinstance(batch, Mapping) else "none (an array)"
        raise _validation.value_error(name, key, "a key of the batch",
                                      fix=f"the batch has keys {keys}")
    return np.asarray(batch[key])


def seqlen_metric(*, tokens_key: str | None = None, mask_key: str | None = None,
                  padding_id: int = 0) -> MetricFunction:
    """DeepSpeed's ``seqlen`` metric (single value per sample): :func:`sequence_length`.

    Args:
      tokens_key: key of the tokens in a dict batch; ``None``: the batch is the tokens.
      mask_key: key of a padding mask (counted instead of the tokens), or ``None``.
      padding_id: padding token id when there is no mask.

    Example:
      >>> seqlen_metric(mask_key="weights")({"weights": np.array([[1., 1., 0.]])}).tolist()
      [2]
    """
    _validation.integer("padding_id", padding_id)

    def metric(batch: Batch) -> np.ndarray:
        if mask_key is not None:
            return sequence_length(mask=_field(batch, mask_key, "mask_key"))
        return sequence_length(_field(batch, tokens_key, "tokens_key"), padding_id=padding_id)

    return metric


def total_vocab_freq_metric(vocab_size: int, *, tokens_key: str | None = None,
                            mask_key: str | None = None) -> MetricFunction:
    """DeepSpeed's ``total_vocab_freq`` (accumulate over samples): :func:`vocab_histogram`."""
    vocab = _validation.integer("vocab_size", vocab_size, minimum=1)

    def metric(batch: Batch) -> np.ndarray:
        mask = None if mask_key is None else _field(batch, mask_key, "mask_key")
        return vocab_histogram(_field(batch, tokens_key, "tokens_key"), vocab, mask=mask)

    return metric


def vocab_rarity_metric(token_counts: Any, *, tokens_key: str | None = None,
                        mask_key: str | None = None) -> MetricFunction:
    """DeepSpeed's ``vocab_rarity`` (single value per sample): :func:`vocab_rarity`.

    Args:
      token_counts: the dataset's token counts (the ``total_vocab_freq`` result).
      tokens_key: key of the tokens in a dict batch; ``None``: the batch is the tokens.
      mask_key: key of a padding mask (BERT variant: only real tokens count), or None.
    """
    log_p = vocab_neg_log_prob(token_counts)

    def metric(batch: Batch) -> np.ndarray:
        mask = None if mask_key is None else _field(batch, mask_key, "mask_key")
        return vocab_rarity(_field(batch, tokens_key, "tokens_key"), log_p, mask=mask)

    return metric


def seqlen_vocab_rarity_metric(token_counts: Any, *, seq_len: int,
                               tokens_key: str | None = None, mask_key: str | None = None,
                               padding_id: int = 0) -> MetricFunction:
    """DeepSpeed's ``seqlen_vocab_rarity`` (single value per sample).

    Args:
      token_counts: the dataset's token counts (the ``total_vocab_freq`` result).
      seq_len: the maximum sequence length in the coefficient ``C``.
      tokens_key: key of the tokens in a dict batch; ``None``: the batch is the tokens.
      mask_key: key of the padding mask; ``None``: ``tokens != padding_id``.
      padding_id: padding token id when there is no mask.
    """
    log_p = vocab_neg_log_prob(token_counts)
    seqlen_vocab_rarity_coefficient(log_p, seq_len)  # validates seq_len now
    padding = _validation.integer("padding_id", padding_id)

    def metric(batch: Batch) -> np.ndarray:
        tokens = _field(batch, tokens_key, "tokens_key")
        mask = tokens != padding if mask_key is None else _field(batch, mask_key, "mask_key")
        return seqlen_vocab_rarity(tokens, log_p, mask, seq_len=seq_len)

    return metric
