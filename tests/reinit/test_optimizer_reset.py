"""Tests for optimizer-state reset policies and the generic optax-state tree helpers."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algoperf_reinit import optim
from algoperf_reinit.reinit import _tree
from algoperf_reinit.reinit._optimizer_reset import (
    COUNT_POLICIES,
    RESET_MODES,
    OptimizerResetPolicy,
    moment_paths,
    reset_counts,
    reset_optimizer_state,
    scale_moments,
    zero_moments,
)

# ---------------------------------------------------------------------------
# Update spike after a reset, on noisy linear regression.
# ---------------------------------------------------------------------------

_D_IN, _D_OUT, _BATCH, _LR, _NOISE = 16, 4, 8, 1e-3, 1.0
# Adam's second moment has an EMA horizon of 1 / (1 - b2) = 1000 steps, so the
# steady state (and a large step count, where bias correction is ~off) needs a
# couple of thousand steps. Params start at the optimum: gradients are pure
# minibatch noise, the regime where a reset hurts most.
_STEADY_STEPS, _WINDOW, _AFTER_STEPS, _SEEDS = 2000, 50, 20, 16

_POLICIES = {
    "default": OptimizerResetPolicy(),
    "zero_keep_count": OptimizerResetPolicy(mode="zero", count="keep"),
    "zero_reset_count": OptimizerResetPolicy(mode="zero", count="reset"),
    "reinit": OptimizerResetPolicy(mode="reinit", count="reset"),
    "keep_reset_count": OptimizerResetPolicy(mode="keep", count="reset"),
}


def _mean_abs(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return sum(jnp.sum(jnp.abs(x)) for x in leaves) / sum(x.size for x in leaves)


def _regression_step(tx, w_true, carry, batch):
    """One minibatch step; returns the mean |preconditioned update| = mean |update| / lr."""
    params, state = carry
    x, noise = batch
    y = x @ w_true + noise

    def loss(p):
        return jnp.mean(jnp.square(x @ p["w"] + p["b"][None, :] - y))

    direction, state = tx.update(jax.grad(loss)(params), state, params)
    params = jax.tree.map(lambda p, d: p - _LR * d, params, direction)
    return (params, state), _mean_abs(direction)


def _reset_experiment(tx, w_true, xs, noises):
    """Steady state, then each policy's first update; the default's over more steps.

    Returns ratios of mean |preconditioned update| to its steady-state mean (last
    ``_WINDOW`` steps before the reset): ``{policy: first-step ratio}`` and the
    default policy's ratios over ``_AFTER_STEPS`` steps.
    """
    params = {"w": w_true, "b": jnp.zeros((_D_OUT,))}
    step = functools.partial(_regression_step, tx, w_true)
    steady = (xs[:_STEADY_STEPS], noises[:_STEADY_STEPS])
    after = (xs[_STEADY_STEPS:], noises[_STEADY_STEPS:])
    (params, state), mags = jax.lax.scan(step, (params, tx.init(params)), steady)
    baseline = jnp.mean(mags[-_WINDOW:])
    first = {}
    for name, policy in _POLICIES.items():
        reset_state = reset_optimizer_state(policy, state, params, tx)
        first[name] = step((params, reset_state), (after[0][0], after[1][0]))[1] / baseline
    default_state = reset_optimizer_state(_POLICIES["default"], state, params, tx)
    _, default_mags = jax.lax.scan(step, (params, default_state), after)
    return first, default_mags / baseline


@functools.cache
def _spike_ratios(optimizer: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """First-step ratios per policy, shape (seeds,), and the default's, shape (seeds, steps)."""
    tx = {"adamw": optim.adamw_direction(), "nadamw": optim.nadamw_direction()}[optimizer]
    # Data drawn on the host: keeps the RNG out of the compiled program (compile time).
    rng = np.random.default_rng(0)
    steps = _STEADY_STEPS + _AFTER_STEPS
    w_true = rng.standard_normal((_SEEDS, _D_IN, _D_OUT), dtype=np.float32)
    xs = rng.standard_normal((_SEEDS, steps, _BATCH, _D_IN), dtype=np.float32)
    noises = _NOISE * rng.standard_normal((_SEEDS, steps, _BATCH, _D_OUT), dtype=np.float32)
    first, default = jax.jit(jax.vmap(functools.partial(_reset_experiment, tx)))(w_true, xs, noises)
    return {name: np.asarray(r) for name, r in first.items()}, np.asarray(default)


