"""RandomLTDBlock: the block on kept tokens, dropped tokens untouched, exact gradients."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from algoperf_reinit_workloads.transformer import DecoderBlock, causal_mask

from algoperf_reinit.data_efficiency import (
    RandomLTDBlock,
    RandomLTDConfig,
    _ltd_layer,
    block_factory_from_config,
    gather_mask,
    gather_tokens,
    random_ltd_block_factory,
    scatter_tokens,
)
from algoperf_reinit.data_efficiency._config_common import RANDOM_LTD_PATH, Block

B, S, D, HEADS, MLP = 3, 12, 16, 4, 32


def test_doctests():
    assert doctest.testmod(_ltd_layer).failed == 0


def inputs(seed=0, batch=B, seq=S):
    x = jax.random.normal(jax.random.key(seed), (batch, seq, D))
    positions = jnp.broadcast_to(jnp.arange(seq, dtype=jnp.int32), (batch, seq))
    return x, positions


def init(module, x, mask):
    return module.init({"params": jax.random.key(1)}, x, mask)


def run(module, params, x, mask, seed=2, **kwargs):
    """Training forward; returns the output and the indices the wrapper drew."""
    out, state = module.apply(params, x, mask, deterministic=False,
                              rngs={"random_ltd": jax.random.key(seed)},
                              mutable=["intermediates"], **kwargs)
    (idx,) = state["intermediates"]["random_ltd_indices"]
    return out, idx


def reference(params, x, positions, idx):
    """The block applied to the gathered tokens, with the kept positions' causal mask."""
    xk = gather_tokens(x, idx)
    yk = DecoderBlock(HEADS, MLP).apply(params, xk, causal_mask(gather_tokens(positions, idx)))
    return scatter_tokens(x, yk, idx)


@pytest.fixture(scope="module")
def decoder():
    x, positions = inputs()
    mask = causal_mask(positions)
    wrapped = RandomLTDBlock(DecoderBlock(HEADS, MLP), keep=5)
    params = init(DecoderBlock(HEADS, MLP), x, mask)
    out, idx = jax.jit(lambda p, x: run(wrapped, p, x, mask))(params, x)
    return dict(x=x, positions=positions, mask=mask, wrapped=wrapped, params=params,
                out=np.asarray(out), idx=np.asarray(idx))


