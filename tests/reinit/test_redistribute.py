"""Tests for ending a cycle early and redistributing the budget left."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algoperf_reinit.reinit._redistribute import (
    RULES,
    EarlyStopResult,
    Redistribution,
    end_cycle_early,
)
from algoperf_reinit.schedules import CycleSpec, CycleTable, Decay, Warmup, table_from_cycles

CAPACITY = 8
EQUAL = Redistribution("equal")
# A padding row, as table_from_cycles writes it.
PAD = {f: np.asarray(getattr(table_from_cycles([CycleSpec(1)], capacity=2), f))[1:]
       for f in CycleTable._fields}
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def seed_table(**kwargs):
    """The seed's plan: 3 equal cycles over 900 steps, 10% warmup."""
    return table_from_cycles([CycleSpec(300, warmup=30, peak=1e-3, **kwargs)] * 3,
                             capacity=CAPACITY)


def assert_tables_equal(actual, expected, params_rtol=0.0):
    for name, a, e in zip(CycleTable._fields, actual, expected, strict=True):
        assert np.asarray(a).dtype == np.asarray(e).dtype, name
        if name == "decay_params":
            np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=params_rtol,
                                       err_msg=name)
        else:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e), err_msg=name)


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize("rule", ["equal", "proportional"])
def test_seed_example_plateau_in_cycle_1(rule):
    result = end_cycle_early(seed_table(), 450, Redistribution(rule))
    assert isinstance(result, EarlyStopResult)
    assert result.applied and result.cycle == 1 and result.dropped == 0
    assert result.old_boundaries == [0.0, 300.0, 600.0, 900.0]
    assert result.new_boundaries == [0.0, 300.0, 450.0, 900.0]
    assert result.reason == "ended cycle 1 at step 450; 1 cycle gets the remaining 450 steps"
    # Cycle 1 keeps its warmup (its decay is cut); cycle 2 keeps its 10% warmup fraction.
    expected = table_from_cycles(
        [CycleSpec(300, warmup=30, peak=1e-3), CycleSpec(150, warmup=30, peak=1e-3),
         CycleSpec(450, warmup=45, peak=1e-3)],
        capacity=CAPACITY,
    )
    assert_tables_equal(result.table, expected)


def test_two_cycles_share_the_rest():
    table = table_from_cycles([CycleSpec(250, warmup=25)] * 4, capacity=CAPACITY)
    result = end_cycle_early(table, 450, EQUAL)
    assert result.reason == "ended cycle 1 at step 450; 2 cycles share the remaining 550 steps"
    assert result.new_boundaries == [0.0, 250.0, 450.0, 725.0, 1000.0]
    np.testing.assert_array_equal(np.asarray(result.table.warmup)[:4], [25, 25, 27, 27])


def test_stop_in_the_last_cycle_is_not_applied():
    table = seed_table()
    result = end_cycle_early(table, 700, EQUAL)
    assert not result.applied and result.table is table and result.cycle == 2
    assert "last cycle" in result.reason and "continues" in result.reason
    assert result.new_boundaries == result.old_boundaries and result.dropped == 0


@pytest.mark.parametrize(("t", "words"), [
    (300, "start of cycle 1"),
    (310, "still in its warmup"),
    (330, "still in its warmup"),  # elapsed == warmup: no decay step yet
])
def test_stop_at_a_start_or_in_the_warmup_is_not_applied(t, words):
    table = seed_table()
    result = end_cycle_early(table, t, EQUAL)
    assert not result.applied and result.table is table and result.cycle == 1
    assert words in result.reason


def test_first_step_after_the_warmup_can_end_the_cycle():
    result = end_cycle_early(seed_table(), 331, EQUAL)
    assert result.applied and result.new_boundaries == [0.0, 300.0, 331.0, 900.0]


@pytest.mark.parametrize(("t", "cycle"), [(50, -1), (99, -1), (1000, -1), (1200, -1)])
def test_time_outside_the_table_is_not_applied(t, cycle):
    table = table_from_cycles([CycleSpec(300, warmup=30)] * 3, origin=100, capacity=CAPACITY)
    result = end_cycle_early(table, t)
    assert not result.applied and result.table is table and result.cycle == cycle
    assert "outside the schedule [100, 1000)" in result.reason


def test_a_table_of_padding_only_is_not_applied():
    table = seed_table()
    empty = table._replace(start=jnp.full_like(table.start, jnp.inf))
    result = end_cycle_early(empty, 450)
    assert not result.applied and result.table is empty and result.cycle == -1
    assert result.reason == "not applied: the table has no cycles"


