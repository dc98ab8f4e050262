"""Tests for algoperf_reinit.optim: NAdamW/AdamW against formulas and optax."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algoperf_reinit import optim

_SHAPES = {"w": (3, 4), "b": (4,)}


def _tree(rng: np.random.Generator, scale: float = 1.0) -> dict[str, np.ndarray]:
    return {k: (scale * rng.standard_normal(s)).astype(np.float32) for k, s in _SHAPES.items()}


def _grad_sequence(num_steps: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    # Scales vary over steps so the second moment is not constant.
    return [_tree(rng, scale=10.0 ** rng.uniform(-2, 1)) for _ in range(num_steps)]


def _run(tx: optax.GradientTransformation, params, grads) -> tuple[list, list]:
    """Runs tx under jit on a fixed gradient sequence; returns updates and params per step."""
    update = jax.jit(tx.update)
    state = tx.init(params)
    updates, trajectory = [], []
    for g in grads:
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
        updates.append(jax.tree.map(np.asarray, u))
        trajectory.append(jax.tree.map(np.asarray, params))
    return updates, trajectory


def _numpy_nadamw(params, grads, lr_fn, b1, b2, eps, weight_decay, debias=True):
    """Transcription of the simplified NAdam (arXiv:1910.05446, Table 1) + decoupled wd, float64."""
    params = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    updates = []
    for step, g in enumerate(grads):
        t = step + 1
        lr = lr_fn(step)
        u = {}
        for k in params:
            gk = g[k].astype(np.float64)
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk**2
            m_hat = b1 * m[k] + (1 - b1) * gk
            v_hat = v[k]
            if debias:
                m_hat = m_hat / (1 - b1**t)
                v_hat = v_hat / (1 - b2**t)
            u[k] = -lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * params[k])
        params = {k: params[k] + u[k] for k in params}
        updates.append(u)
    return updates


@pytest.mark.parametrize("debias", [True, False])
def test_nadamw_matches_numpy_transcription_of_paper_formula(debias):
    rng = np.random.default_rng(1)
    params = _tree(rng)
    grads = _grad_sequence(20)

    def schedule(count):
        return 0.1 / (1.0 + 0.1 * count)

    tx = optim.nadamw(
        schedule, b2=0.99, eps=1e-6, weight_decay=0.01, debias=debias, one_minus_beta1=0.2
    )
    got, _ = _run(tx, params, grads)
    want = _numpy_nadamw(
        params,
        grads,
        lambda s: 0.1 / (1.0 + 0.1 * s),
        b1=0.8,
        b2=0.99,
        eps=1e-6,
        weight_decay=0.01,
        debias=debias,
    )
    for step, (g_step, w_step) in enumerate(zip(got, want, strict=True)):
        for k in _SHAPES:
            np.testing.assert_allclose(
                g_step[k], w_step[k], rtol=1e-5, atol=1e-9, err_msg=f"step {step + 1}, leaf {k}"
            )


def test_nadam_first_steps_by_hand_default_betas():
    # Constant gradient 0.5, eps negligible: direction = b1 + (1 - b1) / (1 - b1**t).
    tx = optim.scale_by_nadam()
    g = {"w": jnp.full((2,), 0.5, jnp.float32)}
    state = tx.init(g)
    update = jax.jit(tx.update)
    for t in range(1, 6):
        d, state = update(g, state)
        np.testing.assert_allclose(d["w"], 0.9 + 0.1 / (1 - 0.9**t), rtol=1e-6)
    assert state.count.dtype == jnp.int32 and int(state.count) == 5


def test_nadamw_differs_from_optax_nadamw_in_early_bias_correction():
    g = {"w": jnp.full((3,), 0.5, jnp.float32)}
    ours = optim.nadamw(1.0)
    theirs = optax.nadamw(1.0, weight_decay=0.0)
    ours_u, _ = _run(ours, g, [g] * 60)
    theirs_u, _ = _run(theirs, g, [g] * 60)
    ratio = np.array([o["w"][0] / t["w"][0] for o, t in zip(ours_u, theirs_u, strict=True)])
    b1 = 0.9
    t = np.arange(1, 61)
    expected = (b1 + (1 - b1) / (1 - b1**t)) / (
        b1 * (1 - b1**t) / (1 - b1 ** (t + 1)) + (1 - b1) / (1 - b1**t)
    )
    np.testing.assert_allclose(ratio, expected, rtol=3e-5)  # optax computes b1**t in float32
    np.testing.assert_allclose(ratio[[0, 1, 4, 9]], [1.2893, 1.2324, 1.1100, 1.0454], atol=1e-4)
    assert ratio[0] > 1.25  # the first update is ~29% larger than optax's
    assert abs(ratio[-1] - 1.0) < 1e-3  # and the gap is gone after ~50 steps


def test_nadamw_agrees_with_optax_nadamw_after_transient_on_noisy_gradients():
    grads = _grad_sequence(150, seed=3)
    params = _tree(np.random.default_rng(2))
    ours, _ = _run(optim.nadamw(1.0), params, grads)
    theirs, _ = _run(optax.nadamw(1.0, weight_decay=0.0), params, grads)
    first = np.abs(ours[0]["w"] / theirs[0]["w"])
    np.testing.assert_allclose(first, 1.9 / (1 + 0.9 / 1.9), rtol=1e-4)
    np.testing.assert_allclose(ours[-1]["w"], theirs[-1]["w"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mask", [None, {"w": True, "b": False}])
def test_adamw_equals_optax_adamw_with_weight_decay(mask):
    rng = np.random.default_rng(4)
    params = _tree(rng)
    grads = _grad_sequence(20, seed=5)
    schedule = optax.linear_schedule(0.0, 0.05, 10)
    ours = optim.adamw(
        schedule, b1=0.85, b2=0.98, eps=1e-7, weight_decay=0.1, weight_decay_mask=mask
    )
    theirs = optax.adamw(schedule, b1=0.85, b2=0.98, eps=1e-7, weight_decay=0.1, mask=mask)
    _, ours_p = _run(ours, params, grads)
    _, theirs_p = _run(theirs, params, grads)
    for o, t in zip(ours_p, theirs_p, strict=True):
        for k in _SHAPES:
            np.testing.assert_allclose(o[k], t[k], rtol=1e-6, atol=1e-7)
    # The decay is really applied: with wd=0 the trajectory differs.
    _, no_wd = _run(optim.adamw(schedule, b1=0.85, b2=0.98, eps=1e-7), params, grads)
    assert not np.allclose(no_wd[-1]["w"], ours_p[-1]["w"], rtol=1e-4)


@pytest.mark.parametrize(
    ("full", "direction"),
    [
        (optim.nadamw, optim.nadamw_direction),
        (optim.adamw, optim.adamw_direction),
    ],
)
def test_direction_times_learning_rate_is_the_full_update(full, direction):
    params = _tree(np.random.default_rng(6))
    grads = _grad_sequence(5, seed=7)
    lr = 0.03
    full_u, _ = _run(full(lr, weight_decay=0.2), params, grads)
    tx = direction(weight_decay=0.2)
    step = jax.jit(tx.update)
    state, p = tx.init(params), params
    for g, want in zip(grads, full_u, strict=True):
        d, state = step(g, state, p)
        p = jax.tree.map(lambda x, y: x - lr * y, p, d)
        for k in _SHAPES:
            np.testing.assert_allclose(-lr * np.asarray(d[k]), want[k], rtol=1e-6, atol=1e-9)


def test_one_minus_beta1_is_b1_complement():
    params = _tree(np.random.default_rng(8))
    grads = _grad_sequence(4, seed=9)
    a, _ = _run(optim.nadamw(0.1, one_minus_beta1=0.05), params, grads)
    b, _ = _run(optim.nadamw(0.1, b1=0.95), params, grads)
    c, _ = _run(optim.nadamw(0.1, b1=0.9), params, grads)
    np.testing.assert_array_equal(a[-1]["w"], b[-1]["w"])
    assert not np.allclose(a[-1]["w"], c[-1]["w"])


def test_count_saturates_and_bf16_moments_keep_dtype_under_scan():
    params = {"w": jnp.ones((4,), jnp.bfloat16)}
    tx = optim.nadamw_direction(weight_decay=0.01)
    state = tx.init(params)
    nadam_state = state[0]._replace(count=jnp.asarray(np.iinfo(np.int32).max - 1, jnp.int32))
    state = (nadam_state, *state[1:])

    @jax.jit
    def run(state):
        def body(state, g):
            d, state = tx.update({"w": g}, state, params)
            return state, d["w"]

        grads = jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4)
        return jax.lax.scan(body, state, grads)

    new_state, directions = run(state)
    assert int(new_state[0].count) == np.iinfo(np.int32).max
    assert new_state[0].mu["w"].dtype == jnp.bfloat16
    assert new_state[0].nu["w"].dtype == jnp.bfloat16
    assert bool(jnp.all(jnp.isfinite(directions)))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"b1": 0.9, "one_minus_beta1": 0.1}, ValueError, "not both"),
        ({"b1": 1.0}, ValueError, "b1 must be in [0, 1)"),
        ({"one_minus_beta1": 0.0}, ValueError, "one_minus_beta1 must be in (0, 1]"),
        ({"b2": float("nan")}, ValueError, "b2 must be a number, not NaN"),
        ({"b2": -0.1}, ValueError, "b2 must be in [0, 1), got -0.1"),
        ({"eps": -1e-8}, ValueError, "eps must be >= 0, got -1e-08"),
        ({"weight_decay": float("inf")}, ValueError, "weight_decay must be finite, got inf"),
        ({"b1": "0.9"}, TypeError, "b1 must be a real number"),
        ({"b2": True}, TypeError, "b2 must be a real number"),
    ],
)
@pytest.mark.parametrize("factory", [optim.nadamw_direction, optim.adamw_direction])
def test_bad_hyperparameters_are_rejected_at_build_time(factory, kwargs, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        factory(**kwargs)


@pytest.mark.parametrize(
    ("factory", "hint"), [(optim.nadamw, "nadamw_direction"), (optim.adamw, "adamw_direction")]
)
def test_learning_rate_none_points_to_direction_variant(factory, hint):
    with pytest.raises(TypeError, match=hint):
        factory(None)
    with pytest.raises(ValueError, match=r"learning_rate must be >= 0, got -1.0"):
        factory(-1.0)
    with pytest.raises(TypeError, match="debias must be a bool"):
        optim.scale_by_nadam(debias=1)


def test_schedule_is_called_with_update_count_from_zero():
    def schedule(count):
        return 0.5 * (count + 1).astype(jnp.float32)

    tx = optim.nadamw(schedule)
    p = {"w": jnp.ones((2,))}
    g = {"w": jnp.full((2,), 0.3)}
    state = tx.init(p)
    d_tx = optim.nadamw_direction()
    d_state = d_tx.init(p)
    step, d_step = jax.jit(tx.update), jax.jit(d_tx.update)
    for k in range(3):
        u, state = step(g, state, p)
        d, d_state = d_step(g, d_state, p)
        np.testing.assert_allclose(u["w"], -0.5 * (k + 1) * np.asarray(d["w"]), rtol=1e-6)
    zero_lr = optim.nadamw(0.0)
    assert math.isclose(float(jax.jit(zero_lr.update)(g, zero_lr.init(p), p)[0]["w"][0]), 0.0)


@pytest.mark.parametrize(
    ("full", "direction", "moments"),
    [
        (optim.nadamw, optim.nadamw_direction, lambda: optim.scale_by_nadam()),
        (optim.adamw, optim.adamw_direction, lambda: optax.scale_by_adam()),
    ],
)
def test_state_trees_are_the_documented_chains(full, direction, moments):
    # Checkpoints store these trees: direction = chain(moments, decayed weights), full =
    # chain(direction, learning-rate scaling), for a number and for a cycle table.
    from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table, scale_by_cycle_table

    params = _tree(np.random.default_rng(10))
    wd = optax.add_decayed_weights(0.1)
    table = build_cycle_table(ScheduleConfig(num_cycles=2), 10, 1e-2, 0.1, capacity=3)
    cases = [
        (direction(weight_decay=0.1), optax.chain(moments(), wd)),
        (full(0.1, weight_decay=0.1),
         optax.chain(optax.chain(moments(), wd), optax.scale_by_learning_rate(0.1))),
        (full(table), optax.chain(optax.chain(moments(), wd), scale_by_cycle_table(table))),
    ]
    for ours, reference in cases:
        a, b = ours.init(params), reference.init(params)
        assert jax.tree.structure(a) == jax.tree.structure(b)
        assert [(x.shape, x.dtype) for x in jax.tree.leaves(a)] == [
            (x.shape, x.dtype) for x in jax.tree.leaves(b)]