class TestDecoder:
    def test_same_parameters_as_the_dense_block(self, decoder):
        mine = init(decoder["wrapped"], decoder["x"], decoder["mask"])
        assert jax.tree.structure(mine) == jax.tree.structure(decoder["params"])

    def test_indices_sorted_unique_in_range(self, decoder):
        idx = decoder["idx"]
        assert idx.shape == (B, 5) and (np.diff(idx, axis=1) > 0).all()
        assert ((idx >= 0) & (idx < S)).all()
        assert len({tuple(r) for r in idx}) == B  # drawn per sample

    def test_dropped_positions_are_bit_identical(self, decoder):
        dropped = np.ones((B, S), bool)
        np.put_along_axis(dropped, decoder["idx"], False, axis=1)
        np.testing.assert_array_equal(decoder["out"][dropped], np.asarray(decoder["x"])[dropped])

    def test_kept_positions_are_the_block_on_the_gathered_tokens(self, decoder):
        want = reference(decoder["params"], decoder["x"], decoder["positions"],
                         jnp.asarray(decoder["idx"]))
        np.testing.assert_allclose(decoder["out"], want, rtol=1e-5, atol=1e-6)
        # and not the dense block's output at those positions
        dense = DecoderBlock(HEADS, MLP).apply(decoder["params"], decoder["x"], decoder["mask"])
        kept = np.take_along_axis(np.asarray(dense), decoder["idx"][..., None], axis=1)
        got = np.take_along_axis(decoder["out"], decoder["idx"][..., None], axis=1)
        assert np.abs(kept - got).max() > 1e-3

    def test_gradients_equal_the_dense_reference(self, decoder):
        x, params, mask = decoder["x"], decoder["params"], decoder["mask"]
        idx = jnp.asarray(decoder["idx"])
        cot = jax.random.normal(jax.random.key(9), x.shape)

        def ltd(p, x):
            return jnp.sum(run(decoder["wrapped"], p, x, mask)[0] * cot)

        def ref(p, x):
            return jnp.sum(reference(p, x, decoder["positions"], idx) * cot)

        got = jax.jit(jax.grad(ltd, argnums=(0, 1)))(params, x)
        want = jax.jit(jax.grad(ref, argnums=(0, 1)))(params, x)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)

    def test_mask_is_the_kept_positions_causal_mask(self, decoder):
        idx = jnp.asarray(decoder["idx"])
        np.testing.assert_array_equal(
            gather_mask(decoder["mask"], idx),
            causal_mask(gather_tokens(decoder["positions"], idx)))

    @pytest.mark.parametrize("keep", [None, S, S + 4])
    def test_pass_through_without_dropping(self, decoder, keep):
        wrapped = RandomLTDBlock(DecoderBlock(HEADS, MLP), keep=keep)
        dense = DecoderBlock(HEADS, MLP).apply(decoder["params"], decoder["x"], decoder["mask"])
        got = wrapped.apply(decoder["params"], decoder["x"], decoder["mask"],
                            deterministic=False)  # no 'random_ltd' RNG needed
        np.testing.assert_array_equal(got, dense)

    def test_eval_mode_passes_through(self, decoder):
        dense = DecoderBlock(HEADS, MLP).apply(decoder["params"], decoder["x"], decoder["mask"])
        got = decoder["wrapped"].apply(decoder["params"], decoder["x"], decoder["mask"],
                                       deterministic=True)
        np.testing.assert_array_equal(got, dense)

    def test_each_position_kept_with_frequency_r_over_s(self):
        x, _ = inputs(batch=500)
        wrapped = RandomLTDBlock(Plain(), keep=5)
        params = init(wrapped, x, None)
        _, idx = jax.jit(lambda p, x: run(wrapped, p, x, None, seed=5))(params, x)
        counts = np.bincount(np.asarray(idx).ravel(), minlength=S)
        p, n = 5 / S, 500
        assert np.abs(counts - n * p).max() < 5 * np.sqrt(n * p * (1 - p)), counts

    def test_new_draw_per_key(self, decoder):
        _, a = run(decoder["wrapped"], decoder["params"], decoder["x"], decoder["mask"], seed=3)
        _, b = run(decoder["wrapped"], decoder["params"], decoder["x"], decoder["mask"], seed=4)
        assert not np.array_equal(a, b)


class Plain(nn.Module):
    """A cheap block: a Dense layer that ignores the mask."""

    @nn.compact
    def __call__(self, x, mask, *, deterministic=True):
        del mask, deterministic
        return nn.Dense(D)(x)


class TwoLayers(nn.Module):
    keep: int

    @nn.compact
    def __call__(self, x, mask):
        for _ in range(2):
            x = RandomLTDBlock(Plain(), keep=self.keep)(x, mask, deterministic=False)
        return x


def test_layers_draw_independently():
    x, _ = inputs()
    model = TwoLayers(keep=4)
    mask = None
    params = model.init({"params": jax.random.key(0), "random_ltd": jax.random.key(1)}, x, mask)
    _, state = model.apply(params, x, mask, rngs={"random_ltd": jax.random.key(2)},
                           mutable=["intermediates"])
    first, second = (np.asarray(v["random_ltd_indices"][0])
                     for v in state["intermediates"].values())
    assert not np.array_equal(first, second)


class PaddedEncoderBlock(nn.Module):
    """A bidirectional block (the decoder block under a non-causal mask)."""

    @nn.compact
    def __call__(self, x, mask, *, deterministic=True):
        return DecoderBlock(HEADS, MLP)(x, mask, deterministic=deterministic)


@pytest.mark.parametrize("key_mask", [False, True])
def test_encoder_padding_mask_rows_and_columns(key_mask):
    x, _ = inputs()
    valid = jnp.arange(S)[None, :] < jnp.asarray([[S], [7], [3]])
    mask = valid[:, None, None, :] if key_mask else (
        valid[:, None, :, None] & valid[:, None, None, :])
    block = PaddedEncoderBlock()
    params = init(block, x, mask)
    out, idx = jax.jit(lambda p, x: run(RandomLTDBlock(block, keep=6), p, x, mask))(params, x)
    kept_mask = gather_mask(mask, idx)
    assert kept_mask.shape == ((B, 1, 1, 6) if key_mask else (B, 1, 6, 6))
    want = scatter_tokens(x, block.apply(params, gather_tokens(x, idx), kept_mask), idx)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


