"""Single- and multi-cycle tables equal optax's schedules (float32, rtol 1e-5 + 1e-6*peak)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algoperf_reinit.schedules import (
    CycleSpec,
    Decay,
    ScheduleConfig,
    build_cycle_table,
    jax_lr_schedule,
    table_from_cycles,
)

_eval = jax.jit(lambda table, t: table(t))


def assert_matches(table, reference, steps, peak):
    t = jnp.asarray(steps, jnp.int32)
    ours = np.asarray(_eval(table, t), np.float64)
    theirs = np.asarray(jax.vmap(reference)(t), np.float64)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * peak)


STEPS = np.arange(0, 1300)


@pytest.mark.parametrize(("init", "end"), [(1e-3, 1e-5), (1e-5, 1e-3)])
def test_linear_schedule(init, end):
    if init > end:
        table = table_from_cycles([CycleSpec(length=1000, peak=init, end_value=end,
                                             warmup_shape="none", decay_shape="linear")])
    else:  # an increasing ramp is a linear warmup followed by a constant phase
        table = table_from_cycles([CycleSpec(length=1001, warmup=1000, init_value=init, peak=end,
                                             decay_shape="constant")])
    assert_matches(table, optax.linear_schedule(init, end, 1000), STEPS, max(init, end))


@pytest.mark.parametrize("alpha", [0.0, 0.1])
@pytest.mark.parametrize("exponent", [1.0, 2.0, 0.5])
def test_cosine_decay_schedule(alpha, exponent):
    table = table_from_cycles([CycleSpec(length=1000, peak=3e-3, end_value=alpha * 3e-3,
                                         warmup_shape="none",
                                         decay_shape=Decay.cosine(exponent=exponent))])
    reference = optax.cosine_decay_schedule(3e-3, 1000, alpha=alpha, exponent=exponent)
    assert_matches(table, reference, STEPS, 3e-3)


@pytest.mark.parametrize("exponent", [1.0, 3.0])
def test_warmup_cosine_decay_schedule(exponent):
    table = table_from_cycles([CycleSpec(length=1000, warmup=137, init_value=1e-5, peak=2e-3,
                                         end_value=1e-4,
                                         decay_shape=Decay.cosine(exponent=exponent))])
    reference = optax.warmup_cosine_decay_schedule(1e-5, 2e-3, 137, 1000, 1e-4,
                                                   exponent=exponent)
    assert_matches(table, reference, STEPS, 2e-3)


def test_warmup_cosine_via_config_rules():
    table = build_cycle_table(ScheduleConfig(), 1000, 2e-3, 0.05)
    assert_matches(table, optax.warmup_cosine_decay_schedule(0.0, 2e-3, 50, 1000), STEPS, 2e-3)


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize("end_value", [None, 4e-4])
def test_warmup_exponential_decay_schedule(staircase, end_value):
    # optax's exponential decay never ends; compare inside one long cycle.
    table = table_from_cycles([CycleSpec(
        length=5000, warmup=100, init_value=0.0, peak=2e-3,
        end_value=0.0 if end_value is None else end_value,
        decay_shape=Decay.exponential(rate=0.7, transition_steps=150, staircase=staircase))])
    reference = optax.warmup_exponential_decay_schedule(
        0.0, 2e-3, 100, 150, 0.7, staircase=staircase, end_value=end_value)
    assert_matches(table, reference, STEPS, 2e-3)


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_schedule(power):
    table = table_from_cycles([CycleSpec(length=800, peak=1e-2, end_value=1e-4,
                                         warmup_shape="none",
                                         decay_shape=Decay.polynomial(power))])
    reference = optax.polynomial_schedule(1e-2, 1e-4, power, 800)
    assert_matches(table, reference, STEPS, 1e-2)


def test_sgdr_schedule_multi_cycle():
    kwargs = [
        dict(init_value=0.0, peak_value=1e-3, warmup_steps=20, decay_steps=200, end_value=1e-5),
        dict(init_value=1e-4, peak_value=2e-3, warmup_steps=50, decay_steps=300, end_value=0.0),
        dict(init_value=0.0, peak_value=5e-4, warmup_steps=0, decay_steps=250, end_value=1e-5,
             exponent=2.0),
    ]
    cycles = [
        CycleSpec(length=k["decay_steps"], warmup=k["warmup_steps"], init_value=k["init_value"],
                  peak=k["peak_value"], end_value=k["end_value"],
                  warmup_shape="linear" if k["warmup_steps"] else "none",
                  decay_shape=Decay.cosine(exponent=k.get("exponent", 1.0)))
        for k in kwargs
    ]
    table = table_from_cycles(cycles, capacity=16)
    # Inside the cycles; after the last one optax restarts its last piece's clock
    # differently, while ours holds the end value (documented).
    assert_matches(table, optax.sgdr_schedule(kwargs), np.arange(0, 750), 2e-3)


def test_seed_style_alterations_equal_sgdr():
    hp = {"learning_rate": 1e-3, "warmup_factor": 0.1}
    schedule, has_multiple, reinit_steps = jax_lr_schedule(
        900, hp, {"alter_lr": [0.0, 5e-4, -5e-4], "alter_warmupfactor": [0.0, 0.1, -0.05]})
    assert has_multiple and reinit_steps == [300, 600]
    kwargs = [
        dict(init_value=0.0, peak_value=1e-3, warmup_steps=30, decay_steps=300),
        dict(init_value=0.0, peak_value=1.5e-3, warmup_steps=60, decay_steps=300),
        dict(init_value=0.0, peak_value=5e-4, warmup_steps=15, decay_steps=300),
    ]
    assert_matches(schedule, optax.sgdr_schedule(kwargs), np.arange(0, 900), 1.5e-3)


def test_algoperf_baseline_schedule():
    # AlgoPerf's NAdamW baseline: linear warmup to lr over int(warmup_factor * step_hint)
    # steps, then cosine to 0 over the rest of step_hint, joined with optax.
    step_hint, lr, wf = 1234, 1.7e-3, 0.05
    warmup_steps = int(wf * step_hint)
    reference = optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup_steps),
         optax.cosine_decay_schedule(lr, max(step_hint - warmup_steps, 1))],
        [warmup_steps])
    schedule, has_multiple, reinit_steps = jax_lr_schedule(
        step_hint, {"learning_rate": lr, "warmup_factor": wf})
    assert not has_multiple and reinit_steps == []
    assert_matches(schedule, reference, np.arange(0, 1500), lr)
