"""A small decoder-only transformer (pre-LN, learned positions) in flax linen.

Structure, with the parameter names that ``model_params_types`` reads::

    token_embed/embedding        (vocab, d)          EMBEDDING
    pos_embed/embedding          (max_len, d)        EMBEDDING
    layers_<i>/                  one DecoderBlock per layer, i = 0 .. num_layers-1
      ln_attention/{scale,bias}                       LAYER_NORM_SCALE / _BIAS
      attention/{query,key,value,out}/kernel (d, d)  ATTENTION_Q / _K / _V / _OUT
      attention/{query,key,value,out}/bias   (d,)    ATTENTION_BIAS
      ln_mlp/{scale,bias}                             LAYER_NORM_SCALE / _BIAS
      mlp_in/kernel (d, mlp_dim), mlp_out/kernel (mlp_dim, d)   WEIGHT (+ BIAS)
    ln_final/{scale,bias}                             LAYER_NORM_SCALE / _BIAS
    output/{kernel,bias}         (d, vocab)          WEIGHT / BIAS  (untied from the embedding)

Every token carries an explicit *position*: the causal mask is built from the
positions (``query position >= key position``), not from array order, and the
positional embedding is looked up by position. So a layer can run on any
subset of the tokens (random-LTD keeps a sorted random subset in the middle
layers), and the model runs on any sequence length up to ``max_len``
(sequence-length curricula). The layers are a list, applied in a plain loop.

``block_factory(layer_id, block, keep)`` (optional) may replace the block of any layer,
e.g. by random-LTD's wrapper for chosen layer ids; it receives the model's
``random_ltd_keep`` (a static kept length, ``None`` when no tokens are dropped) and
must keep the block's call signature ``(x, mask, *, dropout_rate, deterministic)``.
Wrapped blocks draw their randomness from the ``'random_ltd'`` RNG stream. This
module does not import the library: the factory comes from the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from algoperf_reinit_workloads import _validation as v
from algoperf_reinit_workloads.layers import Dropout

__all__ = ["CausalSelfAttention", "DecoderBlock", "TransformerLM", "causal_mask"]

_EMBED_INIT = nn.initializers.normal(stddev=0.02)


def causal_mask(positions: jax.Array) -> jax.Array:
    """Attention mask from token positions.

    Args:
      positions: int array ``(batch, length)``.

    Returns:
      bool ``(batch, 1, length, length)``: ``[b, 0, q, k]`` is true iff token ``k``
      may be attended by token ``q`` (``positions[b, k] <= positions[b, q]``).
    """
    return (positions[:, None, :, None] >= positions[:, None, None, :])


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with separate ``query``/``key``/``value``/``out`` projections.

    Attributes:
      num_heads: number of heads; must divide the model width.
    """

    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        batch, length, width = x.shape
        head_dim = width // self.num_heads

        def heads(name: str) -> jax.Array:
            return nn.Dense(width, name=name)(x).reshape(batch, length, self.num_heads, head_dim)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_dim)
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, width)
        return nn.Dense(width, name="out")(out)


class DecoderBlock(nn.Module):
    """Pre-LN block: ``x + drop(attn(ln(x)))``, then ``x + drop(mlp(ln(x)))``.

    Attributes:
      num_heads: attention heads.
      mlp_dim: hidden width of the GELU MLP.
    """

    num_heads: int
    mlp_dim: int

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array,
        *,
        dropout_rate: jax.typing.ArrayLike = 0.0,
        deterministic: bool = True,
    ) -> jax.Array:
        """Applies the block to ``x (batch, length, width)`` under ``mask`` (see :func:`causal_mask`)."""
        width = x.shape[-1]
        h = nn.LayerNorm(name="ln_attention")(x)
        h = CausalSelfAttention(self.num_heads, name="attention")(h, mask)
        x = x + Dropout(name="dropout_attention")(h, dropout_rate, deterministic=deterministic)
        h = nn.LayerNorm(name="ln_mlp")(x)
        h = nn.gelu(nn.Dense(self.mlp_dim, name="mlp_in")(h))
        h = nn.Dense(width, name="mlp_out")(h)
        return x + Dropout(name="dropout_mlp")(h, dropout_rate, deterministic=deterministic)


class TransformerLM(nn.Module):
    """Decoder-only language model over a small vocabulary (bytes by default).

    Attributes:
      vocab_size: number of token ids.
      max_len: number of learned positions (longest sequence).
      width: model width ``d``.
      num_layers: number of :class:`DecoderBlock`.
      num_heads: attention heads per block.
      mlp_dim: MLP hidden width.
      block_factory: ``(layer_id, block, keep) -> module`` or ``None`` (plain blocks).
      random_ltd_keep: kept length passed to ``block_factory`` (static), or ``None``.
    """

    vocab_size: int = 256
    max_len: int = 128
    width: int = 128
    num_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 512
    block_factory: Callable[[int, nn.Module, int | None], nn.Module] | None = None
    random_ltd_keep: int | None = None

    def setup(self) -> None:
        if self.width % self.num_heads:
            raise v.value_error("num_heads", self.num_heads, f"a divisor of width={self.width}")
        self.token_embed = nn.Embed(self.vocab_size, self.width, embedding_init=_EMBED_INIT)
        self.pos_embed = nn.Embed(self.max_len, self.width, embedding_init=_EMBED_INIT)
        self.layers = [self._block(i) for i in range(self.num_layers)]
        self.ln_final = nn.LayerNorm()
        self.output = nn.Dense(self.vocab_size)
        self.embed_dropout = Dropout()

    def _block(self, layer_id: int) -> nn.Module:
        block = DecoderBlock(self.num_heads, self.mlp_dim)
        if self.block_factory is None:
            return block
        return self.block_factory(layer_id, block, self.random_ltd_keep)

    def embed(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        *,
        dropout_rate: jax.typing.ArrayLike = 0.0,
        deterministic: bool = True,
    ) -> jax.Array:
        """Token plus positional embedding ``(batch, length, width)``, then dropout."""
        x = self.token_embed(tokens) + self.pos_embed(positions)
        return self.embed_dropout(x, dropout_rate, deterministic=deterministic)

    def unembed(self, x: jax.Array) -> jax.Array:
        """Final LayerNorm and output projection: logits ``(batch, length, vocab)``."""
        return self.output(self.ln_final(x))

    def __call__(
        self,
        tokens: jax.Array,
        *,
        positions: jax.Array | None = None,
        dropout_rate: jax.typing.ArrayLike = 0.0,
        train: bool = False,
    ) -> jax.Array:
        """Next-token logits.

        Args:
          tokens: int ``(batch, length)``, ``length <= max_len``.
          positions: int ``(batch, length)``; defaults to ``0 .. length-1``.
          dropout_rate: residual and embedding dropout (TRAIN only).
          train: enables dropout (needs a ``'dropout'`` RNG when the rate is not 0).

        Returns:
          float32 logits ``(batch, length, vocab_size)``.
        """
        batch, length = tokens.shape
        if length > self.max_len:
            raise v.value_error("sequence length", length, f"<= max_len={self.max_len}")
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
        deterministic = not train
        x = self.embed(tokens, positions, dropout_rate=dropout_rate, deterministic=deterministic)
        mask = causal_mask(positions)
        for layer in self.layers:
            x = layer(x, mask, dropout_rate=dropout_rate, deterministic=deterministic)
        return self.unembed(x)
