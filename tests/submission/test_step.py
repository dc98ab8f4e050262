"""make_train_step: one compile per run, replicated state, a sharded batch, donated state
buffers, global-norm clipping and the dropout argument, on a linear model with an oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from algoperf_reinit_workloads import spec
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from algoperf_reinit.submission import (
    StepOutput,
    batch_mesh,
    batch_sharded,
    make_train_step,
    replicated,
)

BATCH, FEATURES, OUTPUTS = 8, 3, 2
LR = 0.1
NO_DROPOUT = "not passed"


class Linear:
    """The slice of AlgoPerf's Workload a train step uses: logits = x @ w, squared error."""

    def __init__(self):
        self.traced_kwargs = []  # the dropout argument model_fn saw, once per trace

    def model_fn(self, params, batch, model_state, mode, rng, update_batch_norm,
                 dropout_rate=NO_DROPOUT):
        assert mode == spec.ForwardPassMode.TRAIN and update_batch_norm
        self.traced_kwargs.append(dropout_rate is not NO_DROPOUT)
        logits = batch["inputs"] @ params["w"]
        if dropout_rate is not NO_DROPOUT:  # stands in for dropout: scales the activations
            logits = logits * (1.0 - dropout_rate)
        return logits, {"calls": model_state["calls"] + 1}

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing=0.0):
        per_example = jnp.sum((logits_batch - label_batch) ** 2, axis=-1) * (1.0 + label_smoothing)
        weights = jnp.ones(per_example.shape) if mask_batch is None else mask_batch
        return {"summed": jnp.sum(per_example * weights), "n_valid_examples": jnp.sum(weights),
                "per_example": per_example}


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return {"inputs": rng.normal(size=(BATCH, FEATURES)).astype(np.float32),
            "targets": rng.normal(size=(BATCH, OUTPUTS)).astype(np.float32)}


def params(seed=1):
    """Host arrays: each run puts (and donates) its own device copies."""
    return {"w": np.random.default_rng(seed).normal(size=(FEATURES, OUTPUTS)).astype(np.float32)}


def oracle_grad(w, b, dropout_rate=None, label_smoothing=0.0):
    """The gradient of the mean squared error, by hand (numpy, float64)."""
    x, y = np.asarray(b["inputs"], np.float64), np.asarray(b["targets"], np.float64)
    w = np.asarray(w, np.float64)
    keep = 1.0 if dropout_rate is None else 1.0 - dropout_rate
    residual = x @ w * keep - y
    return 2.0 * keep * (1.0 + label_smoothing) * x.T @ residual / len(x)


def run(step, p, b, *, label_smoothing=0.0, dropout_rate=0.0, grad_clip=0.0, tx=None):
    tx = tx or optax.sgd(LR)
    state = (jax.device_put(p, replicated()), {"calls": jax.device_put(jnp.int32(0), replicated())},
             jax.device_put(tx.init(p), replicated()))
    out = step(*state, b, jax.random.PRNGKey(0), np.float32(label_smoothing),
               np.float32(dropout_rate), np.float32(grad_clip))
    return state, out


