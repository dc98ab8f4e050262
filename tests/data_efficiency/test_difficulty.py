"""The pacing formulas against the spec (DEEPSPEED_DATA_EFFICIENCY.md §2.1, §4.2).

``spec_fixed_root`` and ``spec_fixed_discrete`` restate the spec's steps one by one
(Python float64 semantics, as DeepSpeed computes them); the scheduler tests import them
as their oracle. Literal numbers are the spec's recorded / worked examples.
"""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algoperf_reinit.data_efficiency import (
    fixed_discrete_difficulty,
    fixed_linear_difficulty,
    fixed_root_difficulty,
)
from algoperf_reinit.data_efficiency._difficulty import aligned_minimum


def spec_fixed_root(step, lo, hi, total, q, degree=1, clamp=True):
    """Spec §2.1, fixed_root, steps 1-5 (clamp: step 4, DeepSpeed 0.19.8 only)."""
    frac = (float(step) / total) ** (1.0 / degree)  # 1. Python float64 **, no clamp to 1
    value = math.floor(frac * (hi - lo) + lo)  # 2.
    value = value - (value % q)  # 3. round down to a multiple of q, from 0
    if clamp:
        value = max(value, math.ceil(lo / q) * q)  # 4.
    return min(value, hi)  # 5.


def spec_fixed_discrete(step, difficulty, max_step):
    """Spec §2.1, fixed_discrete: inclusive boundaries."""
    if step > max_step[-1]:
        return difficulty[-1]
    return next(d for d, m in zip(difficulty, max_step, strict=False) if step <= m)


class TestWorkedExamples:
    def test_max_not_a_multiple_of_the_step_is_reached_after_total(self):
        # Spec: min 16, max 100, q 16, T 100: 96 at steps 99-114, 100 from step 115.
        for step in range(99, 115):
            assert fixed_linear_difficulty(step, 16, 100, 100, 16) == 96
        for step in (115, 116, 200, 10_000):
            assert fixed_linear_difficulty(step, 16, 100, 100, 16) == 100

    def test_cube_root_rises_steeply(self):
        # Spec: cube root, 64 -> 2048 over 1000 steps: 64 at step 0, 256 at step 1.
        assert fixed_root_difficulty(0, 64, 2048, 1000, 8, root_degree=3) == 64
        assert fixed_root_difficulty(1, 64, 2048, 1000, 8, root_degree=3) == 256

    def test_linear_16_to_64_gives_16_at_the_first_curriculum_step(self):
        # Spec §2.3 (recorded): fixed_linear 16 -> 64, T 10, q 8 gives 16 at step 1.
        assert fixed_linear_difficulty(1, 16, 64, 10, 8) == 16

    def test_vit_kept_length_example(self):
        # Spec §4.2: ViT 32 -> 197, step 8, 3910 steps: 192 at 3958, 197 at 4000.
        assert fixed_linear_difficulty(3958, 32, 197, 3910, 8, lower_clamp=False) == 192
        assert fixed_linear_difficulty(4000, 32, 197, 3910, 8, lower_clamp=False) == 197


class TestLowerClamp:
    @pytest.mark.parametrize(("clamp", "expected"), [(True, 16), (False, 0)])
    def test_min_8_step_16(self, clamp, expected):
        # Spec: 0.19.8 clamps up to ceil(8/16)*16 = 16; <= 0.19.6 floors to 0.
        assert fixed_linear_difficulty(0, 8, 64, 10, 16, lower_clamp=clamp) == expected

    def test_aligned_minimum_is_the_first_multiple_at_or_above(self):
        for lo in range(-20, 40):
            for q in (1, 3, 8, 16):
                assert aligned_minimum(lo, q) == math.ceil(lo / q) * q

    def test_clamp_above_max_still_ends_at_max(self):
        # ceil(10/16)*16 = 16 > max 12: the final min() gives 12.
        assert fixed_linear_difficulty(0, 10, 12, 5, 16) == spec_fixed_root(0, 10, 12, 5, 16) == 12


class TestFloat64Semantics:
    def test_boundary_step_floors_like_python_floats(self):
        # 0.29 * 100 is 28.999999999999996 in float64: DeepSpeed's value is 28, not the
        # exact 29 (and float32 arithmetic would round to 29.0).
        expected = math.floor((29 / 100) * 100)
        assert expected == 28
        assert fixed_linear_difficulty(29, 0, 100, 100, 1) == expected

    def test_no_clamp_of_the_fraction_past_total(self):
        # frac > 1 past T: the value keeps rising until clamped to max (q 7, max 100).
        assert fixed_linear_difficulty(10, 0, 100, 10, 7) == 98
        assert fixed_linear_difficulty(11, 0, 100, 10, 7) == 100

    @pytest.mark.parametrize("degree", [1, 2, 3, 0.5, 2.5])
    def test_grid_equals_the_spec(self, degree):
        for lo, hi, total, q in [(16, 100, 100, 16), (8, 64, 6, 8), (1, 100, 110, 1),
                                 (-40, 25, 17, 5), (128, 2048, 999, 16), (5, 5, 3, 2)]:
            for step in range(0, 2 * total + 3):
                for clamp in (True, False):
                    assert fixed_root_difficulty(
                        step, lo, hi, total, q, root_degree=degree, lower_clamp=clamp
                    ) == spec_fixed_root(step, lo, hi, total, q, degree, clamp)


