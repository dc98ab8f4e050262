"""Runs of a schedule: against a step-by-step oracle of the spec's formulas (§2.1, §2.2)."""

import doctest
import itertools
import math

import pytest

from algoperf_reinit.data_efficiency import (
    CURRICULUM_FIRST_STEP,
    CurriculumScheduler,
    Run,
    _schedule_runs,
    curriculum_runs,
    joint_runs,
    monotone_runs,
    stepwise_runs,
)


def test_doctests():
    assert doctest.testmod(_schedule_runs).failed == 0


def root_value(step, lo, hi, total, q, degree=1, clamp=True):
    """Spec §2.1, restated: float64 with Python's ``**``, ``math.floor`` and ``%``."""
    v = math.floor((float(step) / total) ** (1.0 / degree) * (hi - lo) + lo)
    v -= v % q
    if clamp:
        v = max(v, math.ceil(lo / q) * q)
    return min(v, hi)


def sticky(values, lo, hi):
    """Spec §2.2: update while the current value is below max, from ``min_difficulty``."""
    out, current = [], lo
    for v in values:
        if current < hi:
            current = v
        out.append(current)
    return out


def expand(runs, first, last):
    """The value at every step ``first .. last`` from the runs."""
    values = []
    for step in range(first, last + 1):
        run = next(r for r in runs if r.start <= step and (r.stop is None or step < r.stop))
        values.append(run.value[0])
    return values


def metric(kind, lo, hi, legacy=False, **schedule):
    return CurriculumScheduler({"min_difficulty": lo, "max_difficulty": hi,
                                "schedule_type": kind, "schedule_config": schedule},
                               legacy_rounding=legacy)


ROOT_CASES = [  # (lo, hi, T, q, degree, legacy)
    (64, 1024, 1000, 8, 1, False),
    (16, 100, 100, 16, 1, False),  # max not a multiple of q: reached after T (step 115)
    (8, 64, 10, 16, 1, True),  # legacy: starts at 0, below min
    (64, 2048, 1000, 8, 3, False),  # cube root: steep start (256 at step 1)
    (80, 2048, 5000, 8, 2, True),
    (0, 100, 100, 1, 1, False),
]


@pytest.mark.filterwarnings("ignore:.*not a multiple of 8")
@pytest.mark.parametrize("lo, hi, total, q, degree, legacy", ROOT_CASES)
def test_fixed_root_and_linear_runs_match_the_step_by_step_oracle(lo, hi, total, q, degree,
                                                                 legacy):
    kind = "fixed_linear" if degree == 1 else "fixed_root"
    extra = {} if degree == 1 else {"root_degree": degree}
    scheduler = metric(kind, lo, hi, legacy, total_curriculum_step=total, difficulty_step=q,
                       **extra)
    runs = curriculum_runs(scheduler)
    last = 2 * total + 50
    want = sticky([root_value(s, lo, hi, total, q, degree, not legacy)
                   for s in range(1, last + 1)], lo, hi)
    assert expand(runs, 1, last) == want
    assert runs[0].start == CURRICULUM_FIRST_STEP == 1
    assert runs[-1].stop is None and runs[-1].value == (want[-1],)
    assert all(a.stop == b.start for a, b in itertools.pairwise(runs))
    assert all(a.value != b.value for a, b in itertools.pairwise(runs))
    assert scheduler.current_difficulty == lo  # the scheduler's state is not touched


def test_max_not_a_multiple_is_reached_after_total_steps():
    runs = curriculum_runs(metric("fixed_linear", 16, 100, total_curriculum_step=100,
                                  difficulty_step=16))
    # Spec: 96 at steps 99-114, 100 from step 115 (96 starts at step 96: floor(96.64)).
    assert runs[-2] == Run(96, 115, (96,)) and runs[-1] == Run(115, None, (100,))


def test_gpt3_seqlen_truncate_settings_give_247_lengths():
    # Megatron-DeepSpeed's GPT-3 1.3B example: 80 -> 2048, step 8, 110k steps.
    scheduler = metric("fixed_linear", 80, 2048, total_curriculum_step=110_000,
                       difficulty_step=8)
    runs = curriculum_runs(scheduler)
    assert len(runs) == (2048 - 80) // 8 + 1 == 247
    assert expand(runs, 1, 110_001) == sticky(
        [root_value(s, 80, 2048, 110_000, 8) for s in range(1, 110_002)], 80, 2048)


def test_fixed_discrete_runs_are_sticky_and_may_go_down():
    s = metric("fixed_discrete", 1, 3, difficulty=[2, 1, 3, 2], max_step=[5, 10, 20])
    runs = curriculum_runs(s)
    assert runs == (Run(1, 6, (2,)), Run(6, 11, (1,)), Run(11, None, (3,)))  # frozen at 3
    frozen = metric("fixed_discrete", 1, 2, difficulty=[1, 2, 3], max_step=[5, 10])
    assert curriculum_runs(frozen) == (Run(1, 6, (1,)), Run(6, None, (2,)))
    late = curriculum_runs(frozen, first_step=8)
    assert late == (Run(8, None, (2,)),)


def test_custom_runs_need_a_horizon_and_stop_there_below_max():
    s = metric("custom", 0, 100)
    s.set_custom_get_difficulty(lambda step: 10 * (step // 4))
    with pytest.raises(ValueError, match="num_steps must be the number of steps to evaluate"):
        curriculum_runs(s)
    runs = curriculum_runs(s, num_steps=10)
    assert runs == (Run(1, 4, (0,)), Run(4, 8, (10,)), Run(8, 11, (20,)))
    reaches = curriculum_runs(s, num_steps=100)
    assert reaches[-1] == Run(40, None, (100,))


def test_minimum_at_maximum_is_never_updated():
    s = metric("custom", 50, 50)  # DeepSpeed never calls the function then
    assert curriculum_runs(s, num_steps=5) == (Run(1, None, (50,)),)
    assert monotone_runs(lambda step: 1 / 0, first_step=0, max_value=4, initial=4) == (
        Run(0, None, (4,)),)


def test_monotone_and_stepwise_runs_agree_on_a_monotone_schedule():
    def value_at(step):  # random-LTD-like: 128 -> 2048 in steps of 16 over 3000 steps
        return root_value(step, 128, 2048, 3000, 16, clamp=False)

    fast = monotone_runs(value_at, first_step=0, max_value=2048, initial=128)
    slow = stepwise_runs(value_at, first_step=0, num_steps=4000, max_value=2048, initial=128)
    assert fast == slow
    assert len(fast) == (2048 - 128) // 16 + 1


def test_joint_runs_zip_change_points_and_end_with_the_first_bounded_input():
    a = (Run(0, 3, (64,)), Run(3, None, (128,)))
    b = (Run(0, 2, (8,)), Run(2, 5, (16,)))
    assert joint_runs(a, b) == (Run(0, 2, (64, 8)), Run(2, 3, (64, 16)), Run(3, 5, (128, 16)))
    assert joint_runs(a) == a
    with pytest.raises(ValueError, match="runs must be one or more non-empty run sequences"):
        joint_runs(a, ())


def test_bad_steps_are_errors():
    with pytest.raises(ValueError, match="first_step must be an int >= 0, got -1"):
        monotone_runs(lambda s: s, first_step=-1, max_value=3, initial=0)
    with pytest.raises(ValueError, match="num_steps must be an int >= 1, got 0"):
        stepwise_runs(lambda s: s, first_step=0, num_steps=0, max_value=3, initial=0)
    with pytest.raises(TypeError, match="scheduler must be an instance of CurriculumScheduler"):
        curriculum_runs({"min_difficulty": 1})
