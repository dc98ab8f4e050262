"""model_reinit_schedule end to end: early stops, resets, zero recompiles, resume."""

import dataclasses

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algoperf_reinit.optim import nadamw
from algoperf_reinit.reinit import (
    SCHEMA_VERSION,
    OptimizerResetPolicy,
    ParamResetPolicy,
    PlateauConfig,
    Redistribution,
    ReinitConfig,
    ReinitState,
    check_reinit_state,
    init_reinit_state,
    model_reinit_schedule,
)
from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table, schedule_state

STEPS, EVAL_EVERY, BATCH = 240, 8, 32


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.tanh(nn.Dense(16)(x)))


@dataclasses.dataclass
class TinyWorkload:
    """The slice of AlgoPerf's Workload that model_reinit_schedule uses."""

    def init_model_fn(self, rng):
        return MLP().init(rng, jnp.zeros((1, 4)))["params"], {}


def data():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 1)).astype(np.float32)
    x = rng.normal(size=(STEPS * BATCH + 256, 4)).astype(np.float32)
    y = np.tanh(x @ w) + 0.1 * rng.normal(size=(len(x), 1)).astype(np.float32)
    return x, y


def loss_fn(params, x, y):
    return jnp.mean((MLP().apply({"params": params}, x) - y) ** 2)


CONFIG = ReinitConfig(
    params=ParamResetPolicy("shrink_perturb"),
    optimizer=OptimizerResetPolicy(),
    plateau=PlateauConfig(metric="loss", patience=2, rel_threshold=0.01, min_evals=3),
    redistribution=Redistribution(),
)


def make_table():
    return build_cycle_table(ScheduleConfig(num_cycles=3), STEPS, 3e-2, 0.1, capacity=4)


def train(start, stop, carry, traces, step_fn=None, reset_fn=None):
    """Runs steps [start, stop) of the AlgoPerf-like loop; returns the carry."""
    x, y = data()
    params, model_state, opt_state, rstate, eval_results, events = carry
    tx = nadamw(make_table())
    workload = TinyWorkload()

    @jax.jit
    def train_step(params, opt_state, xb, yb):
        traces.append(None)
        grads = jax.grad(loss_fn)(params, xb, yb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step_fn = step_fn or train_step
    for step in range(start, stop):
        out = model_reinit_schedule(step, workload, None, None, eval_results, rstate, params,
                                    model_state, opt_state, CONFIG, tx=tx, reset_fn=reset_fn)
        params, model_state, opt_state, rstate = out.params, out.model_state, out.opt_state, out.state
        events = events + list(out.events)
        sl = slice(step * BATCH, (step + 1) * BATCH)
        params, opt_state = step_fn(params, opt_state, x[sl], y[sl])
        if (step + 1) % EVAL_EVERY == 0:
            val = float(loss_fn(params, x[-256:], y[-256:]))
            eval_results = [*eval_results, (step + 1, {"validation/loss": val, "test/loss": -1.0})]
    return params, model_state, opt_state, rstate, eval_results, events


def initial_carry():
    params, model_state = TinyWorkload().init_model_fn(jax.random.PRNGKey(0))
    tx = nadamw(make_table())
    rstate = init_reinit_state(CONFIG, make_table(), jax.random.PRNGKey(1))
    return params, model_state, tx.init(params), rstate, [], []


@pytest.fixture(scope="module")
def full_run():
    traces = []
    carry = train(0, STEPS, initial_carry(), traces)
    return carry, traces


def test_cycles_end_early_and_reset_with_one_compilation(full_run):
    (_, _, opt_state, rstate, _, events), traces = full_run
    kinds = [e.kind for e in events]
    assert kinds.count("early_stop") >= 1
    assert kinds.count("reset") >= 2
    assert int(rstate.num_early_stops) == kinds.count("early_stop")
    assert int(rstate.num_resets) == kinds.count("reset")
    assert rstate.table.num_cycles >= 3
    assert len(traces) == 1  # the train step compiled exactly once
    # The optimizer's copy of the table is the state's authoritative one.
    jax.tree.map(np.testing.assert_array_equal, schedule_state(opt_state).table, rstate.table)


def test_events_record_boundaries_and_metrics(full_run):
    (_, _, _, _, _, events), _ = full_run
    stop = next(e for e in events if e.kind == "early_stop")
    assert stop.new_boundaries != stop.old_boundaries
    assert stop.step in stop.new_boundaries
    assert stop.old_boundaries[-1] == stop.new_boundaries[-1] == STEPS  # budget conserved
    assert {"smoothed", "best", "slope"} <= set(stop.metrics)
    reset = next(e for e in events if e.kind == "reset" and e.step == stop.step)
    assert reset.cycle == stop.cycle + 1


def test_resume_from_a_checkpoint_is_bit_identical(full_run):
    (params_full, _, _, rstate_full, _, events_full), _ = full_run
    traces = []
    stop_at = 131
    carry = train(0, stop_at, initial_carry(), traces)
    params, model_state, opt_state, rstate, eval_results, events = carry
    blob = flax.serialization.to_bytes((params, opt_state, rstate))
    template = initial_carry()
    params, opt_state, rstate = flax.serialization.from_bytes(
        (template[0], template[2], template[3]), blob)
    rstate = check_reinit_state(rstate)
    carry = train(stop_at, STEPS, (params, model_state, opt_state, rstate, eval_results, events),
                  traces)
    jax.tree.map(np.testing.assert_array_equal, carry[0], params_full)
    assert carry[5] == events_full
    jax.tree.map(np.testing.assert_array_equal, carry[3], rstate_full)


def test_nothing_happens_without_a_boundary_or_an_evaluation():
    params, model_state, opt_state, rstate, _, _ = initial_carry()
    out = model_reinit_schedule(5, TinyWorkload(), None, None, [], rstate, params, model_state,
                                opt_state, CONFIG)
    assert out.events == () and out.params is params and out.opt_state is opt_state


def test_only_validation_metrics_are_read():
    params, model_state, opt_state, rstate, _, _ = initial_carry()
    results = [(s, {"test/loss": 1.0, "train/loss": 1.0}) for s in range(8, 70, 8)]
    out = model_reinit_schedule(70, TinyWorkload(), None, None, results, rstate, params,
                                model_state, opt_state, CONFIG)
    assert out.events == ()
    assert int(out.state.plateau.num_evals) == 0


def test_schema_version_mismatch_is_a_clear_error():
    rstate = initial_carry()[3]
    stale = rstate._replace(version=jnp.asarray(SCHEMA_VERSION + 1, jnp.int32))
    with pytest.raises(ValueError, match=rf"schema version {SCHEMA_VERSION + 1}, but this library reads version {SCHEMA_VERSION}"):
        check_reinit_state(stale)
    with pytest.raises(TypeError, match="state must be a ReinitState"):
        check_reinit_state({"version": 1})
    assert isinstance(rstate, ReinitState)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(params="reinit"), TypeError, "params must be a ParamResetPolicy"),
        (dict(plateau={"metric": "loss"}), TypeError, "plateau must be a PlateauConfig or None"),
        (dict(strength=1.5), ValueError, r"strength must be in \[0, 1\], got 1.5"),
        (dict(clock="epochs"), ValueError, "clock must be one of"),
    ],
)
def test_config_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReinitConfig(**kwargs)