@pytest.mark.parametrize("optimizer", ["adamw", "nadamw"])
def test_default_policy_has_no_update_spike(optimizer):
    first, default = _spike_ratios(optimizer)
    ratio = first["default"]
    print(f"{optimizer} default: first-step ratio mean {ratio.mean():.2f} max {ratio.max():.2f}")
    assert ratio.mean() <= 1.5
    assert ratio.max() <= 1.5
    np.testing.assert_allclose(default[:, 0], ratio, rtol=1e-5)
    # Nor later, while the first moment rebuilds.
    assert default.mean(axis=0).max() <= 1.5


@pytest.mark.parametrize(
    ("optimizer", "zero_keep_range", "reinit_range"),
    [("adamw", (12.0, 20.0), (4.5, 6.5)), ("nadamw", (20.0, 32.0), (7.0, 11.0))],
)
def test_zeroing_moments_or_reinit_spikes(optimizer, zero_keep_range, reinit_range):
    first, _ = _spike_ratios(optimizer)
    zero_keep, reinit = first["zero_keep_count"], first["reinit"]
    print(f"{optimizer}: zero+keep count {zero_keep.mean():.1f}x, full reinit {reinit.mean():.1f}x")
    # The measurement can tell a spike...
    assert zero_keep.min() > 1.5
    assert reinit.min() > 1.5
    # ...and reproduces the known sizes (Adam: ~16x and ~5.5x).
    assert zero_keep_range[0] < zero_keep.mean() < zero_keep_range[1]
    assert reinit_range[0] < reinit.mean() < reinit_range[1]
    # Zeroing with a reset count is the same as a full re-init for this optimizer.
    np.testing.assert_allclose(first["zero_reset_count"], reinit, rtol=1e-5)
    # Keeping the moments but resetting the count shrinks the update instead.
    assert first["keep_reset_count"].mean() < 0.7


# ---------------------------------------------------------------------------
# Structure, dtypes, semantics.
# ---------------------------------------------------------------------------


def _params():
    return {
        "dense": {"kernel": jnp.ones((3, 2), jnp.float32), "bias": jnp.ones((2,), jnp.float32)},
        "emb": jnp.ones((4, 3), jnp.bfloat16),
    }


def _complex_tx():
    """A chain touching masked, injected-hyperparameter and schedule states."""
    mask = {"dense": True, "emb": False}
    return optax.chain(
        optax.masked(optim.nadamw_direction(weight_decay=0.1), mask),
        optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3, weight_decay=0.0),
        optim.nadamw(optax.linear_schedule(0.0, 1e-3, 10), weight_decay=0.01),
    )


def _trained_state(tx, params, steps=3):
    state = tx.init(params)
    update = jax.jit(tx.update)
    for i in range(steps):
        scale = 0.1 * (i + 1)
        grads = jax.tree.map(lambda p, s=scale: jnp.full(p.shape, s, jnp.float32), params)
        _, state = update(grads, state, params)
    return state


def _counts(state) -> list[int]:
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return [int(leaf) for path, leaf in leaves if _tree.is_count(path, leaf)]


def _avals(tree):
    return [(jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)]


def _all_policies():
    return [
        OptimizerResetPolicy(),
        OptimizerResetPolicy(mode="rescale", alpha=0.5, alpha_nu=0.25, count="reset"),
        *(OptimizerResetPolicy(mode=m, count=c) for m in RESET_MODES for c in COUNT_POLICIES),
    ]


@pytest.fixture(scope="module")
def complex_setup():
    params = _params()
    tx = _complex_tx()
    return params, tx, _trained_state(tx, params)


def test_tree_helpers_find_moments_and_counts_in_nested_states(complex_setup):
    params, _, state = complex_setup
    kinds = moment_paths(state, params)
    assert kinds == {
        "[0].inner_state[0].mu": "first",
        "[0].inner_state[0].nu": "second",
        "[1].inner_state[0].mu": "first",
        "[1].inner_state[0].nu": "second",
        "[2][0][0].mu": "first",
        "[2][0][0].nu": "second",
    }
    counts = [jax.tree_util.keystr(p) for p in _tree.count_paths(state)]
    assert counts == [
        "[0].inner_state[0].count",
        "[1].count",
        "[1].inner_state[0].count",
        "[2][0][0].count",
        "[2][1].count",
    ]
    # The masked moment has a MaskedNode in place of the whole "emb" subtree.
    assert isinstance(state[0].inner_state[0].mu["emb"], optax.MaskedNode)
    assert not _tree.is_params_like(state[0].inner_state[0].count, params)
    assert not _tree.is_params_like({"dense": params["dense"]}, params)
    wrong_shape = jax.tree.map(lambda p: jnp.zeros((*p.shape, 1)), params)
    assert not _tree.is_params_like(wrong_shape, params)


