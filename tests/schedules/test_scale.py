"""The optimizer reads its learning rate from a cycle table held in its state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algoperf_reinit.optim import adamw, nadamw
from algoperf_reinit.reinit import OptimizerResetPolicy, reset_optimizer_state
from algoperf_reinit.schedules import (
    CycleScheduleState,
    ScheduleConfig,
    build_cycle_table,
    current_cycle,
    current_learning_rate,
    replace_table,
    scale_by_cycle_table,
    schedule_state,
    set_clock_time,
)

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}


def grads_at(step):
    return jax.tree.map(lambda p: jnp.sin(p + 0.1 * step) + 0.01, PARAMS)


def run(tx, steps, opt_state=None, params=PARAMS):
    opt_state = tx.init(params) if opt_state is None else opt_state
    for s in range(steps):
        updates, opt_state = tx.update(grads_at(s), opt_state, params)
        params = optax.apply_updates(params, updates)
    return params, opt_state


def test_table_in_state_equals_the_same_schedule_as_a_function():
    table = build_cycle_table(ScheduleConfig(num_cycles=3), 30, 1e-2, 0.2, capacity=4)
    ours, _ = run(nadamw(table, weight_decay=0.1), 30)
    reference, _ = run(nadamw(lambda c: table(c), weight_decay=0.1), 30)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 ours, reference)


def test_replacing_the_table_changes_the_rate_without_recompiling():
    traces = []
    table_a = build_cycle_table(ScheduleConfig(num_cycles=2), 40, 1e-2, 0.1, capacity=4)
    table_b = build_cycle_table(ScheduleConfig(num_cycles=4), 40, 5e-2, 0.0, capacity=4)
    tx = adamw(table_a)

    @jax.jit
    def step(params, opt_state, grads):
        traces.append(None)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    params, opt_state = PARAMS, tx.init(PARAMS)
    for s in range(5):
        params, opt_state = step(params, opt_state, grads_at(s))
    assert current_learning_rate(opt_state) == pytest.approx(float(table_a(5)))
    opt_state = replace_table(opt_state, table_b)
    assert int(schedule_state(opt_state).step) == 5  # the position is kept
    assert current_learning_rate(opt_state) == pytest.approx(float(table_b(5)))
    assert current_cycle(opt_state) == 0
    for s in range(5, 15):
        params, opt_state = step(params, opt_state, grads_at(s))
    assert current_cycle(opt_state) == 1
    assert len(traces) == 1


def test_replace_table_rejects_another_capacity():
    tx = adamw(build_cycle_table(ScheduleConfig(num_cycles=2), 40, 1e-2, 0.1, capacity=4))
    state = tx.init(PARAMS)
    bigger = build_cycle_table(ScheduleConfig(num_cycles=2), 40, 1e-2, 0.1, capacity=8)
    with pytest.raises(ValueError, match=r"build it with capacity=4"):
        replace_table(state, bigger)


def test_no_schedule_state_is_a_clear_error():
    with pytest.raises(ValueError, match="opt_state holds no CycleScheduleState"):
        replace_table(optax.adam(1e-3).init(PARAMS), build_cycle_table(ScheduleConfig(), 10, 1.0,
                                                                      0.0))


def test_seconds_clock_reads_the_time_written_by_the_host():
    table = build_cycle_table(ScheduleConfig(num_cycles=2, clock="seconds"), 100.0, 1e-2, 0.1)
    tx = optax.chain(optax.identity(), scale_by_cycle_table(table, clock="seconds"))
    state = set_clock_time(tx.init(PARAMS), 52.5)
    updates, state = tx.update(jax.tree.map(jnp.ones_like, PARAMS), state)
    np.testing.assert_allclose(updates["b"], -float(table(52.5)) * np.ones(3), rtol=1e-6)
    assert current_learning_rate(state, clock="seconds") == pytest.approx(float(table(52.5)))
    with pytest.raises(ValueError, match="clock='seconds' needs learning_rate to be a CycleTable"):
        adamw(1e-3, clock="seconds")


@pytest.mark.parametrize("policy", [OptimizerResetPolicy(mode="reinit", count="reset"),
                                    OptimizerResetPolicy(mode="zero", count="reset"),
                                    OptimizerResetPolicy()])
def test_optimizer_resets_never_move_the_schedule(policy):
    table = build_cycle_table(ScheduleConfig(num_cycles=2), 20, 1e-2, 0.1, capacity=2)
    tx = nadamw(table)
    _, state = run(tx, 7)
    reset = reset_optimizer_state(policy, state, PARAMS, tx=tx)
    before, after = schedule_state(state), schedule_state(reset)
    assert isinstance(after, CycleScheduleState)
    assert int(after.step) == 7
    jax.tree.map(np.testing.assert_array_equal, before.table, after.table)
    assert jax.tree.structure(reset) == jax.tree.structure(state)


def test_step_counter_saturates_at_the_int32_maximum():
    table = build_cycle_table(ScheduleConfig(num_cycles=2), 20, 1e-2, 0.1)
    tx = scale_by_cycle_table(table)
    state = tx.init(PARAMS)._replace(step=jnp.asarray(np.iinfo(np.int32).max - 1, jnp.int32))
    update = jax.jit(tx.update)
    for _ in range(3):
        _, state = update(PARAMS, state)
    assert state.step.dtype == jnp.int32 and int(state.step) == np.iinfo(np.int32).max