def test_metric_strength_grows_with_the_distance_to_the_target():
    from algoperf_reinit.reinit import metric_strength

    class Target:
        target_metric_name = "accuracy"
        validation_target_value = 0.9

    strength = metric_strength("max", full_at=0.5)
    assert strength([], Target()) == 0.0
    near = strength([(10, {"validation/accuracy": 0.85})], Target())
    far = strength([(10, {"validation/accuracy": 0.3})], Target())
    reached = strength([(10, {"validation/accuracy": 0.95})], Target())
    assert reached == 0.0 < near < far <= 1.0
    assert strength([(10, {"validation/accuracy": float("nan")})], Target()) == 0.0
    ReinitConfig(strength=strength)  # accepted as the config's strength


def test_a_reset_touches_only_the_leaves_of_the_given_mask():
    from algoperf_reinit.reinit import param_reset_mask

    params, model_state, opt_state, rstate, _, _ = initial_carry()
    policy = ParamResetPolicy("reinit", pattern="Dense_1")
    config = dataclasses.replace(CONFIG, params=policy)
    mask = param_reset_mask(policy, params, workload=TinyWorkload())
    boundary = int(make_table().boundaries()[1])
    out = model_reinit_schedule(boundary, TinyWorkload(), None, None, [], rstate, params,
                                model_state, opt_state, config, mask=mask)
    unmasked = model_reinit_schedule(boundary, TinyWorkload(), None, None, [], rstate, params,
                                     model_state, opt_state, config)
    assert [e.kind for e in out.events] == ["reset"]
    jax.tree.map(np.testing.assert_array_equal, out.params, unmasked.params)
    assert out.params["Dense_0"]["kernel"] is params["Dense_0"]["kernel"]  # not selected
    assert not np.array_equal(out.params["Dense_1"]["kernel"], params["Dense_1"]["kernel"])
    narrower = jax.tree.map(lambda flag: False, mask)
    narrower["Dense_1"]["kernel"] = True
    out = model_reinit_schedule(boundary, TinyWorkload(), None, None, [], rstate, params,
                                model_state, opt_state, config, mask=narrower)
    assert out.params["Dense_1"]["bias"] is params["Dense_1"]["bias"]  # the mask decides


def test_a_jitted_reset_fn_compiles_once_and_matches_the_eager_reset(full_run):
    from algoperf_reinit.reinit import make_reset_fn

    (params_full, _, _, rstate_full, _, events_full), _ = full_run
    reset_fn = make_reset_fn(CONFIG, TinyWorkload(), tx=nadamw(make_table()))
    params, _, _, rstate, _, events = train(0, STEPS, initial_carry(), [], reset_fn=reset_fn)
    assert [(e.step, e.kind) for e in events] == [(e.step, e.kind) for e in events_full]
    assert int(rstate.num_resets) == int(rstate_full.num_resets) >= 2
    assert reset_fn._cache_size() == 1
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 params, params_full)
