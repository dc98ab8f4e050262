"""The cycle table: boundary convention, padding, lookup and recompilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algoperf_reinit.schedules import (
    CycleSpec,
    CycleTable,
    ScheduleConfig,
    build_cycle_table,
    cycle_index,
    evaluate,
    table_from_cycles,
)

TWO = [
    CycleSpec(length=100, warmup=10, peak=1.0, init_value=0.1, end_value=0.0),
    CycleSpec(length=50, warmup=0, peak=0.5, end_value=0.05, warmup_shape="none",
              decay_shape="linear"),
]


class TestBoundaryConvention:
    def test_step_at_a_boundary_belongs_to_the_new_cycle(self):
        table = table_from_cycles(TWO)
        assert int(cycle_index(table, 99)) == 0
        assert int(cycle_index(table, 100)) == 1
        assert float(table(100)) == pytest.approx(0.5)  # cycle 1 has no warmup: its peak
        assert float(table(99)) == pytest.approx(0.0, abs=1e-3)  # cycle 0 almost at its end

    def test_start_of_a_cycle_is_its_warmup_init_and_warmup_end_is_the_peak(self):
        table = table_from_cycles(TWO)
        assert float(table(0)) == pytest.approx(0.1)
        assert float(table(10)) == pytest.approx(1.0)

    def test_value_holds_after_the_last_cycle_and_before_the_first(self):
        table = table_from_cycles(TWO, origin=20)
        assert float(table(10**6)) == pytest.approx(0.05)
        assert float(table(-5)) == pytest.approx(0.1)
        assert float(table(0)) == pytest.approx(0.1)
        assert float(table(20 + 150)) == pytest.approx(0.05)

    def test_array_input_keeps_its_shape(self):
        table = table_from_cycles(TWO)
        t = jnp.arange(12).reshape(3, 4)
        out = table(t)
        assert out.shape == (3, 4) and out.dtype == jnp.float32
        np.testing.assert_allclose(out.ravel(), jnp.stack([table(s) for s in t.ravel()]), rtol=1e-6)


class TestPadding:
    def test_padding_rows_never_selected(self):
        padded = table_from_cycles(TWO, capacity=8)
        plain = table_from_cycles(TWO)
        t = jnp.arange(0, 400)
        np.testing.assert_array_equal(padded(t), plain(t))
        assert padded.capacity == 8 and padded.num_cycles == 2
        assert padded.boundaries() == [0.0, 100.0, 150.0]

    def test_capacity_smaller_than_cycles_is_an_error(self):
        with pytest.raises(ValueError, match=r"capacity must be an int >= the number of cycles \(2\), got 1"):
            table_from_cycles(TWO, capacity=1)


class TestNoRecompile:
    def test_changing_boundaries_peaks_and_shapes_does_not_recompile(self):
        traces = []

        @jax.jit
        def lr(table, step):
            traces.append(None)
            return table(step)

        config = ScheduleConfig(num_cycles=3)
        tables = [
            build_cycle_table(config, 300, 1e-3, 0.1, capacity=8),
            build_cycle_table(ScheduleConfig(num_cycles=5, cycle_mul=2.0), 3100, 3e-3, 0.05,
                              capacity=8),
            build_cycle_table(ScheduleConfig(cycle_fractions=(0.2, 0.8), decay_shapes=(
                "wsd", "exponential"), warmup_shapes="cosine"), 1000, 1e-2, 0.2, capacity=8),
        ]
        values = [float(lr(t, jnp.int32(s))) for t in tables for s in (0, 57, 150)]
        assert len(traces) == 1
        assert len(set(values)) > 3  # the tables really differ
        assert lr._cache_size() == 1

    def test_inside_a_train_step_the_table_is_data(self):
        traces = []

        @jax.jit
        def step(params, table, count):
            traces.append(None)
            return params - table(count) * params

        t1 = build_cycle_table(ScheduleConfig(num_cycles=2), 100, 1e-2, 0.1, capacity=4)
        t2 = build_cycle_table(ScheduleConfig(num_cycles=4), 100, 5e-2, 0.0, capacity=4)
        p = jnp.ones(3)
        p1 = step(p, t1, jnp.int32(60))
        p2 = step(p, t2, jnp.int32(60))
        assert len(traces) == 1
        assert not np.allclose(p1, p2)


class TestCycleSpecErrors:
    @pytest.mark.parametrize(
        ("spec", "match"),
        [
            (dict(length=0), r"cycle 0: length must be > 0, got 0"),
            (dict(length=10, warmup=10), r"cycle 0: the cycle \(length 10\) must be longer than its warmup \(10\)"),
            (dict(length=10, warmup=-1), r"cycle 0: warmup must be >= 0"),
            (dict(length=10.5), r"length must be a whole number of steps"),
            (dict(length=10, peak=float("nan")), r"cycle 0: peak must be a number, not NaN, got nan"),
            (dict(length=10, peak=-1.0), r"cycle 0: peak must be >= 0"),
            (dict(length=10, peak=1.0, end_value=2.0), r"end_value must be in \[0, peak=1\], got 2.0"),
            (dict(length=10, peak=1.0, init_value=-0.1), r"init_value must be in \[0, peak=1\]"),
            (dict(length=10, warmup=4, decay_begin=5), r"decay_begin must be in \[0, warmup=4\]"),
        ],
    )
    def test_bad_cycle(self, spec, match):
        with pytest.raises(ValueError, match=match):
            table_from_cycles([CycleSpec(**spec)])

    def test_index_of_the_bad_cycle_is_named(self):
        with pytest.raises(ValueError, match=r"cycle 1: length must be > 0"):
            table_from_cycles([CycleSpec(length=10), CycleSpec(length=-3)])

    def test_seconds_clock_accepts_fractional_lengths(self):
        table = table_from_cycles([CycleSpec(length=10.5, warmup=0.25, peak=1.0)], clock="seconds")
        assert float(table(0.25)) == pytest.approx(1.0)

    def test_bad_clock_and_empty(self):
        with pytest.raises(ValueError, match=r"clock must be one of 'steps', 'seconds', 'layer_tokens', got 'epochs'"):
            table_from_cycles(TWO, clock="epochs")
        with pytest.raises(ValueError, match="at least one cycle"):
            table_from_cycles([])
        with pytest.raises(TypeError, match=r"cycles\[0\] must be a CycleSpec"):
            table_from_cycles([{"length": 3}])


def test_table_is_a_pytree_of_arrays_with_fixed_dtypes():
    table = table_from_cycles(TWO, capacity=4)
    leaves = jax.tree.leaves(table)
    assert len(leaves) == len(CycleTable._fields)
    assert table.warmup_shape.dtype == jnp.int32 and table.decay_shape.dtype == jnp.int32
    assert table.start.dtype == jnp.float32 and table.decay_params.shape == (4, 3)
    assert float(evaluate(table, 5)) == float(table(5))


def test_cost_does_not_grow_with_cycles_in_the_graph():
    def count_eqns(n):
        table = table_from_cycles([CycleSpec(length=10, warmup=2, peak=1.0)] * n)
        jaxpr = jax.make_jaxpr(lambda tab, t: tab(t))(table, jnp.int32(3))
        return len(jaxpr.jaxpr.eqns)

    assert count_eqns(1) == count_eqns(16) == count_eqns(1024)


class TestWarmupEnds:
    def test_real_cycles_with_a_warmup_only(self):
        cycles = [*TWO, CycleSpec(length=30, warmup=5, peak=1.0),
                  CycleSpec(length=30, warmup=5, peak=1.0, warmup_shape="none")]
        table = table_from_cycles(cycles, origin=20, capacity=8)
        # Cycle 1 has no warmup and cycle 3's shape is "none"; padding rows never appear.
        assert table.warmup_ends() == [30.0, 175.0]
        assert table.boundaries() == [20.0, 120.0, 170.0, 200.0, 230.0]

    def test_each_end_is_the_float32_sum_of_start_and_warmup(self):
        rng = np.random.default_rng(0)
        cycles = [CycleSpec(length=float(n), warmup=float(w), peak=1.0)
                  for n, w in zip(rng.uniform(1.0, 1e4, 8), rng.uniform(0.0, 0.9, 8) * 1e-3,
                                  strict=True)]
        table = table_from_cycles(cycles, origin=12345.678, clock="seconds")
        start, warmup = np.asarray(table.start), np.asarray(table.warmup)
        np.testing.assert_array_equal(np.float32(table.warmup_ends()), start + warmup)

    def test_the_table_holds_the_value_at_the_warmup_end(self):
        table = table_from_cycles(TWO)
        assert [float(table(t)) for t in table.warmup_ends()] == [1.0]
