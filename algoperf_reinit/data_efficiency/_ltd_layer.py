"""The random-LTD layer: a flax linen wrapper that runs a block on a random subset of tokens.

:class:`RandomLTDBlock` (DeepSpeed's ``RandomLayerTokenDrop``) wraps a transformer
block. In training, with a kept length ``keep < S``, it draws for each sample an
independent uniform subset of ``keep`` positions without replacement, sorted
(:func:`~algoperf_reinit.data_efficiency.sample_indices`, from the ``'random_ltd'``
RNG stream, so each wrapped layer draws its own), gathers those tokens
(``take_along_axis``), applies the block to them and scatters its output back; the
dropped tokens bypass the block unchanged. In evaluation (``deterministic=True``),
with ``keep=None`` or ``keep >= S``, the block runs on every token.

**Masks.** The block's mask (second argument, ``[B or 1, heads or 1, S or 1, S]``) is
replaced by its kept rows and columns per sample (only columns for a ``[.., 1, S]``
key mask). For a mask built from token positions (our transformer's causal mask)
this is the mask of the kept tokens' own positions, which for a pure causal mask
equals DeepSpeed's top-left ``r x r`` slice and, unlike that slice, stays correct
for padding and document masks; an encoder's padding mask gets DeepSpeed's
``encoder`` treatment. ``token_args`` names keyword arguments holding per-token
arrays (positions for RoPE, per-token weights) that are gathered the same way
(DeepSpeed leaves them alone, so a layer that derives positions sees ``0..r-1``).

**Static kept length.** ``keep`` is a module attribute: a shape, so a new value is
a new compilation; the workload passes it as a static keyword of ``model_fn``.

**Parameters.** The wrapper shares the block's scope (``nn.share_scope``): the
parameters keep the dense model's names (DeepSpeed moves them under
``.random_ltd_layer.`` and strips that again to save), so the same params run
with and without random-LTD. The kept indices of each call are sown into the
``'intermediates'`` collection as ``random_ltd_indices`` (free unless that
collection is mutable).

**Layer ids** are matched exactly as integers by :func:`random_ltd_block_factory`
(DeepSpeed binds a wrapper when the id's string is a *substring* of the module
name, so ``2`` also matches ``12``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import flax.linen as nn
import jax

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_routing import (
    RANDOM_LTD_HIDDEN_STATE_ORDERS,
    RandomLTDConfig,
)
from algoperf_reinit.data_efficiency._ltd_ops import (
    gather_mask,
    gather_tokens,
    sample_indices,
    scatter_tokens,
)

__all__ = ["RANDOM_LTD_RNG", "BlockFactory", "RandomLTDBlock", "random_ltd_block_factory"]

RANDOM_LTD_RNG = "random_ltd"
"""The flax RNG stream the kept tokens are drawn from."""

BlockFactory = Callable[[int, nn.Module, "int | None"], nn.Module]
"""``factory(layer_id, block, keep) -> module``: how a model lets layers be wrapped."""


def check_keep(keep: Any) -> int | None:
    """``keep`` if it is ``None`` or an int ``>= 0`` (``TypeError``/``ValueError``)."""
    return _validation.optional(_validation.integer, "random_ltd_keep", keep, minimum=0)


class RandomLTDBlock(nn.Module):
    """A block that, in training, sees only ``keep`` random tokens of each sample.

    Attributes:
      block: the wrapped block, called as ``block(x, mask, *args, deterministic=...,
        **kwargs)``; it may return an array or a tuple whose first element is the
        hidden states (the other elements are returned unchanged).
      keep: tokens kept per sample (static); ``None`` runs the block densely.
      batch_first: ``True`` for ``[B, S, H]`` (DeepSpeed's ``batch_seq_dim``), ``False``
        for ``[S, B, H]`` (``seq_batch_dim``). Masks and ``token_args`` are batch-first.
      token_args: keyword arguments with per-token arrays ``[B, S, ...]`` to gather.
    """

    block: nn.Module
    keep: int | None = None
    batch_first: bool = True
    token_args: tuple[str, ...] = ()

    def setup(self) -> None:
        nn.share_scope(self, self.block)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None, *args: Any,
                 deterministic: bool = True, **kwargs: Any) -> Any:
        """Applies the block to the kept tokens (all of them in eval or when ``keep >= S``).

        Args:
          x: hidden states ``[B, S, H]`` or ``[S, B, H]``.
          mask: the block's attention mask (see the module docstring) or ``None``.
          *args: further positional arguments of the block.
          deterministic: evaluation mode (no dropping), forwarded to the block.
          **kwargs: further keyword arguments of the block.

        Returns:
          The block's output with the dropped positions equal to ``x``.
        """
        keep = check_keep(self.keep)
        seq_axis, batch_axis = (1, 0) if self.batch_first else (0, 1)
        if deterministic or keep is None or keep >= x.shape[seq_axis]:
            return self.block(x, mask, *args, deterministic=deterministic, **kwargs)
        idx = sample_indices(self.make_rng(RANDOM_LTD_RNG), keep, x.shape[seq_axis],
                             x.shape[batch_axis])[0]
        self.sow("intermediates", "random_ltd_indices", idx)
        for name in self.token_args:
            kwargs[name] = gather_tokens(kwargs[name], idx)
        kept_mask = None if mask is None else gather_mask(mask, idx)
        out = self.block(gather_tokens(x, idx, self.batch_first), kept_mask, *args,
                         deterministic=deterministic, **kwargs)
        if isinstance(out, tuple):
            return (scatter_tokens(x, out[0], idx, self.batch_first), *out[1:])
        return scatter_tokens(x, out, idx, self.batch_first)


def _layer_ids(layer_ids: Iterable[int]) -> frozenset[int]:
    if isinstance(layer_ids, str) or not isinstance(layer_ids, Iterable):
        raise _validation.type_error("layer_ids", layer_ids, "an iterable of ints")
    ids = [_validation.integer(f"layer_ids[{i}]", v, minimum=0)
           for i, v in enumerate(layer_ids)]
    if len(set(ids)) != len(ids):
        raise _validation.value_error("layer_ids", list(layer_ids), "unique")
    return frozenset(ids)


def random_ltd_block_factory(layer_ids: Iterable[int], *,
                             hidden_state_order: str = "batch_seq_dim",
                             token_args: Iterable[str] = ()) -> BlockFactory:
    """A block factory that wraps exactly the layers ``layer_ids`` in :class:`RandomLTDBlock`.

    Args:
      layer_ids: 0-based ids of the layers that drop tokens (ints, compared exactly).
      hidden_state_order: ``batch_seq_dim`` or ``seq_batch_dim``.
      token_args: see :class:`RandomLTDBlock`.

    Returns:
      ``factory(layer_id, block, keep)``: ``RandomLTDBlock(block, keep)`` for a listed
      id, ``block`` itself otherwise.

    Raises:
      TypeError, ValueError: for ids that are not unique ints ``>= 0``, or an unknown
        order.

    Example:
      >>> factory = random_ltd_block_factory([1, 2])
      >>> [type(factory(i, nn.Dense(4), 8)).__name__ for i in (0, 1, 2, 12)]
      ['Dense', 'RandomLTDBlock', 'RandomLTDBlock', 'Dense']
    """
    ids = _layer_ids(layer_ids)
    order = _validation.choice("hidden_state_order", hidden_state_order,
                               RANDOM_LTD_HIDDEN_STATE_ORDERS)
    names = tuple(token_args)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise _validation.type_error(f"token_args[{i}]", name, "a keyword name (str)")

    def factory(layer_id: int, block: nn.Module, keep: int | None) -> nn.Module:
        layer_id = _validation.integer("layer_id", layer_id, minimum=0)
        if layer_id not in ids:
            return block
        return RandomLTDBlock(block, keep=check_keep(keep),
                              batch_first=order == "batch_seq_dim", token_args=names)

    return factory


def block_factory_from_config(config: RandomLTDConfig) -> BlockFactory:
    """:func:`random_ltd_block_factory` for a ``random_ltd`` configuration.

    Raises:
      ValueError: when ``random_ltd_layer_id`` is not given.
    """
    config = _validation.instance("config", config, RandomLTDConfig)
    if config.random_ltd_layer_id is None:
        raise _validation.value_error(f"{config.key_path}.random_ltd_layer_id", None,
                                      "given to wrap layers",
                                      fix="list the 0-based ids of the layers that drop tokens")
    return random_ltd_block_factory(config.random_ltd_layer_id,
                                    hidden_state_order=config.hidden_state_order
                                    or "batch_seq_dim")
