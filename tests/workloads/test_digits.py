"""DigitsWorkload: the AlgoPerf Workload contract, data stream, eval, sharding, training."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from algoperf_reinit_workloads import (
    WORKLOADS,
    DigitsWorkload,
    ForwardPassMode,
    LossType,
    ParameterType,
    ShapeTuple,
    get_workload,
)
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

HIDDEN = (32,)


@pytest.fixture(scope="module")
def workload():
    return DigitsWorkload(hidden_sizes=HIDDEN)


@pytest.fixture(scope="module")
def init(workload):
    return workload.init_model_fn(jax.random.PRNGKey(0))


# ----------------------------------------------------------------------------- contract


def test_param_info_before_init_raises():
    fresh = DigitsWorkload(hidden_sizes=HIDDEN)
    with pytest.raises(ValueError, match=r"param_shapes .*init_model_fn"):
        fresh.param_shapes  # noqa: B018
    with pytest.raises(ValueError, match=r"model_params_types .*init_model_fn"):
        fresh.model_params_types  # noqa: B018


def test_interface_members(workload, init):
    params, model_state = init
    w = workload
    assert w.loss_type is LossType.SOFTMAX_CROSS_ENTROPY
    assert w.target_metric_name == "accuracy" and not w.target_metric_lower_is_better
    for name in ("validation_target_value", "test_target_value", "eval_period_time_sec"):
        assert isinstance(getattr(w, name), float)
    for name in (
        "step_hint",
        "max_allowed_runtime_sec",
        "num_train_examples",
        "num_eval_train_examples",
        "num_validation_examples",
        "num_test_examples",
        "eval_batch_size",
    ):
        assert isinstance(getattr(w, name), int) and getattr(w, name) > 0, name
    assert (w.num_train_examples, w.num_validation_examples, w.num_test_examples) == (1197, 300, 300)
    assert 1500 <= w.step_hint <= 3000
    assert isinstance(w.train_mean, float) and isinstance(w.train_stddev, float)
    assert w.metrics_logger is None
    for name in ("init_model_fn", "model_fn", "loss_fn", "eval_model", "_build_input_queue",
                 "train_batch", "is_output_params", "output_activation_fn",
                 "has_reached_validation_target", "has_reached_test_target",
                 "attach_metrics_logger", "metadata"):
        assert callable(getattr(w, name)), name
    # Plain single-device arrays, BN state present.
    assert set(model_state) == {"batch_stats"}
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves((params, model_state)))
    assert jax.tree.leaves(model_state)


def test_param_shapes_and_types(workload, init):
    params, _ = init
    shapes = workload.param_shapes
    assert jax.tree.structure(shapes) == jax.tree.structure(params)
    for s, p in zip(jax.tree.leaves(shapes), jax.tree.leaves(params), strict=True):
        assert isinstance(s, ShapeTuple) and s.shape_tuple == p.shape
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape_tuple), shapes)
    assert jax.tree.structure(zeros) == jax.tree.structure(params)

    types = workload.model_params_types
    assert jax.tree.structure(types) == jax.tree.structure(params)
    assert types["hidden_0"] == {"kernel": ParameterType.WEIGHT}
    assert types["batchnorm_0"] == {
        "scale": ParameterType.BATCH_NORM_SCALE,
        "bias": ParameterType.BATCH_NORM_BIAS,
    }
    assert types["output"] == {"kernel": ParameterType.WEIGHT, "bias": ParameterType.BIAS}


def test_is_output_params_and_activation(workload):
    assert workload.is_output_params("output")
    assert not workload.is_output_params("hidden_0")
    assert workload.is_output_params(("output", "kernel"))
    assert workload.is_output_params((jax.tree_util.DictKey("output"),))
    probs = workload.output_activation_fn(jnp.array([[1.0, 2.0, 3.0]]), "jax")
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="JAX only"):
        workload.output_activation_fn(jnp.zeros((1, 3)), "pytorch")


def test_targets_and_logger(workload):
    w = workload
    target = w.validation_target_value
    assert w.has_reached_validation_target({"validation/accuracy": target})
    assert not w.has_reached_validation_target({"validation/accuracy": target - 0.01})
    assert not w.has_reached_validation_target({"validation/accuracy": float("nan")})
    assert w.has_reached_test_target({"test/accuracy": 1.0})
    with pytest.raises(ValueError, match="validation/accuracy"):
        w.has_reached_validation_target({"validation/loss": 0.1})
    logger = object()
    w2 = DigitsWorkload(hidden_sizes=HIDDEN)
    w2.attach_metrics_logger(logger)
    assert w2.metrics_logger is logger


def test_registry_and_metadata(workload):
    assert WORKLOADS["digits"] is DigitsWorkload
    assert isinstance(get_workload("digits", hidden_sizes=HIDDEN), DigitsWorkload)
    with pytest.raises(ValueError, match="name must be one of 'digits', 'stdlib_lm', 'stdlib_lm_4x256', got 'mnist'"):
        get_workload("mnist")
    meta = workload.metadata()
    json.dumps(meta)  # primitives only
    assert meta["num_train_examples"] == 1197 and len(meta["data_sha256"]) == 64


def test_split_is_fixed_and_disjoint(workload):
    split = workload.split_indices
    all_indices = np.concatenate([split["train"], split["validation"], split["test"]])
    assert sorted(all_indices.tolist()) == list(range(1797))
    again = DigitsWorkload(hidden_sizes=HIDDEN).split_indices
    for name in split:
        np.testing.assert_array_equal(split[name], again[name])


# ----------------------------------------------------------------------------- model_fn


def _tree_equal(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), a, b)))


def test_model_fn_batch_norm_modes(workload, init):
    params, state = init
    batch = workload.train_batch(jax.random.PRNGKey(1), 0, 64)
    forward = jax.jit(workload.model_fn, static_argnums=(3, 5))
    logits, new_state = forward(params, batch, state, ForwardPassMode.TRAIN, None, True)
    assert logits.shape == (64, 10)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state, new_state)
    assert all(jax.tree.leaves(changed))
    # TRAIN without update: batch statistics, state returned unchanged.
    train_logits, same = forward(params, batch, state, ForwardPassMode.TRAIN, None, False)
    assert _tree_equal(same, state)
    np.testing.assert_allclose(train_logits, logits, rtol=1e-5, atol=1e-5)
    # EVAL uses the running averages: a row's logits do not depend on the rest of the batch.
    eval_full, eval_state = forward(params, batch, state, ForwardPassMode.EVAL, None, False)
    assert _tree_equal(eval_state, state)
    first = {k: v[:8] for k, v in batch.items()}
    eval_part, _ = forward(params, first, state, ForwardPassMode.EVAL, None, False)
    np.testing.assert_allclose(eval_part, eval_full[:8], rtol=1e-5, atol=1e-5)
    assert not np.allclose(eval_full, logits, atol=1e-3)  # running averages != batch stats


def test_dropout_rate_is_a_runtime_input(workload, init):
    params, state = init
    batch = workload.train_batch(jax.random.PRNGKey(1), 0, 64)
    traces = []

    @jax.jit
    def forward(rate, rng):
        traces.append(None)
        logits, _ = workload.model_fn(
            params, batch, state, ForwardPassMode.TRAIN, rng, False, dropout_rate=rate
        )
        return logits

    rng = jax.random.PRNGKey(3)
    no_drop = forward(jnp.float32(0.0), rng)
    drop = forward(jnp.float32(0.5), rng)
    assert len(traces) == 1
    reference, _ = jax.jit(workload.model_fn, static_argnums=(3, 5))(
        params, batch, state, ForwardPassMode.TRAIN, None, False
    )
    np.testing.assert_allclose(no_drop, reference, rtol=1e-5, atol=1e-5)
    assert not np.allclose(drop, reference)
    # EVAL ignores dropout.
    evaluate = jax.jit(workload.model_fn, static_argnums=(3, 5))
    e1, _ = evaluate(params, batch, state, ForwardPassMode.EVAL, rng, False, dropout_rate=0.5)
    e0, _ = evaluate(params, batch, state, ForwardPassMode.EVAL, None, False)
    np.testing.assert_array_equal(e1, e0)
    with pytest.raises(TypeError, match="mode must be"):
        workload.model_fn(params, batch, state, "train", None, False)


# ----------------------------------------------------------------------------- loss_fn


def test_loss_fn_masks_padding(workload):
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.standard_normal((6, 10)), jnp.float32)
    labels = jnp.asarray([0, 1, 2, 3, 4, 5])
    mask = jnp.asarray([1, 1, 1, 1, 0, 0], jnp.float32)
    garbage = logits.at[4:].set(jnp.nan)  # padding rows may hold anything
    out = jax.jit(workload.loss_fn)(labels, garbage, mask)
    expected = optax.softmax_cross_entropy_with_integer_labels(logits[:4], labels[:4])
    assert float(out["n_valid_examples"]) == 4.0
    np.testing.assert_allclose(out["summed"], expected.sum(), rtol=1e-5)
    np.testing.assert_allclose(out["per_example"][:4], expected, rtol=1e-5)
    np.testing.assert_array_equal(out["per_example"][4:], 0.0)
    unmasked = workload.loss_fn(labels, logits)
    assert float(unmasked["n_valid_examples"]) == 6.0
    with pytest.raises(ValueError, match="mask_batch shape"):
        workload.loss_fn(labels, logits, mask[:, None])


def test_loss_fn_label_smoothing(workload):
    logits = jnp.asarray(np.random.default_rng(1).standard_normal((4, 10)), jnp.float32)
    labels = jnp.asarray([0, 3, 5, 9])
    out = workload.loss_fn(labels, logits, label_smoothing=0.1)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, 10), 0.1)
    expected = optax.softmax_cross_entropy(logits, targets)
    np.testing.assert_allclose(out["per_example"], expected, rtol=1e-5)


# ----------------------------------------------------------------------------- data


def test_train_batch_is_a_function_of_rng_and_step(workload):
    rng = jax.random.PRNGKey(7)
    a = workload.train_batch(rng, 5, 64)
    b = workload.train_batch(rng, 5, 64)
    for key in ("inputs", "targets", "weights"):
        np.testing.assert_array_equal(a[key], b[key])
    other = workload.train_batch(jax.random.PRNGKey(8), 5, 64)
    assert not np.array_equal(a["targets"], other["targets"]) or not np.array_equal(
        a["inputs"], other["inputs"]
    )
    np.testing.assert_array_equal(a["weights"], 1.0)
    # Typed keys give the same stream as raw keys.
    typed = workload.train_indices(jax.random.wrap_key_data(rng), 5, 64)
    np.testing.assert_array_equal(typed, workload.train_indices(rng, 5, 64))


def test_one_epoch_is_a_permutation(workload):
    rng = jax.random.PRNGKey(0)
    n = workload.num_train_examples  # 1197 = 3 * 399
    epoch0 = np.concatenate([workload.train_indices(rng, s, 399) for s in range(3)])
    epoch1 = np.concatenate([workload.train_indices(rng, s, 399) for s in range(3, 6)])
    np.testing.assert_array_equal(np.sort(epoch0), np.arange(n))
    np.testing.assert_array_equal(np.sort(epoch1), np.arange(n))
    assert not np.array_equal(epoch0, epoch1)


def test_queue_from_step_k_is_the_tail_of_the_queue_from_0(workload):
    rng = jax.random.PRNGKey(3)
    from_zero = workload._build_input_queue(rng, "train", None, 128)
    head = [next(from_zero) for _ in range(12)]  # crosses an epoch boundary (1197 / 128)
    resumed = workload._build_input_queue(rng, "train", None, 128, start_step=9)
    for expected in head[9:]:
        got = next(resumed)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
    with pytest.raises(ValueError, match="start_step"):
        workload._build_input_queue(rng, "train", None, 128, start_step=-1)
    with pytest.raises(ValueError, match="split must be one of 'train', 'eval_train', "
                       "'validation', 'test', got 'valid'"):
        workload._build_input_queue(rng, "valid", None, 128)


def test_batches_are_sharded_on_batch_axis(workload):
    batch = workload.train_batch(jax.random.PRNGKey(0), 0, 32)
    assert len(jax.devices()) == 1
    for value in batch.values():
        assert isinstance(value.sharding, NamedSharding)
        assert value.sharding.spec == P("batch")
        assert value.sharding.mesh.axis_names == ("batch",)
        assert value.shape[0] == 32
    assert batch["inputs"].shape == (32, 8, 8, 1) and batch["inputs"].dtype == jnp.float32
    assert batch["targets"].dtype == jnp.int32
    with pytest.raises(ValueError, match="global_batch_size"):
        workload.train_batch(jax.random.PRNGKey(0), 0, 0)


def test_eval_split_queue_is_padded_with_zero_weights(workload):
    batches = list(workload._build_input_queue(None, "validation", None, 128))
    assert len(batches) == 3  # 300 examples -> 3 batches of 128
    weights = np.concatenate([np.asarray(b["weights"]) for b in batches])
    assert weights.sum() == 300 and np.all(weights[300:] == 0)


# ----------------------------------------------------------------------------- eval


def test_eval_model_keys_and_single_compile(init):
    w = DigitsWorkload(hidden_sizes=HIDDEN)  # fresh: its own trace counter
    params, state = init
    result = w.eval_model(w.eval_batch_size, params, state, jax.random.PRNGKey(0), None, None, 0)
    assert set(result) == {
        "train/accuracy",
        "train/loss",
        "validation/accuracy",
        "validation/loss",
        "validation/num_examples",
        "test/accuracy",
        "test/loss",
        "test/num_examples",
    }
    assert result["validation/num_examples"] == 300 and result["test/num_examples"] == 300
    assert all(isinstance(v, float | int) for v in result.values())
    again = w.eval_model(w.eval_batch_size, params, state, None, None, None, 1)
    assert again == result
    assert w._num_eval_traces == 1  # three splits, two calls, one compile
    # Padding does not change the numbers: another eval batch size gives the same metrics.
    other = w.eval_model(96, params, state, None, None, None, 2)
    for key in result:
        assert other[key] == pytest.approx(result[key], rel=1e-5), key


# ----------------------------------------------------------------------------- training


def test_short_training_reduces_the_loss(workload):
    params, state = workload.init_model_fn(jax.random.PRNGKey(1))
    tx = optax.adam(1e-2)
    opt = tx.init(params)
    params, state, opt = workload.replicate((params, state, opt))

    @jax.jit
    def step(params, state, opt, batch):
        def loss_fn(p):
            logits, new_state = workload.model_fn(p, batch, state, ForwardPassMode.TRAIN, None, True)
            out = workload.loss_fn(batch["targets"], logits, batch["weights"])
            return out["summed"] / out["n_valid_examples"], new_state

        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), new_state, opt, loss

    rng = jax.random.PRNGKey(2)
    before = workload.eval_model(512, params, state, None, None, None, 0)
    losses = []
    for i in range(40):
        params, state, opt, loss = step(params, state, opt, workload.train_batch(rng, i, 64))
        losses.append(float(loss))
    after = workload.eval_model(512, params, state, None, None, None, 40)
    assert np.mean(losses[-5:]) < 0.5 * losses[0]
    assert after["validation/loss"] < before["validation/loss"]
    assert after["validation/accuracy"] > 0.8


# ----------------------------------------------------------------------------- devices

_MULTI_DEVICE = """
import json, jax, numpy as np
from algoperf_reinit_workloads import DigitsWorkload
w = DigitsWorkload(hidden_sizes=(32,))
assert jax.device_count() == 4, jax.devices()
batch = w.train_batch(jax.random.PRNGKey(0), 0, 32)
spec = batch["inputs"].sharding.spec
shards = sorted(s.data.shape[0] for s in batch["inputs"].addressable_shards)
params, state = w.init_model_fn(jax.random.PRNGKey(0))
result = w.eval_model(w.eval_batch_size, params, state, None, None, None, 0)
try:
    w.train_batch(jax.random.PRNGKey(0), 0, 30)
    error = None
except ValueError as e:
    error = str(e)
print(json.dumps({"spec": str(spec), "shards": shards, "result": result, "error": error,
                  "targets": np.asarray(batch["targets"]).tolist()}))
"""


def test_four_devices_shard_the_batch_and_agree_with_one(workload, init):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", _MULTI_DEVICE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["spec"] == str(P("batch")) and got["shards"] == [8, 8, 8, 8]
    assert "divisible" in got["error"]
    params, state = init  # same key as in the subprocess
    local = workload.eval_model(workload.eval_batch_size, params, state, None, None, None, 0)
    for key, value in local.items():
        assert got["result"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    local_targets = np.asarray(workload.train_batch(jax.random.PRNGKey(0), 0, 32)["targets"])
    assert got["targets"] == local_targets.tolist()