def test_trailing_cycles_are_dropped_when_the_rest_is_too_short():
    table = table_from_cycles([CycleSpec(100, warmup=10), CycleSpec(4), CycleSpec(5),
                               CycleSpec(5)], capacity=CAPACITY)
    result = end_cycle_early(table, 99, Redistribution("equal", min_cycle_length=10))
    assert result.applied and result.dropped == 2 and result.table.num_cycles == 2
    assert result.new_boundaries == [0.0, 99.0, 114.0]
    assert "dropped 2 trailing cycles" in result.reason and "at least 10 steps" in result.reason
    expected = table_from_cycles([CycleSpec(99, warmup=10), CycleSpec(15)], capacity=CAPACITY)
    assert_tables_equal(result.table, expected)


def test_no_room_for_a_single_cycle_is_not_applied():
    table = table_from_cycles([CycleSpec(100, warmup=10), CycleSpec(15)], capacity=CAPACITY)
    result = end_cycle_early(table, 99, Redistribution(min_cycle_length=20))
    assert not result.applied and result.table is table
    assert "cannot hold one cycle of at least 20 steps" in result.reason


def test_min_cycle_length_is_rounded_up_to_whole_steps():
    table = table_from_cycles([CycleSpec(100, warmup=10), CycleSpec(10), CycleSpec(10)])
    refused = end_cycle_early(table, 105, Redistribution(min_cycle_length=15.5))
    assert not refused.applied and "at least 16 steps" in refused.reason
    assert end_cycle_early(table, 105, Redistribution(min_cycle_length=15.0)).applied
    assert end_cycle_early(table, 90, Redistribution(min_cycle_length=15.0)).dropped == 0
    result = end_cycle_early(table, 90, Redistribution(min_cycle_length=15.5))
    assert result.dropped == 1 and result.new_boundaries == [0.0, 90.0, 120.0]


def test_proportional_keeps_geometric_growth():
    table = table_from_cycles([CycleSpec(n) for n in (100, 100, 200, 400)], capacity=CAPACITY)
    result = end_cycle_early(table, 50, Redistribution("proportional"))
    assert result.new_boundaries == [0.0, 50.0, 157.0, 371.0, 800.0]  # 107, 214, 429


def test_geometric_rule():
    table = table_from_cycles([CycleSpec(100)] * 4, capacity=CAPACITY)
    result = end_cycle_early(table, 50, Redistribution("geometric", ratio=2.0))
    assert result.new_boundaries == [0.0, 50.0, 100.0, 200.0, 400.0]  # 50, 100, 200
    result = end_cycle_early(table, 50, Redistribution("geometric", ratio=0.5))
    assert result.new_boundaries == [0.0, 50.0, 250.0, 350.0, 400.0]  # 200, 100, 50


def test_decay_parameters_follow_the_resized_cycle():
    shapes = [Decay.exponential(), Decay.exponential(transition_steps=54), Decay.rsqrt(),
              Decay.rsqrt(timescale=60), Decay.wsd(0.3, "1-sqrt"), Decay.cosine(2.0, 0.5)]
    table = table_from_cycles(
        [CycleSpec(300, warmup=30, decay_shape=Decay.exponential())]
        + [CycleSpec(300, warmup=30, decay_shape=d) for d in shapes],
        capacity=CAPACITY,
    )
    result = end_cycle_early(table, 150, EQUAL)  # 1950 steps: 325 each, warmup 32
    # Transition lengths scale with the decay phase (270 -> 293 steps), timescales with
    # the warmup (30 -> 32 steps); the defaults stay the defaults.
    resized = [Decay.exponential(), Decay.exponential(transition_steps=54 * 293 / 270),
               Decay.rsqrt(), Decay.rsqrt(timescale=60 * 32 / 30), shapes[4], shapes[5]]
    expected = table_from_cycles(
        # The ended cycle keeps its parameters: exponential over its planned 270 steps.
        [CycleSpec(150, warmup=30, decay_shape=Decay.exponential(transition_steps=270))]
        + [CycleSpec(325, warmup=32, decay_shape=d) for d in resized],
        capacity=CAPACITY,
    )
    assert_tables_equal(result.table, expected, params_rtol=1e-6)