def test_bf16_moments_stay_bf16_and_fp32_stay_fp32(complex_setup):
    params, _, state = complex_setup
    nadam = state[2][0][0]
    assert (
        nadam.mu["emb"].dtype == jnp.bfloat16 and nadam.mu["dense"]["kernel"].dtype == jnp.float32
    )
    out = jax.jit(scale_moments)(state, params, 0.5, 0.25)
    assert _avals(out) == _avals(state)
    new = out[2][0][0]
    np.testing.assert_allclose(
        np.asarray(new.mu["emb"], np.float32),
        0.5 * np.asarray(nadam.mu["emb"], np.float32),
        rtol=1e-2,
    )
    np.testing.assert_allclose(new.nu["dense"]["bias"], 0.25 * nadam.nu["dense"]["bias"], rtol=1e-6)
    # Non-moment leaves (hyperparameters, counts) are untouched.
    assert out[1].hyperparams == state[1].hyperparams
    assert int(new.count) == int(nadam.count) == 3


@pytest.mark.parametrize("policy", _all_policies(), ids=lambda p: f"{p.mode}-{p.count}")
def test_every_policy_preserves_structure_and_dtypes(complex_setup, policy):
    params, tx, state = complex_setup
    out = jax.jit(functools.partial(reset_optimizer_state, tx=tx))(policy, state, params)
    assert jax.tree.structure(out) == jax.tree.structure(state)
    assert _avals(out) == _avals(state)
    assert _counts(out) == ([0] * 5 if policy.count == "reset" else [3] * 5)
    mu = out[2][0][0].mu["dense"]["kernel"]
    if policy.mode in ("zero", "reinit") or (policy.mode == "rescale" and policy.alpha == 0.0):
        assert float(jnp.max(jnp.abs(mu))) == 0.0
    else:
        assert float(jnp.max(jnp.abs(mu))) > 0.0


def test_reset_is_stable_under_lax_cond(complex_setup):
    params, tx, state = complex_setup

    @jax.jit
    def maybe_reset(do_reset, state):
        return jax.lax.cond(
            do_reset,
            lambda s: reset_optimizer_state(
                OptimizerResetPolicy("reinit", count="reset"), s, params, tx
            ),
            lambda s: s,
            state,
        )

    reset = maybe_reset(jnp.asarray(True), state)
    kept = maybe_reset(jnp.asarray(False), state)
    assert int(reset[2][0][0].count) == 0 and int(kept[2][0][0].count) == 3
    assert jax.tree.structure(reset) == jax.tree.structure(kept) == jax.tree.structure(state)
    assert _avals(reset) == _avals(state)


@pytest.fixture
def backend_compiles():
    """A list that receives one entry per XLA backend compilation while the test runs."""
    compiles, active = [], [True]

    def listener(event, duration, **kwargs):
        if active[0] and event.endswith("backend_compile_duration"):
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield compiles
    active[0] = False
    monitoring = jax._src.monitoring
    for name in (
        "unregister_event_duration_listener",
        "_unregister_event_duration_listener_by_callback",
    ):
        if hasattr(monitoring, name):
            getattr(monitoring, name)(listener)
            break


def test_new_alpha_values_do_not_recompile(complex_setup, backend_compiles):
    params, _, state = complex_setup
    traces = []

    def reset(policy, state):
        traces.append(policy.mode)
        return reset_optimizer_state(policy, state, params)

    jitted = jax.jit(reset)
    mu0 = np.asarray(state[2][0][0].mu["dense"]["kernel"])
    alphas = [(0.0, 1.0), (0.5, 0.5), (jnp.float32(0.25), jnp.float32(0.7)), (np.float32(0.9), 0.1)]
    before = len(backend_compiles)
    for alpha, alpha_nu in alphas:
        out = jitted(OptimizerResetPolicy(alpha=alpha, alpha_nu=alpha_nu), state)
        np.testing.assert_allclose(
            out[2][0][0].mu["dense"]["kernel"], float(alpha) * mu0, rtol=1e-6
        )
    assert traces == ["rescale"]
    assert len(backend_compiles) - before == 1
    # A different (static) mode does trace and compile again.
    jitted(OptimizerResetPolicy(mode="zero"), state)
    assert traces == ["rescale", "zero"]
    assert len(backend_compiles) - before == 2


