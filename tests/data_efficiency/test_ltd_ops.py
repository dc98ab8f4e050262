"""random-LTD's ops (DeepSpeed's names): sampling, masks, gather and scatter."""

import doctest
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algoperf_reinit.data_efficiency import (
    _ltd_ops,
    bert_sample_tokens,
    gather_tokens,
    gpt_sample_tokens,
    sample_indices,
    scatter_tokens,
)


def test_doctests():
    assert doctest.testmod(_ltd_ops).failed == 0


def draw(seed, kept, seq, batch, layers=1):
    fn = jax.jit(sample_indices, static_argnums=(1, 2, 3, 4))
    return np.asarray(fn(jax.random.key(seed), kept, seq, batch, layers))


class TestSampleIndices:
    @pytest.mark.parametrize("kept,seq", [(1, 1), (3, 8), (8, 8), (5, 17), (0, 4)])
    def test_sorted_unique_in_range(self, kept, seq):
        idx = draw(0, kept, seq, batch=4, layers=3)
        assert idx.shape == (3, 4, kept) and idx.dtype == np.int32
        assert (np.diff(idx, axis=-1) > 0).all()
        assert ((idx >= 0) & (idx < seq)).all()

    def test_independent_per_layer_and_sample(self):
        idx = draw(1, 8, 64, batch=6, layers=5).reshape(30, 8)
        rows = {tuple(r) for r in idx}
        assert len(rows) == 30  # C(64, 8) subsets: any repeat would mean shared draws

    def test_each_position_kept_with_frequency_r_over_s(self):
        kept, seq, draws = 6, 16, 4000
        idx = draw(2, kept, seq, batch=draws)
        counts = np.bincount(idx.ravel(), minlength=seq)
        p = kept / seq
        sd = np.sqrt(draws * p * (1 - p))
        assert np.abs(counts - draws * p).max() < 5 * sd, counts

    def test_pairs_are_uniform_too(self):
        # Without replacement and uniform: every pair is kept with r(r-1)/(S(S-1)).
        kept, seq, draws = 3, 6, 6000
        idx = draw(3, kept, seq, batch=draws)[0]
        hit = np.zeros((draws, seq), bool)
        np.put_along_axis(hit, idx, True, axis=1)
        pair = (hit[:, :, None] & hit[:, None, :]).mean(0)[np.triu_indices(seq, 1)]
        p = kept * (kept - 1) / (seq * (seq - 1))
        assert np.abs(pair - p).max() < 5 * np.sqrt(p * (1 - p) / draws)

    @pytest.mark.parametrize("kwargs,exc,match", [
        (dict(reserved_length=9, seq_length=8), ValueError, "reserved_length must be"),
        (dict(reserved_length=-1, seq_length=8), ValueError, "reserved_length must be"),
        (dict(reserved_length=2.5, seq_length=8), TypeError, "reserved_length must be"),
        (dict(reserved_length=2, seq_length=0), ValueError, "seq_length must be"),
    ])
    def test_invalid_sizes(self, kwargs, exc, match):
        with pytest.raises(exc, match=match):
            sample_indices(jax.random.key(0), batch_size=2, **kwargs)


def causal(batch, seq):
    m = np.tril(np.ones((seq, seq), bool))
    return jnp.asarray(np.broadcast_to(m, (batch, 1, seq, seq)))


class TestMasks:
    def test_gpt_mask_is_the_top_left_block(self):
        mask = causal(1, 10)
        fn = jax.jit(gpt_sample_tokens, static_argnums=(1, 2, 3, 4))
        idx, new = fn(jax.random.key(0), 4, 10, 3, 2, mask)
        assert idx.shape == (2, 3, 4)
        np.testing.assert_array_equal(new, np.asarray(mask)[:, :, :4, :4])

    def test_gpt_top_left_equals_the_kept_positions_for_a_causal_mask(self):
        idx, new = gpt_sample_tokens(jax.random.key(4), 5, 12, 3, 1, causal(3, 12))
        pos = np.asarray(idx[0])
        own = pos[:, None, :, None] >= pos[:, None, None, :]
        np.testing.assert_array_equal(np.broadcast_to(new, own.shape), own)

    def test_bert_mask_gathers_rows_and_columns_per_layer_and_sample(self):
        rng = np.random.default_rng(0)
        batch, seq, kept, layers = 3, 9, 4, 2
        mask = jnp.asarray(rng.normal(size=(batch, 1, seq, seq)).astype(np.float32))
        fn = jax.jit(bert_sample_tokens, static_argnums=(1, 2, 3, 4))
        idx, new = fn(jax.random.key(1), kept, seq, batch, layers, mask)
        assert new.shape == (layers, batch, 1, kept, kept) and new.dtype == mask.dtype
        m, idx = np.asarray(mask), np.asarray(idx)
        for ell in range(layers):
            for b in range(batch):
                i = idx[ell, b]
                np.testing.assert_array_equal(new[ell, b, 0], m[b, 0][np.ix_(i, i)])

    def test_bert_broadcasts_a_mask_shared_by_the_batch(self):
        mask = causal(1, 7)
        idx, new = bert_sample_tokens(jax.random.key(2), 3, 7, 4, 1, mask)
        pos = np.asarray(idx[0])
        np.testing.assert_array_equal(new[0], pos[:, None, :, None] >= pos[:, None, None, :])

    @pytest.mark.parametrize("fn", [gpt_sample_tokens, bert_sample_tokens])
    def test_no_mask(self, fn):
        assert fn(jax.random.key(0), 2, 5, 3)[1] is None

    @pytest.mark.parametrize("fn", [gpt_sample_tokens, bert_sample_tokens])
    @pytest.mark.parametrize("shape", [(3, 1, 1, 8), (2, 1, 8, 8), (3, 8, 8)])
    def test_mask_of_the_wrong_shape(self, fn, shape):
        with pytest.raises(ValueError, match=r"attn_mask.shape must be \(batch or 1, 1"):
            fn(jax.random.key(0), 2, 8, 3, 1, jnp.ones(shape, bool))

    def test_same_key_same_indices_for_both_kinds(self):
        a, _ = gpt_sample_tokens(jax.random.key(7), 3, 9, 2, 2)
        b, _ = bert_sample_tokens(jax.random.key(7), 3, 9, 2, 2)
        np.testing.assert_array_equal(a, b)