def test_decay_begin_keeps_its_relation_to_the_warmup():
    table = table_from_cycles([CycleSpec(300, warmup=30), CycleSpec(300, warmup=30, decay_begin=0),
                               CycleSpec(300, warmup=30, decay_begin=15)])
    result = end_cycle_early(table, 150, EQUAL)  # 375 steps each, warmup 37
    np.testing.assert_array_equal(np.asarray(result.table.warmup), [30, 37, 37])
    np.testing.assert_array_equal(np.asarray(result.table.decay_begin), [30, 0, 18.5])


def test_seconds_clock():
    table = table_from_cycles([CycleSpec(300.5, warmup=30.05)] * 3, capacity=CAPACITY,
                              clock="seconds")
    result = end_cycle_early(table, 450.25, EQUAL, clock="seconds")
    assert result.applied and result.new_boundaries == [0.0, 300.5, 450.25, 901.5]
    assert result.reason == "ended cycle 1 at 450.25; 1 cycle gets the remaining 451.25 s"
    np.testing.assert_allclose(float(result.table.warmup[2]), 0.1 * 451.25, rtol=1e-6)


def test_layer_tokens_clock_says_layer_tokens():
    table = table_from_cycles([CycleSpec(3.0e6, warmup=3.0e5)] * 3, capacity=CAPACITY,
                              clock="layer_tokens")
    result = end_cycle_early(table, 4.5e6, EQUAL, clock="layer_tokens")
    assert result.applied and result.new_boundaries == [0.0, 3.0e6, 4.5e6, 9.0e6]
    assert result.reason == ("ended cycle 1 at 4500000; 1 cycle gets the remaining 4500000 "
                             "layer tokens")


def test_new_table_evaluates_the_next_cycle_from_t():
    table = table_from_cycles([CycleSpec(300, warmup=30, peak=1e-3, init_value=1e-4)] * 3,
                              capacity=CAPACITY)
    new = end_cycle_early(table, 450, EQUAL).table
    assert float(new(450)) == pytest.approx(1e-4)  # the next cycle's warmup starts
    assert float(new(495)) == pytest.approx(1e-3)  # its new 45-step warmup ends at the peak
    assert float(new(449)) < 1e-3  # still cycle 1, past its peak
    assert float(new(900)) == 0.0  # the end value at the budget end
    assert float(new(300)) == float(table(300)) and float(new(100)) == float(table(100))


def test_jitted_evaluation_compiles_once_for_old_and_new_tables():
    traces = []

    @jax.jit
    def value(tab, s):
        traces.append(s)
        return tab(s)

    old = seed_table()
    stopped = end_cycle_early(old, 450, EQUAL).table
    dropped = end_cycle_early(
        table_from_cycles([CycleSpec(100, warmup=10)] + [CycleSpec(5)] * 3, capacity=CAPACITY),
        99, Redistribution(min_cycle_length=10)).table
    values = [float(value(tab, 450)) for tab in (old, stopped, dropped)]
    assert len(traces) == 1
    assert values[0] != values[1]


def test_repeated_stops_conserve_the_budget():
    table = table_from_cycles([CycleSpec(250, warmup=25)] * 4, capacity=CAPACITY)
    first = end_cycle_early(table, 400, EQUAL)
    second = end_cycle_early(first.table, 650, EQUAL)
    assert second.applied and second.cycle == 2
    assert second.new_boundaries == [0.0, 250.0, 400.0, 650.0, 1000.0]


# -------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("t", "error", "match"), [
    (float("nan"), ValueError, "t must be a number, not NaN, got nan"),
    (math.inf, ValueError, "t must be finite, got inf"),
    (450.5, ValueError, "t must be a whole number of steps on the 'steps' clock, got 450.5"),
    ("450", TypeError, "t must be a number"),
    (True, TypeError, "t must be a number"),
    (np.array([450]), TypeError, "t must be a number"),
])
def test_bad_time(t, error, match):
    with pytest.raises(error, match=match):
        end_cycle_early(seed_table(), t)


def test_numpy_and_jax_scalars_are_accepted():
    for t in (np.int64(450), np.float32(450.0), jnp.asarray(450)):
        assert end_cycle_early(seed_table(), t, EQUAL).new_boundaries[2] == 450.0