def test_reinit_keep_count_copies_counts_and_zero_moments(complex_setup):
    params, tx, state = complex_setup
    out = reset_optimizer_state(OptimizerResetPolicy("reinit", count="keep"), state, params, tx)
    assert _counts(out) == _counts(state) == [3] * 5
    assert all(
        float(jnp.max(jnp.abs(x))) == 0.0
        for x in jax.tree.leaves(out[2][0][0].mu) + jax.tree.leaves(out[2][0][0].nu)
    )


def test_zero_gives_exact_zeros_even_for_non_finite_moments():
    params = {"w": jnp.ones((3,))}
    state = optim.scale_by_nadam().init(params)
    state = state._replace(
        mu={"w": jnp.array([jnp.inf, jnp.nan, 1.0])}, nu={"w": jnp.array([jnp.inf, 2.0, 3.0])}
    )
    zeroed = jax.jit(zero_moments)(state, params)
    np.testing.assert_array_equal(zeroed.mu["w"], 0.0)
    np.testing.assert_array_equal(zeroed.nu["w"], 0.0)
    scaled = jax.jit(scale_moments)(state, params, 0.0, 1.0)
    np.testing.assert_array_equal(scaled.mu["w"], 0.0)
    np.testing.assert_array_equal(scaled.nu["w"], [np.inf, 2.0, 3.0])
    assert int(jax.jit(reset_counts)(state._replace(count=jnp.int32(7))).count) == 0


def test_other_params_like_nodes_are_left_alone():
    params = {"w": jnp.ones((2,))}
    tx = optax.MultiSteps(optim.adamw_direction(), every_k_schedule=2)
    state = tx.init(params)
    state = state._replace(acc_grads={"w": jnp.array([1.0, 2.0])})
    assert moment_paths(state, params)[".acc_grads"] == "other"
    out = reset_optimizer_state(OptimizerResetPolicy("zero"), state, params)
    np.testing.assert_array_equal(out.acc_grads["w"], [1.0, 2.0])


def test_map_params_like_rejects_shape_changes():
    params = {"w": jnp.ones((2,))}
    state = optim.scale_by_nadam().init(params)
    with pytest.raises(ValueError, match=r"changed shape from \(2,\) to \(4,\)"):
        _tree.map_params_like(lambda _, x: jnp.concatenate([x, x]), state, params)


# ---------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"mode": "bogus"},
            ValueError,
            "mode must be one of 'keep', 'zero', 'rescale', 'reinit', got 'bogus'",
        ),
        ({"count": "never"}, ValueError, "count must be one of 'keep', 'reset', got 'never'"),
        ({"alpha": 1.5}, ValueError, "alpha must be in [0, 1], got 1.5"),
        ({"alpha_nu": -0.1}, ValueError, "alpha_nu must be in [0, 1], got -0.1"),
        ({"alpha": float("nan")}, ValueError, "alpha must be a number, not NaN, got nan"),
        ({"alpha": "0.5"}, TypeError, "alpha must be a real number in [0, 1]"),
        ({"alpha_nu": True}, TypeError, "alpha_nu must be a real number in [0, 1]"),
        ({"alpha": jnp.ones((2,))}, TypeError, "alpha must be a real number in [0, 1]"),
        ({"alpha": jnp.float32(2.0)}, ValueError, "alpha must be in [0, 1], got 2.0"),
        (
            {"mode": "zero", "alpha": 0.5},
            ValueError,
            "alpha must be its default 0.0 with mode='zero', got 0.5; it applies only to "
            "mode='rescale'",
        ),
    ],
)
def test_policy_validation_messages(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        OptimizerResetPolicy(**kwargs)


def test_reset_call_errors():
    params = {"w": jnp.ones((2,))}
    tx = optim.nadamw_direction()
    state = tx.init(params)
    with pytest.raises(ValueError, match=re.escape("tx must be the optax.GradientTransformation")):
        reset_optimizer_state(OptimizerResetPolicy("reinit"), state, params)
    with pytest.raises(ValueError, match=re.escape("tx.init(params) has tree structure")):
        reset_optimizer_state(OptimizerResetPolicy("reinit"), state, params, optax.sgd(0.1))
    with pytest.raises(TypeError, match="policy must be an OptimizerResetPolicy"):
        reset_optimizer_state("zero", state, params)
    with pytest.raises(ValueError, match=re.escape("alpha must be in [0, 1], got 2.0")):
        scale_moments(state, params, 2.0, 1.0)