class TestMakeTrainStep:
    def test_one_sgd_step_matches_the_oracle(self):
        workload, p, b = Linear(), params(), batch()
        step = make_train_step(workload, optax.sgd(LR), use_dropout_arg=False)
        _, out = run(step, p, b, label_smoothing=0.1)
        assert isinstance(out, StepOutput)
        grad = oracle_grad(p["w"], b, label_smoothing=0.1)
        np.testing.assert_allclose(out.params["w"], np.asarray(p["w"]) - LR * grad, rtol=1e-5)
        np.testing.assert_allclose(out.grad_norm, np.linalg.norm(grad), rtol=1e-5)
        x, y, w = b["inputs"], b["targets"], np.asarray(p["w"])
        np.testing.assert_allclose(out.loss, 1.1 * np.mean(np.sum((x @ w - y) ** 2, -1)),
                                   rtol=1e-5)
        assert int(out.model_state["calls"]) == 1

    def test_compiles_once_for_new_values(self):
        workload = Linear()
        step = make_train_step(workload, optax.sgd(LR), use_dropout_arg=True)
        for seed, (smoothing, dropout, clip) in enumerate([(0.0, 0.0, 0.0), (0.1, 0.5, 1e-3),
                                                           (0.2, 0.1, 10.0)]):
            run(step, params(seed), batch(seed), label_smoothing=smoothing, dropout_rate=dropout,
                grad_clip=clip)
        assert step._cache_size() == 1
        assert workload.traced_kwargs == [True]  # traced once

    def test_state_is_replicated_and_the_batch_sharded(self):
        step = make_train_step(Linear(), optax.sgd(LR), use_dropout_arg=False)
        _, out = run(step, params(), batch())
        for leaf in jax.tree.leaves(out):
            assert isinstance(leaf.sharding, NamedSharding) and leaf.sharding.spec == P()
            assert leaf.sharding.mesh == batch_mesh()
        assert batch_mesh().axis_names == ("batch",)
        assert batch_mesh().devices.size == jax.device_count()
        args = (params(), {"calls": jnp.int32(0)}, optax.sgd(LR).init(params()), batch(),
                jax.random.PRNGKey(0), *(np.float32(0.0),) * 3)
        shardings = step.lower(*args).compile().input_shardings[0]
        for sharding in jax.tree.leaves(shardings[3]):
            assert sharding.spec == batch_sharded().spec == P("batch")
        for i in (0, 1, 2, 4, 5, 6, 7):
            for sharding in jax.tree.leaves(shardings[i]):
                assert sharding.spec == P()

    def test_donates_params_model_state_and_optimizer_state(self):
        step = make_train_step(Linear(), optax.adam(LR), use_dropout_arg=False)
        (p, model_state, opt_state), out = run(step, params(), batch(), tx=optax.adam(LR))
        donated = jax.tree.leaves((p, model_state, opt_state))
        assert donated and all(leaf.is_deleted() for leaf in donated)
        assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(out))

    @pytest.mark.parametrize("grad_clip", [0.0, 1e-3, 1e3])
    def test_clips_the_global_norm(self, grad_clip):
        p, b = params(), batch()
        step = make_train_step(Linear(), optax.sgd(LR), use_dropout_arg=False)
        _, out = run(step, p, b, grad_clip=grad_clip)
        grad = oracle_grad(p["w"], b)
        norm = np.linalg.norm(grad)
        scale = grad_clip / norm if 0 < grad_clip < norm else 1.0  # <= 0 disables clipping
        np.testing.assert_allclose(out.grad_norm, norm, rtol=1e-5)  # before clipping
        np.testing.assert_allclose(out.params["w"], np.asarray(p["w"]) - LR * scale * grad,
                                   rtol=1e-5, atol=1e-7)

    @pytest.mark.parametrize("use_dropout_arg", [True, False])
    def test_dropout_rate_reaches_model_fn_only_when_asked(self, use_dropout_arg):
        p, b = params(), batch()
        workload = Linear()
        step = make_train_step(workload, optax.sgd(LR), use_dropout_arg=use_dropout_arg)
        _, out = run(step, p, b, dropout_rate=0.25)
        assert workload.traced_kwargs == [use_dropout_arg]
        grad = oracle_grad(p["w"], b, dropout_rate=0.25 if use_dropout_arg else None)
        np.testing.assert_allclose(out.params["w"], np.asarray(p["w"]) - LR * grad, rtol=1e-5)


class KeepdimsStats(Linear):
    """Batch-norm statistics updated with keepdims, as AlgoPerf's librispeech models do:
    built as (FEATURES,), returned as (1, FEATURES)."""

    def model_fn(self, params, batch, model_state, mode, rng, update_batch_norm,
                 dropout_rate=NO_DROPOUT):
        logits = batch["inputs"] @ params["w"]
        mean = jnp.mean(batch["inputs"], axis=0, keepdims=True)
        return logits, {"mean": 0.9 * jnp.reshape(model_state["mean"], mean.shape) + 0.1 * mean}


def test_model_state_keeps_its_shapes_so_the_step_compiles_once():
    from algoperf_reinit.submission import keep_model_state_shapes

    workload, tx = KeepdimsStats(), optax.sgd(LR)
    step = make_train_step(workload, tx, use_dropout_arg=False)
    state = jax.device_put((params(), {"mean": np.zeros(FEATURES, np.float32)},
                            tx.init(params())), replicated())
    for k in range(3):
        out = step(*state, batch(k), jax.random.PRNGKey(0), np.float32(0), np.float32(0),
                   np.float32(0))
        state = (out.params, out.model_state, out.opt_state)
    assert out.model_state["mean"].shape == (FEATURES,)
    assert step._cache_size() == 1
    expected = sum(0.1 * 0.9 ** (2 - k) * np.mean(batch(k)["inputs"], axis=0) for k in range(3))
    np.testing.assert_allclose(out.model_state["mean"], expected, rtol=1e-5)
    other = {"a": jnp.zeros((1, 3))}
    assert keep_model_state_shapes(other, {"b": jnp.zeros(3)}) is other  # other structure
    assert keep_model_state_shapes({"a": jnp.zeros((1, 4))}, {"a": jnp.zeros(3)})["a"].shape == (
        1, 4)  # other size: unchanged
    assert keep_model_state_shapes(None, {}) == {}  # AlgoPerf's ViT: built {}, returns None


class NoStateOut(Linear):
    """Built with model state ``{}``, returns ``None`` (AlgoPerf v0.6's ViT)."""

    def model_fn(self, params, batch, model_state, mode, rng, update_batch_norm,
                 dropout_rate=NO_DROPOUT):
        return batch["inputs"] @ params["w"], None


def test_an_empty_model_state_keeps_its_structure_so_the_step_compiles_once():
    tx = optax.sgd(LR)
    step = make_train_step(NoStateOut(), tx, use_dropout_arg=False)
    state = jax.device_put((params(), {}, tx.init(params())), replicated())
    for k in range(3):
        out = step(*state, batch(k), jax.random.PRNGKey(0), np.float32(0), np.float32(0),
                   np.float32(0))
        state = (out.params, out.model_state, out.opt_state)
    assert out.model_state == {} and step._cache_size() == 1