def test_bad_table_clock_or_rule():
    with pytest.raises(TypeError, match=r"table must be a CycleTable, got \{'start': \[0.0\]\} of "
                                        "type dict"):
        end_cycle_early({"start": [0.0]}, 1)
    with pytest.raises(ValueError, match="clock must be one of"):
        end_cycle_early(seed_table(), 450, clock="epochs")
    with pytest.raises(TypeError, match="redistribution must be a Redistribution, got 'equal' of "
                                        "type str"):
        end_cycle_early(seed_table(), 450, "equal")
    seconds = table_from_cycles([CycleSpec(100.5)] * 2, clock="seconds")
    with pytest.raises(ValueError, match=r"table.start must hold whole numbers of steps"):
        end_cycle_early(seconds, 120)
    with pytest.raises(TypeError, match="concrete CycleTable"):
        jax.jit(lambda tab: end_cycle_early(tab, 450).table)(seed_table())


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(rule="halves"), ValueError, r"Redistribution.rule must be one of .*got 'halves'"),
    (dict(rule=1), TypeError, r"Redistribution.rule must be one of .*, got 1 of type int"),
    (dict(rule="geometric", ratio=0.0), ValueError, "Redistribution.ratio must be > 0, got 0.0"),
    (dict(rule="geometric", ratio=math.nan), ValueError,
     "Redistribution.ratio must be a number, not NaN"),
    (dict(rule="geometric", ratio="2"), TypeError,
     "Redistribution.ratio must be a real number, got '2' of type str"),
    (dict(rule="equal", ratio=2.0), ValueError, "used by rule 'geometric' only"),
    (dict(min_cycle_length=-1), ValueError, "Redistribution.min_cycle_length must be > 0, got -1"),
])
def test_redistribution_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        Redistribution(**kwargs)


def test_default_rule_is_proportional():
    assert Redistribution() == Redistribution("proportional", 1.0, 1.0)
    assert set(RULES) == {"equal", "proportional", "geometric"}


# --------------------------------------------------------------------------- properties


@st.composite
def stop_cases(draw):
    clock = draw(st.sampled_from(["steps", "seconds"]))
    dyadic = clock == "steps" or draw(st.booleans())
    n = draw(st.integers(1, CAPACITY))
    cycles = []
    for _ in range(n):
        if clock == "steps":
            length = float(draw(st.integers(2, 2500)))
        elif dyadic:
            length = draw(st.integers(16, 2500 * 64)) / 64
        else:
            length = draw(st.floats(0.5, 2500.0))
        fraction = draw(st.floats(0.0, 0.9))
        warmup = math.floor(fraction * length) if clock == "steps" else fraction * length
        peak = draw(st.floats(1e-4, 1.0))
        cycles.append(CycleSpec(
            length, warmup=warmup, peak=peak, init_value=peak * draw(st.floats(0.0, 1.0)),
            end_value=peak * draw(st.floats(0.0, 1.0)),
            warmup_shape=draw(st.sampled_from([Warmup.linear(), Warmup.cosine(), Warmup.none(),
                                               Warmup.polynomial(2.0)])),
            decay_shape=draw(st.sampled_from(
                [Decay.cosine(), Decay.linear(), Decay.exponential(), Decay.rsqrt(),
                 Decay.wsd(), Decay.exponential(transition_steps=37.0)])),
            decay_begin=draw(st.sampled_from([None, 0.0])),
        ))
    origin = float(draw(st.integers(0, 1000))) if dyadic else draw(st.floats(0.0, 1000.0))
    table = table_from_cycles(cycles, origin=origin, capacity=CAPACITY, clock=clock)
    bounds = table.boundaries()
    if draw(st.booleans()):  # anywhere, sometimes just outside the table
        t = bounds[0] + draw(st.floats(-0.02, 1.02)) * (bounds[-1] - bounds[0])
    else:  # inside a chosen cycle, most often one with cycles after it
        c = draw(st.integers(0, max(n - 2, 0)))
        t = bounds[c] + draw(st.floats(0.05, 1.0)) * (bounds[c + 1] - bounds[c])
    t = float(math.floor(t)) if clock == "steps" else t
    rule = draw(st.sampled_from(RULES))
    ratio = draw(st.floats(0.25, 4.0)) if rule == "geometric" else 1.0
    minimum = draw(st.sampled_from([1.0, 2.5, 10.0, 100.0, 500.0]))
    return table, t, Redistribution(rule, ratio, minimum), clock, dyadic


