"""The bundled workloads' loss: softmax cross-entropy with AlgoPerf's three outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["softmax_cross_entropy"]


def softmax_cross_entropy(
    label_batch: jax.Array,
    logits_batch: jax.Array,
    mask_batch: jax.Array | None = None,
    label_smoothing: float = 0.0,
) -> dict[str, jax.Array]:
    """Softmax cross-entropy over the last axis of the logits (no regulariser).

    Args:
      label_batch: integer class ids, shape ``logits_batch.shape[:-1]``.
      logits_batch: unnormalised scores ``(..., num_classes)``.
      mask_batch: optional weights of the same shape as ``label_batch``
        (``batch['weights']``); rows/tokens with weight 0 do not count.
      label_smoothing: mass spread uniformly over the classes.

    Returns:
      ``summed`` (scalar), ``n_valid_examples`` (scalar float32: the sum of the
      weights, or the number of labels without a mask) and ``per_example``
      (losses times weights, shape of ``label_batch``). The mean loss is
      ``summed / n_valid_examples``.

    Raises:
      ValueError: if the shapes do not line up.
    """
    if tuple(label_batch.shape) != tuple(logits_batch.shape[:-1]):
        raise ValueError(
            f"label_batch shape {label_batch.shape} must equal logits_batch shape "
            f"{logits_batch.shape} without its last (class) axis"
        )
    num_classes = logits_batch.shape[-1]
    log_probs = jax.nn.log_softmax(logits_batch.astype(jnp.float32), axis=-1)
    targets = jax.nn.one_hot(label_batch, num_classes, dtype=jnp.float32)
    if not (isinstance(label_smoothing, int | float) and label_smoothing == 0.0):
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    per_example = -jnp.sum(targets * log_probs, axis=-1)
    if mask_batch is None:
        n_valid = jnp.asarray(per_example.size, jnp.float32)
    else:
        if tuple(mask_batch.shape) != tuple(per_example.shape):
            raise ValueError(
                f"mask_batch shape {mask_batch.shape} must equal label_batch shape "
                f"{label_batch.shape}"
            )
        mask = jnp.asarray(mask_batch, jnp.float32)
        # where, not only *: a padding row's NaN/inf loss must not leak into the sum.
        per_example = jnp.where(mask > 0, per_example * mask, 0.0)
        n_valid = jnp.sum(mask)
    return {"summed": jnp.sum(per_example), "n_valid_examples": n_valid, "per_example": per_example}