def gather_oracle(x, idx, batch_first):
    x = np.asarray(x) if batch_first else np.swapaxes(np.asarray(x), 0, 1)
    out = np.stack([x[b, idx[b]] for b in range(len(idx))])
    return out if batch_first else np.swapaxes(out, 0, 1)


def scatter_oracle(x, y, idx, batch_first):
    x = np.array(x) if batch_first else np.swapaxes(np.array(x), 0, 1).copy()
    y = np.asarray(y) if batch_first else np.swapaxes(np.asarray(y), 0, 1)
    for b in range(len(idx)):
        for j, i in enumerate(idx[b]):
            x[b, i] = y[b, j]
    return x if batch_first else np.swapaxes(x, 0, 1)


@pytest.mark.parametrize("batch_first", [True, False])
class TestGatherScatter:
    batch, seq, kept, width = 3, 10, 4, 5

    def arrays(self, batch_first):
        rng = np.random.default_rng(0)
        shape = (self.batch, self.seq, self.width) if batch_first else (
            self.seq, self.batch, self.width)
        x = rng.normal(size=shape).astype(np.float32)
        idx = np.asarray(draw(5, self.kept, self.seq, self.batch))[0]
        return jnp.asarray(x), jnp.asarray(idx)

    def test_gather_against_a_loop(self, batch_first):
        x, idx = self.arrays(batch_first)
        got = jax.jit(gather_tokens, static_argnums=2)(x, idx, batch_first)
        np.testing.assert_array_equal(got, gather_oracle(x, np.asarray(idx), batch_first))

    def test_scatter_against_a_loop(self, batch_first):
        x, idx = self.arrays(batch_first)
        y = gather_tokens(x, idx, batch_first) * 3.0 + 1.0
        got = jax.jit(scatter_tokens, static_argnums=3)(x, y, idx, batch_first)
        np.testing.assert_array_equal(got, scatter_oracle(x, y, np.asarray(idx), batch_first))

    def test_scatter_of_the_gather_is_the_identity(self, batch_first):
        x, idx = self.arrays(batch_first)
        np.testing.assert_array_equal(
            scatter_tokens(x, gather_tokens(x, idx, batch_first), idx, batch_first), x)

    def test_gradients_are_deepspeeds_backward(self, batch_first):
        # d/dx of scatter(x, f(gather(x))): identity on dropped rows, f' on kept ones.
        x, idx = self.arrays(batch_first)
        cot = jnp.asarray(np.random.default_rng(1).normal(size=x.shape).astype(np.float32))

        def loss(x):
            y = jnp.sin(gather_tokens(x, idx, batch_first))
            return jnp.sum(scatter_tokens(x, y, idx, batch_first) * cot)

        grad = np.asarray(jax.jit(jax.grad(loss))(x))
        kept = np.zeros((self.batch, self.seq), bool)
        np.put_along_axis(kept, np.asarray(idx), True, axis=1)
        if not batch_first:
            kept = kept.T
        want = np.where(kept[..., None], np.cos(np.asarray(x)) * np.asarray(cot),
                        np.asarray(cot))
        np.testing.assert_allclose(grad, want, rtol=1e-6)

    def test_wrong_index_shape(self, batch_first):
        x, idx = self.arrays(batch_first)
        with pytest.raises(ValueError, match=r"sorted_indices.shape must be \(batch, r\)"):
            gather_tokens(x, idx[None], batch_first)
        with pytest.raises(ValueError, match="sampled_indices\\[k\\]"):
            scatter_tokens(x, x, idx[:1], batch_first)


def test_one_compilation_per_kept_length():
    traces = []

    @functools.partial(jax.jit, static_argnums=1)
    def step(key, kept):
        traces.append(kept)
        return sample_indices(key, kept, 16, 2)

    for seed in range(3):
        for kept in (4, 8):
            step(jax.random.key(seed), kept)
    assert traces == [4, 8]
