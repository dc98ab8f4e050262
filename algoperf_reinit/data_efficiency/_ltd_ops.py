"""random-LTD's functional pieces under DeepSpeed's names, as jittable JAX functions.

DeepSpeed's ``deepspeed.ops.random_ltd`` draws the kept tokens with
``torch.multinomial`` (uniform, without replacement), sorts them with a CUDA counting
sort, and copies hidden rows with CUDA gather/scatter kernels. Here:

* :func:`sample_indices`: for each (layer, sample) the ``reserved_length`` positions
  with the largest of ``seq_length`` i.i.d. uniform noises (``jax.lax.top_k``), sorted
  ascending: a uniform subset without replacement, kept in sequence order, independent
  across layers and samples (the same distribution as DeepSpeed's, not its stream).
* :func:`gpt_sample_tokens` / :func:`bert_sample_tokens`: DeepSpeed's signatures with
  the key first; they return ``(sampled_indices, new_mask)`` with ``sampled_indices``
  int32 ``[layers, batch, reserved_length]``. The decoder mask is DeepSpeed's top-left
  ``r x r`` block of the given ``[batch or 1, 1, S, S]`` mask, correct for a pure
  causal mask only (the kept indices are sorted), not for padding or document masks;
  the encoder mask is, per layer and sample, the kept rows and columns,
  ``[layers, batch, 1, r, r]``. ``None`` without a mask. Masks keep the caller's
  dtype and convention (boolean "attend" or additive).
* :func:`gather_tokens` / :func:`scatter_tokens`: ``take_along_axis`` and
  ``.at[].set`` over one layer's ``[batch, r]`` indices, in either hidden-state order
  (``batch_first=True``: ``[B, S, H]``; ``False``: ``[S, B, H]``). The autodiff of the
  scatter is DeepSpeed's hand-written backward: kept positions get the gradient
  through the layer, dropped positions the identity gradient.

``reserved_length``, ``seq_length``, ``batch_size`` and ``layers`` are static Python
ints (shapes); a changed kept length is a new compilation (bucket it, see
``_buckets``). They are checked when traced, with ``TypeError``/``ValueError``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from algoperf_reinit import _validation

__all__ = [
    "bert_sample_tokens",
    "gather_mask",
    "gather_tokens",
    "gpt_sample_tokens",
    "sample_indices",
    "scatter_tokens",
]


def _sizes(reserved_length: int, seq_length: int, batch_size: int,
           layers: int) -> tuple[int, int, int, int]:
    seq = _validation.integer("seq_length", seq_length, minimum=1)
    kept = _validation.integer("reserved_length", reserved_length, minimum=0, maximum=seq,
                               fix="the kept length is at most the sequence length")
    batch = _validation.integer("batch_size", batch_size, minimum=1)
    return kept, seq, batch, _validation.integer("layers", layers, minimum=1)


def sample_indices(rng: jax.Array, reserved_length: int, seq_length: int, batch_size: int,
                   layers: int = 1) -> jax.Array:
    """Sorted uniform subsets of ``reserved_length`` of ``seq_length`` positions.

    Args:
      rng: a PRNG key.
      reserved_length: tokens kept per (layer, sample), static int in ``[0, seq_length]``.
      seq_length: positions to choose from, static int ``>= 1``.
      batch_size: samples, static int ``>= 1``.
      layers: random-LTD layers, static int ``>= 1``.

    Returns:
      int32 ``[layers, batch_size, reserved_length]``, each row strictly increasing.

    Example:
      >>> idx = sample_indices(jax.random.key(0), 3, 8, batch_size=2)
      >>> idx.shape, bool((jnp.diff(idx, axis=-1) > 0).all())
      ((1, 2, 3), True)
    """
    kept, seq, batch, layers = _sizes(reserved_length, seq_length, batch_size, layers)
    noise = jax.random.uniform(rng, (layers, batch, seq))
    _, chosen = jax.lax.top_k(noise, kept)
    return jnp.sort(chosen, axis=-1).astype(jnp.int32)


def _check_mask(mask: jax.Array, seq: int, batch: int) -> jax.Array:
    mask = jnp.asarray(mask)
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2:] != (seq, seq) or (
            mask.shape[0] not in (1, batch)):
        raise _validation.value_error(
            "attn_mask.shape", tuple(mask.shape),
            f"(batch or 1, 1, seq_length, seq_length) = ({batch} or 1, 1, {seq}, {seq})")
    return mask


def gpt_sample_tokens(rng: jax.Array, reserved_length: int, seq_length: int,
                      batch_size: int, layers: int = 1,
                      attn_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
    """DeepSpeed's decoder sampling: indices and the top-left ``r x r`` mask block.

    Args:
      rng: a PRNG key.
      reserved_length, seq_length, batch_size, layers: see :func:`sample_indices`.
      attn_mask: ``[batch or 1, 1, S, S]`` or ``None``.

    Returns:
      ``(sampled_indices int32 [layers, batch, r], attn_mask[:, :, :r, :r] or None)``.

    Raises:
      ValueError: for a mask of another shape, or out-of-range sizes.
    """
    kept, seq, batch, layers = _sizes(reserved_length, seq_length, batch_size, layers)
    indices = sample_indices(rng, kept, seq, batch, layers)
    if attn_mask is None:
        return indices, None
    return indices, _check_mask(attn_mask, seq, batch)[:, :, :kept, :kept]


def gather_mask(mask: jax.Array, sorted_indices: jax.Array) -> jax.Array:
    """The kept rows and columns of a per-sample mask.

    Args:
      mask: ``[batch or 1, heads or 1, S_q, S]`` with ``S_q`` either ``S`` (a full
        mask: rows and columns are gathered) or 1 (a key mask: columns only).
      sorted_indices: int ``[batch, r]``.

    Returns:
      ``[batch, heads or 1, r or 1, r]``, the mask's dtype.
    """
    batch, kept = sorted_indices.shape
    mask = jnp.broadcast_to(mask, (batch, *mask.shape[1:]))
    heads, rows = mask.shape[1], mask.shape[2]
    if rows != 1:
        row_idx = jnp.broadcast_to(sorted_indices[:, None, :, None],
                                   (batch, heads, kept, mask.shape[3]))
        mask = jnp.take_along_axis(mask, row_idx, axis=2)
    col_idx = jnp.broadcast_to(sorted_indices[:, None, None, :],
                               (batch, heads, mask.shape[2], kept))
    return jnp.take_along_axis(mask, col_idx, axis=3)


def bert_sample_tokens(rng: jax.Array, reserved_length: int, seq_length: int,
                       batch_size: int, layers: int = 1,
                       attn_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
    """DeepSpeed's encoder sampling: indices and per (layer, sample) gathered masks.

    Args:
      rng: a PRNG key.
      reserved_length, seq_length, batch_size, layers: see :func:`sample_indices`.
      attn_mask: ``[batch or 1, 1, S, S]`` or ``None``.

    Returns:
      ``(sampled_indices int32 [layers, batch, r], mask [layers, batch, 1, r, r] or
      None)`` with ``mask[l, b, 0] = attn_mask[b, 0][idx[l, b]][:, idx[l, b]]``.

    Raises:
      ValueError: for a mask of another shape, or out-of-range sizes.
    """
    kept, seq, batch, layers = _sizes(reserved_length, seq_length, batch_size, layers)
    indices = sample_indices(rng, kept, seq, batch, layers)
    if attn_mask is None:
        return indices, None
    mask = _check_mask(attn_mask, seq, batch)
    return indices, jax.vmap(lambda idx: gather_mask(mask, idx))(indices)


def _check_indices(sorted_indices: jax.Array, batch: int) -> jax.Array:
    if sorted_indices.ndim != 2 or sorted_indices.shape[0] != batch:
        raise _validation.value_error("sorted_indices.shape", tuple(sorted_indices.shape),
                                      f"(batch, r) with batch = {batch}",
                                      fix="pass one layer's slice sampled_indices[k]")
    return sorted_indices


def gather_tokens(activations: jax.Array, sorted_indices: jax.Array,
                  batch_first: bool = True) -> jax.Array:
    """The kept tokens of one layer (DeepSpeed's ``gather_tokens``, gathered part only).

    Args:
      activations: ``[B, S, H]`` (``batch_first``) or ``[S, B, H]``; any number of
        trailing dims (none, for positions ``[B, S]``).
      sorted_indices: int ``[B, r]``, one layer's slice of the sampled indices.
      batch_first: the hidden-state order (``batch_seq_dim`` is ``True``).

    Returns:
      ``[B, r, H]`` or ``[r, B, H]``.
    """
    activations = jnp.asarray(activations)
    trailing = (1,) * (activations.ndim - 2)
    if batch_first:
        idx = _check_indices(sorted_indices, activations.shape[0])
        return jnp.take_along_axis(activations, idx.reshape(*idx.shape, *trailing), axis=1)
    idx = _check_indices(sorted_indices, activations.shape[1]).T
    return jnp.take_along_axis(activations, idx.reshape(*idx.shape, *trailing), axis=0)


def scatter_tokens(all_activations: jax.Array, layer_activations: jax.Array,
                   sorted_indices: jax.Array, batch_first: bool = True) -> jax.Array:
    """``all_activations`` with the kept positions overwritten by the layer's output.

    Args:
      all_activations: ``[B, S, H]`` (``batch_first``) or ``[S, B, H]``: the layer input.
      layer_activations: ``[B, r, H]`` or ``[r, B, H]``: the layer's output on the
        gathered tokens.
      sorted_indices: int ``[B, r]``, unique per row.
      batch_first: the hidden-state order.

    Returns:
      An array like ``all_activations`` (dropped positions unchanged).
    """
    batch_axis = 0 if batch_first else 1
    idx = _check_indices(sorted_indices, all_activations.shape[batch_axis])
    rows = jnp.arange(idx.shape[0], dtype=idx.dtype)[:, None]
    where = (rows, idx) if batch_first else (idx.T, rows.T)
    values = layer_activations.astype(all_activations.dtype)
    return all_activations.at[where].set(values, indices_are_sorted=batch_first,
                                         unique_indices=True)
