"""Evaluation of the bundled workloads: padded batches, weighted sums, means per split.

Each eval split is cut into batches of the eval batch size, the last one padded
with zero rows (so with zero ``weights``); one jitted function per batch size
returns the *weighted sums* of a batch (loss, correct predictions, the weight
total), and the means are ``fsum`` of the sums over ``fsum`` of the weights, so
padding never counts and the result does not depend on how the split is cut.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from algoperf_reinit_workloads import spec

__all__ = ["EVAL_SPLITS", "SPLIT_PREFIX", "batch_sums", "padded_batches", "split_means"]

EVAL_SPLITS = ("eval_train", "validation", "test")
SPLIT_PREFIX = {"eval_train": "train", "validation": "validation", "test": "test"}
"""``eval_model``'s key prefix for each eval split."""


def padded_batches(arrays: Mapping[str, np.ndarray], batch_size: int
                   ) -> list[dict[str, np.ndarray]]:
    """An eval split cut into batches of ``batch_size`` rows, the last one zero-padded.

    Padding rows are zeros in every array, so their ``weights`` are 0.

    Args:
      arrays: host arrays sharing their leading dimension (``inputs``, ...).
      batch_size: rows per batch.

    Returns:
      The batches, in order.
    """
    n = len(next(iter(arrays.values())))
    batches = []
    for start in range(0, math.ceil(n / batch_size) * batch_size, batch_size):
        batch = {}
        for name, value in arrays.items():
            chunk = value[start : start + batch_size]
            pad = batch_size - len(chunk)
            if pad:
                widths = [(0, pad)] + [(0, 0)] * (chunk.ndim - 1)
                chunk = np.pad(chunk, widths)  # zeros: padding rows get weight 0
            batch[name] = chunk
        batches.append(batch)
    return batches


def batch_sums(model_fn: Callable[..., Any], loss_fn: Callable[..., Any], params: Any,
               model_state: Any, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Weighted sums over one eval batch (traceable); ``num_valid`` is the denominator."""
    logits, _ = model_fn(params, batch, model_state, spec.ForwardPassMode.EVAL, rng=None,
                         update_batch_norm=False)
    weights = batch["weights"]
    loss = loss_fn(batch["targets"], logits, weights)
    correct = (jnp.argmax(logits, axis=-1) == batch["targets"]).astype(jnp.float32)
    return {
        "loss": loss["summed"],
        "accuracy": jnp.sum(correct * weights),
        "num_valid": loss["n_valid_examples"],
    }


def split_means(sums: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Means over a split from the :func:`batch_sums` of its batches (host floats)."""
    sums = jax.device_get(list(sums))
    totals = {k: math.fsum(float(s[k]) for s in sums) for k in sums[0]}
    denominator = totals.pop("num_valid")
    return {k: v / denominator for k, v in totals.items()}