@SETTINGS
@given(stop_cases())
def test_early_stop_invariants(case):
    table, t, red, clock, dyadic = case
    result = end_cycle_early(table, t, red, clock=clock)
    new, old = result.table, table
    assert new.capacity == CAPACITY
    for a, b in zip(new, old, strict=True):
        assert jnp.shape(a) == jnp.shape(b) and jnp.result_type(a) == jnp.result_type(b)
    old_b = np.asarray(result.old_boundaries)
    assert result.old_boundaries == old.boundaries()
    assert result.new_boundaries == new.boundaries()
    n = len(old_b) - 1
    if not result.applied:
        assert new is old and result.new_boundaries == result.old_boundaries
        assert result.dropped == 0
        if clock == "steps":  # refused only for a stated reason
            c = int(np.searchsorted(old_b[:n], t, side="right")) - 1
            outside = t < old_b[0] or t >= old_b[-1]
            assert (outside or c == n - 1 or t - old_b[c] <= float(old.warmup[c])
                    or old_b[-1] - t < max(math.ceil(red.min_cycle_length), 1)), result.reason
        return

    c, dropped = result.cycle, result.dropped
    new_b = np.asarray(result.new_boundaries)
    kept = n - c - 1 - dropped
    assert kept >= 1 and len(new_b) == c + kept + 2 and new.num_cycles == n - dropped
    assert np.all(np.diff(new_b) > 0) and np.all(np.diff(np.asarray(new.start)[:n - dropped]) > 0)
    assert np.array_equal(new_b[:c + 1], old_b[:c + 1])
    grid = 1.0 if clock == "steps" else float(np.spacing(np.float32(old_b[-1])))
    assert old_b[c] < new_b[c + 1] < old_b[c + 1] and abs(new_b[c + 1] - t) <= grid / 2
    # The budget end is conserved: exactly on steps, to float32 rounding of the last length
    # on seconds (exactly when the end is itself a float32 number).
    if clock == "steps":
        assert new_b[-1] == old_b[-1]
    elif dyadic:
        assert abs(new_b[-1] - old_b[-1]) <= 1e-9 * old_b[-1]
    else:
        assert abs(new_b[-1] - old_b[-1]) <= np.spacing(np.float32(new_b[-1] - new_b[-2]))

    cols_new = {f: np.asarray(getattr(new, f)) for f in CycleTable._fields}
    cols_old = {f: np.asarray(getattr(old, f)) for f in CycleTable._fields}
    for f in CycleTable._fields:  # rows before the ended one: bit for bit
        assert cols_new[f][:c].tobytes() == cols_old[f][:c].tobytes(), f
        if f != "length":  # the ended row: only its length changes
            assert cols_new[f][c].tobytes() == cols_old[f][c].tobytes(), f
        if f not in ("start", "length", "warmup", "decay_begin", "decay_params"):
            assert np.array_equal(cols_new[f][:c + kept + 1], cols_old[f][:c + kept + 1]), f
        assert np.array_equal(cols_new[f][n - dropped:], np.repeat(PAD[f], CAPACITY - n + dropped,
                                                                 axis=0)), f

    length, warmup = cols_new["length"].astype(float), cols_new["warmup"].astype(float)
    real = slice(0, n - dropped)
    assert np.all(warmup[real] < length[real])
    if clock == "steps":
        assert np.all(warmup[real] + 1 <= length[real])
    rows = slice(c + 1, c + 1 + kept)
    new_len = np.diff(new_b)[c + 1:]
    assert np.all(new_len >= (max(math.ceil(red.min_cycle_length), 1) if clock == "steps"
                              else red.min_cycle_length))
    np.testing.assert_allclose(length[rows], new_len, rtol=1e-6)
    old_len, old_warm = cols_old["length"][rows].astype(float), cols_old["warmup"][rows]
    fraction_error = np.abs(warmup[rows] / length[rows] - old_warm / old_len)
    assert np.all(fraction_error <= (1.0 / length[rows] if clock == "steps" else 1e-5))
    old_begin, new_begin = cols_old["decay_begin"][rows], cols_new["decay_begin"][rows]
    follows, zero = old_begin == old_warm, old_begin == 0
    assert np.array_equal(new_begin[follows], warmup[rows][follows])
    assert np.all(new_begin[zero] == 0)

    budget = new_b[-1] - new_b[c + 1]
    slack = 1.0 if clock == "steps" else 2 * grid + 1e-6 * budget
    if red.rule == "equal":
        assert new_len.max() - new_len.min() <= slack
    weights = red.weights(old_len)
    np.testing.assert_allclose(new_len, budget * weights / weights.sum(), rtol=0, atol=slack)

    # The new table starts the next cycle at t.
    start_value = float(new(new_b[c + 1]))
    has_warmup = warmup[c + 1] >= np.finfo(np.float32).tiny  # XLA flushes subnormals
    expected = cols_new["init_value"][c + 1] if has_warmup else cols_new["peak"][c + 1]
    assert start_value == pytest.approx(float(expected), rel=1e-5, abs=1e-9)