class SeqFirstBlock(nn.Module):
    """The decoder block on ``[S, B, H]`` hidden states (DeepSpeed's seq_batch_dim)."""

    @nn.compact
    def __call__(self, x, mask, *, deterministic=True):
        y = DecoderBlock(HEADS, MLP)(x.swapaxes(0, 1), mask, deterministic=deterministic)
        return y.swapaxes(0, 1)


def test_seq_batch_dim_order():
    x, positions = inputs()
    mask = causal_mask(positions)
    block = SeqFirstBlock()
    xs = x.swapaxes(0, 1)
    params = init(block, xs, mask)
    out, idx = run(RandomLTDBlock(block, keep=5, batch_first=False), params, xs, mask)
    assert out.shape == (S, B, D)
    want = scatter_tokens(xs, block.apply(params, gather_tokens(xs, idx, False),
                                          gather_mask(mask, idx)), idx, False)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    dropped = np.ones((B, S), bool)
    np.put_along_axis(dropped, np.asarray(idx), False, axis=1)
    np.testing.assert_array_equal(np.asarray(out)[dropped.T], np.asarray(xs)[dropped.T])


class TupleBlock(nn.Module):
    @nn.compact
    def __call__(self, x, mask, *, deterministic=True, scale=None):
        del mask, deterministic
        return nn.Dense(D)(x) * scale[..., None], "aux"


def test_tuple_output_and_token_args():
    x, _ = inputs()
    scale = jax.random.uniform(jax.random.key(3), (B, S))
    block = TupleBlock()
    params = block.init(jax.random.key(0), x, None, scale=scale)
    (out, aux), idx = run(RandomLTDBlock(block, keep=4, token_args=("scale",)), params, x,
                          None, scale=scale)
    assert aux == "aux"
    yk, _ = block.apply(params, gather_tokens(x, idx), None, scale=gather_tokens(scale, idx))
    np.testing.assert_allclose(out, scatter_tokens(x, yk, idx), rtol=1e-6)


class TestFactory:
    def test_exact_ids(self):
        factory = random_ltd_block_factory([2])
        wrapped = [i for i in range(30) if isinstance(factory(i, nn.Dense(2), 4),
                                                      RandomLTDBlock)]
        assert wrapped == [2]  # DeepSpeed's substring match would also take 12 and 20-29

    def test_keep_and_order_reach_the_wrapper(self):
        w = random_ltd_block_factory([0], hidden_state_order="seq_batch_dim")(0, nn.Dense(2), 7)
        assert (w.keep, w.batch_first) == (7, False)

    def test_from_config(self):
        config = RandomLTDConfig.from_dict(Block(RANDOM_LTD_PATH, {
            "enabled": True, "total_layer_num": 4, "random_ltd_layer_num": 2,
            "random_ltd_layer_id": [1, 2], "global_batch_size": 2,
            "random_ltd_schedule": {"min_value": 4, "max_value": 8,
                                    "schedule_type": "fixed_linear",
                                    "schedule_config": {"require_steps": 4,
                                                        "seq_per_step": 2}}}))
        factory = block_factory_from_config(config)
        assert [isinstance(factory(i, nn.Dense(2), 4), RandomLTDBlock)
                for i in range(4)] == [False, True, True, False]
        with pytest.raises(ValueError, match=r"random_ltd.random_ltd_layer_id must be given"):
            block_factory_from_config(config.__class__(**{
                **{f: getattr(config, f) for f in ("enabled", "total_layer_num",
                                                   "random_ltd_layer_num",
                                                   "random_ltd_schedule")}}))

    @pytest.mark.parametrize("ids,exc,match", [
        ([1, 1], ValueError, "layer_ids must be unique"),
        ([-1], ValueError, r"layer_ids\[0\] must be"),
        (["1"], TypeError, r"layer_ids\[0\] must be"),
        ("12", TypeError, "layer_ids must be an iterable of ints"),
    ])
    def test_invalid_ids(self, ids, exc, match):
        with pytest.raises(exc, match=match):
            random_ltd_block_factory(ids)

    def test_invalid_order_and_keep(self):
        with pytest.raises(ValueError, match="hidden_state_order must be one of"):
            random_ltd_block_factory([0], hidden_state_order="batch_first")
        with pytest.raises(TypeError, match="random_ltd_keep must be"):
            random_ltd_block_factory([0])(0, nn.Dense(2), 4.0)
        with pytest.raises(TypeError, match="layer_id must be"):
            random_ltd_block_factory([0])("0", nn.Dense(2), 4)