class TestFixedDiscrete:
    def test_inclusive_boundaries(self):
        # Spec: [1, 2, 3] / [5, 10]: steps <= 5 -> 1, 6-10 -> 2, >= 11 -> 3.
        got = [fixed_discrete_difficulty(s, [1, 2, 3], [5, 10]) for s in range(14)]
        assert got == [1] * 6 + [2] * 5 + [3] * 3

    def test_single_boundary(self):
        for s in range(8):
            assert fixed_discrete_difficulty(s, [4, 9], [3]) == spec_fixed_discrete(s, [4, 9], [3])

    def test_inconsistent_lists(self):
        with pytest.raises(ValueError, match=r"difficulty must be a list of len\(max_step\) \+ 1"):
            fixed_discrete_difficulty(0, [1, 2], [5, 10])


class TestSteps:
    def test_negative_step_is_a_value_error(self):
        # DeepSpeed crashes with TypeError for root_degree != 1; we say what is wrong.
        with pytest.raises(ValueError, match=r"^step must be an int >= 0, got -1; steps count from 0"):
            fixed_root_difficulty(-1, 64, 2048, 1000, 8, root_degree=3)
        with pytest.raises(ValueError, match="step must be an int >= 0, got -3"):
            fixed_discrete_difficulty(-3, [1, 2], [5])

    @pytest.mark.parametrize("step", [1.0, True, "3", None])
    def test_non_int_step_is_a_type_error(self, step):
        with pytest.raises(TypeError, match="step must be an int"):
            fixed_linear_difficulty(step, 0, 10, 10, 1)

    def test_numpy_int_steps_are_accepted(self):
        import numpy as np

        assert fixed_linear_difficulty(np.int64(5), 0, 10, 10, 1) == 5

    @pytest.mark.parametrize(("kwargs", "match"), [
        (dict(total_step=0), "total_step must be an int >= 1, got 0"),
        (dict(difficulty_step=-8), "difficulty_step must be an int >= 1, got -8"),
        (dict(root_degree=0), "root_degree must be > 0, got 0"),
        (dict(root_degree=math.nan), "root_degree must be a number, not NaN"),
        (dict(min_difficulty=1.5), "min_difficulty must be an int, got 1.5 of type float"),
    ])
    def test_invalid_arguments(self, kwargs, match):
        args = dict(step=3, min_difficulty=0, max_difficulty=10, total_step=10, difficulty_step=1)
        args.update(kwargs)
        with pytest.raises((TypeError, ValueError), match=match):
            fixed_root_difficulty(**args)


_schedules = st.tuples(
    st.integers(-1000, 5000), st.integers(0, 5000), st.integers(1, 3000), st.integers(1, 256),
    st.sampled_from([1, 2, 3, 0.5, 1.5]), st.booleans(),
).map(lambda t: (min(t[0], t[0] + t[1]), t[0] + t[1], *t[2:]))


class TestProperties:
    @given(_schedules, st.integers(0, 20_000))
    def test_equals_the_spec_and_stays_in_bounds(self, sched, step):
        lo, hi, total, q, degree, clamp = sched
        value = fixed_root_difficulty(step, lo, hi, total, q, root_degree=degree,
                                      lower_clamp=clamp)
        assert value == spec_fixed_root(step, lo, hi, total, q, degree, clamp)
        assert value <= hi
        floor = min(math.ceil(lo / q) * q, hi) if clamp else (lo - lo % q)
        assert value >= floor
        assert value == hi or value % q == 0  # multiples of q except the clamp to max

    @given(_schedules, st.integers(0, 20_000), st.integers(1, 500))
    def test_non_decreasing(self, sched, step, later):
        lo, hi, total, q, degree, clamp = sched
        f = lambda s: fixed_root_difficulty(s, lo, hi, total, q, root_degree=degree,  # noqa: E731
                                            lower_clamp=clamp)
        assert f(step) <= f(step + later)

    @given(_schedules)
    def test_max_not_a_multiple_is_not_reached_before_total(self, sched):
        lo, hi, total, q, degree, clamp = sched
        if hi % q == 0 or (clamp and math.ceil(lo / q) * q >= hi):
            return
        for step in (0, total // 2, total):
            assert fixed_root_difficulty(step, lo, hi, total, q, root_degree=degree,
                                         lower_clamp=clamp) <= hi - hi % q
