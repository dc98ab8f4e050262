"""Property tests (hypothesis) for the schedule invariants.

Every table is padded to the same capacity and evaluated on a grid of fixed size,
so the whole file compiles the evaluation once; examples are capped to keep it fast.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algoperf_reinit.schedules import (
    DECAY_NAMES,
    Decay,
    ScheduleConfig,
    Warmup,
    cycle_index,
    jax_lr_schedule,
)

CAPACITY = 8
GRID = 512
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@jax.jit
def _values_and_cycles(table, t):
    return table(t), cycle_index(table, t)


warmups = st.one_of(
    st.sampled_from([Warmup.none(), Warmup.linear(), Warmup.cosine(), Warmup.log()]),
    st.floats(0.5, 2.0).map(Warmup.polynomial),
)
decays = st.one_of(
    st.sampled_from([Decay(name) for name in DECAY_NAMES if name != "exponential"]),
    st.floats(0.5, 3.0).map(lambda e: Decay.cosine(exponent=e)),
    st.tuples(st.floats(0.05, 1.0), st.booleans()).map(
        lambda a: Decay.exponential(a[0], staircase=a[1])),
    st.tuples(st.floats(0.05, 1.0), st.sampled_from(["linear", "1-sqrt"])).map(
        lambda a: Decay.wsd(*a)),
)


@st.composite
def schedules(draw):
    n = draw(st.integers(1, CAPACITY))
    per_cycle = lambda strategy: draw(st.lists(strategy, min_size=n, max_size=n))  # noqa: E731
    budget = draw(st.integers(20 * n, 20_000))
    lr = draw(st.floats(1e-5, 1.0))
    warmup_factor = draw(st.floats(0.0, 0.5))
    cycle_decay = draw(st.floats(0.5, 1.0))
    config = ScheduleConfig(
        num_cycles=n,
        cycle_mul=draw(st.floats(0.7, 1.5)),
        cycle_decay=cycle_decay,
        warmup_shapes=tuple(per_cycle(warmups)),
        decay_shapes=tuple(per_cycle(decays)),
        alter_lr=tuple(per_cycle(st.floats(0.0, lr))),
        alter_warmup=tuple(per_cycle(st.floats(-warmup_factor, 0.4))),
        # at most half of the smallest peak, lr * cycle_decay ** (n - 1)
        init_value=draw(st.floats(0.0, 0.5)) * lr * cycle_decay ** (n - 1),
        end_factor=draw(st.floats(0.0, 1.0)),
    )
    return config, budget, lr, warmup_factor


@SETTINGS
@given(schedules())
def test_values_stay_within_init_end_and_peak(args):
    config, budget, lr, wf = args
    table, _, _ = jax_lr_schedule(budget, {"learning_rate": lr, "warmup_factor": wf}, config,
                                  capacity=CAPACITY)
    t = jnp.linspace(-10.0, budget * 1.2, GRID)
    values, cycles = map(np.asarray, _values_and_cycles(table, t))
    init = np.asarray(table.init_value)[cycles]
    end = np.asarray(table.end_value)[cycles]
    peak = np.asarray(table.peak)[cycles]
    slack = 1e-5 * peak + 1e-12
    assert np.all(values <= peak + slack)
    assert np.all(values >= np.minimum(init, end) - slack)
    assert np.all(np.isfinite(values))


@SETTINGS
@given(schedules())
def test_continuity_at_every_warmup_end(args):
    config, budget, lr, wf = args
    table, _, _ = jax_lr_schedule(budget, {"learning_rate": lr, "warmup_factor": wf}, config,
                                  capacity=CAPACITY)
    n = table.num_cycles
    start, warmup = np.asarray(table.start)[:n], np.asarray(table.warmup)[:n]
    peak, init = np.asarray(table.peak)[:n], np.asarray(table.init_value)[:n]
    has_warmup = warmup >= 1
    # Just before each warmup end (padded to the fixed grid size).
    t = np.zeros(GRID, np.float32)
    t[:n] = start + warmup - 1e-2
    values = np.asarray(_values_and_cycles(table, jnp.asarray(t))[0])[:n]
    gap = np.abs(values - peak)[has_warmup]
    assert np.all(gap <= 0.05 * (peak - init)[has_warmup] + 1e-5 * peak[has_warmup])
    # At the warmup end itself the value is exactly the peak (owned by the decay).
    t[:n] = start + warmup
    at_end = np.asarray(_values_and_cycles(table, jnp.asarray(t))[0])[:n]
    np.testing.assert_allclose(at_end, peak, rtol=1e-5)


@SETTINGS
@given(schedules())
def test_boundaries_increase_and_equal_reinit_steps(args):
    config, budget, lr, wf = args
    table, has_multiple, reinit_steps = jax_lr_schedule(
        budget, {"learning_rate": lr, "warmup_factor": wf}, config, capacity=CAPACITY)
    boundaries = table.boundaries()
    assert all(b > a for a, b in itertools.pairwise(boundaries))
    assert boundaries[0] == 0 and boundaries[-1] == budget
    assert reinit_steps == [int(b) for b in boundaries[1:-1]]
    assert has_multiple == (len(boundaries) > 2)
    lengths = np.diff(boundaries)
    assert np.all(np.asarray(table.warmup)[: table.num_cycles] < lengths)
