"""random-LTD in stdlib_lm: the block factory, the static kept length, and the compile bound."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from algoperf_reinit_workloads import WORKLOADS, ForwardPassMode, StdlibLM4x256Workload
from algoperf_reinit_workloads.stdlib_lm import StdlibLMWorkload

from algoperf_reinit.data_efficiency import (
    CurriculumScheduler,
    LayerTokenCounter,
    RandomLTDScheduler,
    ShapeBuckets,
    ShapeCounter,
    curriculum_runs,
    joint_runs,
    monotone_runs,
    random_ltd_block_factory,
)

SIZES = dict(seq_len=32, width=8, num_layers=3, num_heads=2, mlp_dim=16,
             num_eval_train_examples=8, eval_batch_size=8)


@pytest.fixture(scope="module")
def workloads():
    dense = StdlibLMWorkload(**SIZES)
    ltd = StdlibLMWorkload(**SIZES, block_factory=random_ltd_block_factory([1]))
    params, _ = ltd.init_model_fn(jax.random.key(0))
    return dense, ltd, params


def batch(workload, n=4):
    return {k: jnp.asarray(v) for k, v in workload.train_examples(np.arange(n)).items()}


_FORWARDS = {}


def forward(workload, params, mode, keep, rng=None):
    """The jitted forward (one compilation per workload, mode and kept length)."""
    key = (id(workload), mode, keep, type(keep), rng is None)
    if key not in _FORWARDS:
        _FORWARDS[key] = jax.jit(lambda p, d, r: workload.model_fn(
            p, d, {}, mode, r, False, random_ltd_keep=keep)[0])
    return _FORWARDS[key](params, batch(workload), rng)


class TestModelFn:
    def test_same_params_as_the_dense_model(self, workloads):
        dense, _, params = workloads
        dense_params, _ = dense.init_model_fn(jax.random.key(0))
        for a, b in zip(jax.tree.leaves(dense_params), jax.tree.leaves(params), strict=True):
            np.testing.assert_array_equal(a, b)

    def test_keep_changes_training_only(self, workloads):
        dense, ltd, params = workloads
        want = forward(dense, params, ForwardPassMode.TRAIN, None, jax.random.key(1))
        np.testing.assert_array_equal(
            forward(ltd, params, ForwardPassMode.EVAL, 8), want)  # eval: every token
        np.testing.assert_array_equal(
            forward(ltd, params, ForwardPassMode.TRAIN, None, jax.random.key(1)), want)
        dropped = forward(ltd, params, ForwardPassMode.TRAIN, 8, jax.random.key(1))
        assert np.abs(np.asarray(dropped) - np.asarray(want)).max() > 1e-3
        again = forward(ltd, params, ForwardPassMode.TRAIN, 8, jax.random.key(1))
        np.testing.assert_array_equal(dropped, again)  # the draw comes from rng
        other = forward(ltd, params, ForwardPassMode.TRAIN, 8, jax.random.key(2))
        assert not np.array_equal(dropped, other)

    def test_errors(self, workloads):
        dense, ltd, params = workloads
        with pytest.raises(ValueError, match="random_ltd_keep must be None without a "
                                             "block_factory, got 8"):
            forward(dense, params, ForwardPassMode.TRAIN, 8, jax.random.key(1))
        with pytest.raises(ValueError, match="rng must be a key in TRAIN mode"):
            forward(ltd, params, ForwardPassMode.TRAIN, 8)
        with pytest.raises(TypeError, match="random_ltd_keep must be"):
            forward(ltd, params, ForwardPassMode.TRAIN, 8.0, jax.random.key(1))
        with pytest.raises(TypeError, match="block_factory must be a callable or None"):
            StdlibLMWorkload(**SIZES, block_factory=3)

    def test_named_variant(self):
        assert WORKLOADS["stdlib_lm_4x256"] is StdlibLM4x256Workload
        w = StdlibLM4x256Workload(num_eval_train_examples=8)
        assert (w.config["num_layers"], w.seq_len) == (4, 256)
        assert w.metadata()["num_layers"] == 4
        # Its own facts (the procedure in workloads/README.md), not stdlib_lm's.
        assert (w.step_hint, w.validation_target_value, w.test_target_value,
                w.max_allowed_runtime_sec) == (400, 2.16, 2.10, 1000)


def test_compile_bound_over_a_joint_scheduled_run(workloads):
    """Curriculum length 8 -> 32 and kept length 4 -> 32: > 3 shapes, bucketed to <= 3."""
    _, ltd, params = workloads
    curriculum = CurriculumScheduler({
        "min_difficulty": 8, "max_difficulty": 32, "schedule_type": "fixed_linear",
        "schedule_config": {"total_curriculum_step": 24, "difficulty_step": 4}})
    scheduler = RandomLTDScheduler({
        "total_layer_num": 3, "random_ltd_layer_num": 1, "random_ltd_layer_id": [1],
        "global_batch_size": 4,
        "random_ltd_schedule": {"min_value": 4, "max_value": 32,
                                "schedule_type": "fixed_linear",
                                "schedule_config": {"require_steps": 20,
                                                    "seq_per_step": 4}}}, min_clamp=True)
    # Curriculum step = global step + 1 (DeepSpeed), random-LTD's = the global step.
    ltd_runs = monotone_runs(lambda s: scheduler.get_value(s - 1), first_step=1,
                             max_value=32, initial=4)
    runs = joint_runs(curriculum_runs(curriculum), ltd_runs)
    assert len({r.value for r in runs}) > 3
    buckets = ShapeBuckets.from_runs(runs, max_buckets=3)
    tx = optax.adam(1e-3)

    def train_step(params, opt_state, data, rng, keep):
        def loss(p):
            logits = ltd.model_fn(p, data, {}, ForwardPassMode.TRAIN, rng, False,
                                  random_ltd_keep=keep)[0]
            return optax.softmax_cross_entropy_with_integer_labels(
                logits, data["targets"]).mean()

        updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step = jax.jit(train_step, static_argnums=4)
    opt_state, full = tx.init(params), batch(ltd)
    shapes, counter = ShapeCounter(bound=3), LayerTokenCounter(3, 1, batch_size=4)
    for i in range(30):
        seq, kept = buckets((curriculum.update_difficulty(i + 1), scheduler.update_seq(i)))
        data = {k: v[:, :seq] for k, v in full.items()}
        keep = None if kept >= seq else kept
        params, opt_state = step(params, opt_state, data, jax.random.key(i), keep)
        shapes.record_step((seq, kept))
        shapes.observe_cache_size((seq, kept), step._cache_size())
        counter.update(i, seq_len=seq, kept=keep)
    summary = shapes.summary()
    assert summary["within_bound"] and summary["compilations"] == summary["shapes"] <= 3
    assert summary["compilations"] == len({(s, k) for s, k in buckets.shapes})
    assert all(c["compilations"] == 1 for c in summary["per_shape"].values())
    assert counter.layer_tokens < scheduler.state.consumed_layer_tokens
