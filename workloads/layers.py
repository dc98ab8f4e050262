"""Layers shared by the bundled workloads' models."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from algoperf_reinit_workloads import _validation as v

__all__ = ["Dropout"]


class Dropout(nn.Module):
    """Inverted dropout whose rate is a call argument.

    ``flax.linen.Dropout`` fixes its rate when the module is built, so changing
    the rate means a new module and a new compile. Here the rate is an input:
    a Python number equal to 0 skips the layer at trace time (no random bits
    drawn), anything else — including a traced scalar — is applied with a
    runtime rate, so a submission can change ``dropout_rate`` during training
    without recompiling as long as it passes it as an array.

    The random bits come from the ``'dropout'`` RNG stream.
    """

    @nn.compact
    def __call__(self, x: jax.Array, rate: jax.typing.ArrayLike, *, deterministic: bool) -> jax.Array:
        """Applies dropout.

        Args:
          x: input activations.
          rate: probability of zeroing an element, in ``[0, 1]``; Python number
            or scalar array.
          deterministic: if true, returns ``x`` unchanged (evaluation).

        Returns:
          ``x`` with each element zeroed with probability ``rate`` and the rest
          scaled by ``1 / (1 - rate)``.

        Raises:
          ValueError: for a concrete ``rate`` outside ``[0, 1]``.
          TypeError: for a bool ``rate``.
        """
        if isinstance(rate, int | float):
            if v.in_range("dropout rate", rate, 0.0, 1.0) == 0.0:
                return x
        if deterministic:
            return x
        keep_prob = 1.0 - jnp.asarray(rate, jnp.float32)
        keep = jax.random.bernoulli(self.make_rng("dropout"), keep_prob, x.shape)
        # rate == 1 keeps nothing; the safe divisor keeps gradients finite there.
        safe_keep_prob = jnp.where(keep_prob > 0.0, keep_prob, 1.0)
        return jnp.where(keep, x / safe_keep_prob.astype(x.dtype), jnp.zeros_like(x))
